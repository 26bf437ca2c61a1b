// React hooks over the cowrite JavaScript client (`@cowrite/client/react`).
//
//   const client = useClient({ url: "ws://127.0.0.1:8000/ws", user: { name: "Ada" } });
//   const doc = useDocument(client, "notes", { create: true });
//   const [body, text] = useText(doc.session, "body");      // re-renders on every change
//   const people = usePresence(doc.session);                // others and yourself
//   const chat = useChat(doc.session);                      // { messages, send, ... }
//
// Every hook subscribes to the client's events with useSyncExternalStore, so a component
// re-renders exactly when what it reads changed, and never tears under concurrent rendering.
import { useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore } from "react";
import { CowriteClient } from "../../src/client.js";

/** Subscribe to `events` of `emitter` (a client or a session); the snapshot is a counter
 *  bumped by each of them, so `read()` is recomputed exactly when something changed. */
function useEvents(emitter, events, read) {
  const revision = useRef(0);
  const subscribe = useCallback(
    (notify) => {
      if (!emitter) return () => {};
      const offs = events.map((type) =>
        emitter.on(type, () => {
          revision.current += 1;
          notify();
        }),
      );
      return () => offs.forEach((off) => off());
    },
    // events is a constant list per hook
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [emitter],
  );
  const rev = useSyncExternalStore(subscribe, () => revision.current, () => revision.current);
  // eslint-disable-next-line react-hooks/exhaustive-deps
  return useMemo(() => read(emitter), [emitter, rev]);
}

/** A client created once for the component's life (connected at mount, closed at unmount), and
 *  its connection status. `options` are read at mount only (pass a new `key` to reconnect). */
export function useClient(options) {
  const [client] = useState(() => new CowriteClient(options));
  useEffect(() => {
    client.connect();
    return () => client.close();
  }, [client]);
  useEvents(client, ["status"], (c) => c.status);
  return client;
}

/** The client's connection status ("connecting", "connected", "reconnecting", "offline"...). */
export function useStatus(client) {
  return useEvents(client, ["status"], (c) => (c ? c.status : "idle"));
}

/** Open document `id` while the component is mounted (left at unmount, or when `id` changes).
 *  Returns `{session, ready, synced, error, deleted, version, rights}`: `ready` once joined,
 *  `synced` when every local edit is acknowledged (durable), `error` the last error. */
export function useDocument(client, id, { create = false } = {}) {
  const [session, setSession] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    if (!client || !id) return undefined;
    const opened = client.open(id, { create });
    setSession(opened);
    setError(null);
    const off = opened.on("error", (e) => setError(e));
    opened.ready.catch((e) => setError({ code: e.code || "error", message: e.message }));
    return () => {
      off();
      opened.leave();
      setSession(null);
    };
  }, [client, id, create]);
  const state = useEvents(session, ["joined", "sync", "change", "deleted", "saving"], (s) =>
    s
      ? {
          ready: s.joined,
          synced: s.synced,
          version: s.version,
          rights: s.rights,
          deleted: s.deleted,
          savingPending: s.savingPending,
        }
      : { ready: false, synced: true, version: 0, rights: [], deleted: false, savingPending: false },
  );
  return { session, error, ...state };
}

/** The value of a node id ("text:body", "map:settings", "#12.3"), re-read on every change. */
export function useValue(session, node) {
  return useEvents(session, ["change", "joined"], (s) => (s ? s.value(node) : undefined));
}

/** `[value, handle]` of text `name`: the string (code points as the server counts them) and the
 *  handle to edit it (`insert`, `delete`, `replace`, `setValue`). */
export function useText(session, name) {
  const value = useValue(session, `text:${name}`);
  const handle = useMemo(() => (session ? session.text(name) : null), [session, name]);
  return [value ?? "", handle];
}

/** Everyone in the document (yourself included, `self: true`), in a stable order. Names and
 *  colours are other people's text: render them as text, never as HTML. */
export function usePresence(session) {
  return useEvents(session, ["presence", "joined", "change"], (s) =>
    s ? [...s.members.values()].sort((a, b) => (a.session < b.session ? -1 : 1)) : [],
  );
}

/** The document's chat: `{messages, hasMore, send(text), edit(id, text), remove(id),
 *  loadEarlier()}` (messages oldest first). */
export function useChat(session) {
  const messages = useEvents(session, ["chat", "chat_page", "joined"], (s) =>
    s ? s.chatMessages() : [],
  );
  return useMemo(
    () => ({
      messages,
      hasMore: session ? session.chatHasMore : false,
      send: (text) => session?.sendChat(text),
      edit: (id, text) => session?.editChat(id, text),
      remove: (id) => session?.deleteChat(id),
      loadEarlier: () =>
        session ? session.chatHistory({ before: messages[0]?.id ?? null }) : Promise.resolve(null),
    }),
    [session, messages],
  );
}
