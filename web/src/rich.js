// The rich-text page: a Tiptap editor over a Yjs document that the Hocuspocus provider keeps in
// step with cowrite (`/hocuspocus`), kept on this device by y-indexeddb. Loaded by app.js (a
// separate bundle, only fetched when a rich-text document is opened).
//
// "All changes saved" only from the server: cowrite sends SyncStatus once an update is durable,
// and the provider counts the updates it is still owed an answer for (`unsyncedChanges`). Chat
// goes through Hocuspocus Stateless messages (`cowrite.chat.send` / `cowrite.chat` /
// `cowrite.chat.history`), presence through the awareness states' `user` {name, color}.
// User data (names, colors, chat) reaches the page only through textContent / validated colors.

import { Editor } from "@tiptap/core";
import StarterKit from "@tiptap/starter-kit";
import Collaboration from "@tiptap/extension-collaboration";
import CollaborationCaret from "@tiptap/extension-collaboration-caret";
import { Placeholder } from "@tiptap/extensions";
import { HocuspocusProvider } from "@hocuspocus/provider";
import { IndexeddbPersistence } from "y-indexeddb";
import * as Y from "yjs";
import { $, chatMessageItem, el, normalizeHref, renderPeopleList, safeColor, withAlpha } from "./ui.js";

/** The Yjs root the editor binds to (an XmlFragment; REST: /api/documents/{id}/yjs/roots/default). */
export const FIELD = "default";
const CHAT_MAX = 4000; // characters, as the server checks
const OFFLINE_AFTER = 3; // failed connection attempts in a row before we say "Offline"

const TOOLS = [
  { key: "bold", label: "Bold", hint: "Ctrl+B", text: "B", run: (c) => c.toggleBold(), active: (e) => e.isActive("bold") },
  { key: "italic", label: "Italic", hint: "Ctrl+I", text: "I", run: (c) => c.toggleItalic(), active: (e) => e.isActive("italic") },
  { key: "code", label: "Inline code", hint: "Ctrl+E", text: "</>", run: (c) => c.toggleCode(), active: (e) => e.isActive("code") },
  { key: "h1", label: "Heading 1", hint: "Ctrl+Alt+1", text: "H1", run: (c) => c.toggleHeading({ level: 1 }), active: (e) => e.isActive("heading", { level: 1 }) },
  { key: "h2", label: "Heading 2", hint: "Ctrl+Alt+2", text: "H2", run: (c) => c.toggleHeading({ level: 2 }), active: (e) => e.isActive("heading", { level: 2 }) },
  { key: "ul", label: "Bulleted list", hint: "Ctrl+Shift+8", text: "• List", run: (c) => c.toggleBulletList(), active: (e) => e.isActive("bulletList") },
  { key: "ol", label: "Numbered list", hint: "Ctrl+Shift+7", text: "1. List", run: (c) => c.toggleOrderedList(), active: (e) => e.isActive("orderedList") },
  { key: "pre", label: "Code block", hint: "Ctrl+Alt+C", text: "{ }", run: (c) => c.toggleCodeBlock(), active: (e) => e.isActive("codeBlock") },
  { key: "link", label: "Link", hint: "Ctrl+K", text: "Link", run: null, active: (e) => e.isActive("link") },
];

function caretElement(user) {
  const color = safeColor(user.color, user.clientId);
  const caret = document.createElement("span");
  caret.className = "rich-caret";
  caret.style.setProperty("--caret", color);
  caret.setAttribute("aria-hidden", "true");
  const label = document.createElement("span");
  label.className = "rich-caret-label";
  label.textContent = typeof user.name === "string" && user.name ? user.name : "Anonymous"; // never innerHTML
  caret.append(label);
  return caret;
}

function selectionAttrs(user) {
  const color = safeColor(user.color, user.clientId);
  return { class: "rich-remote-selection", style: `background-color: ${withAlpha(color, 0.22)}` };
}

/**
 * Open the rich-text document `id` in the page's editor card.
 *
 *  url       the Hocuspocus endpoint (ws://host/hocuspocus)
 *  token     sent in the Auth message (any string when the server has no secret)
 *  user      {name, color} shown to the others
 *  status(s) the connection status for the top bar: connecting | connected | reconnecting | offline
 *  toast(t)  a short notice
 *  denied(reason)  the server refused the document (not a Yjs document, no rights...)
 *  presence(members, mine)  who is here ({session, user, self}, as identity.js's lookalikeFix
 *                  takes them; sessions are Yjs client ids), to move off a name or color in use
 *
 * Returns a handle: setUser, setActive, sendChat, undo, redo, focus, destroy, persisted, and
 * the editor / provider / ydoc for tests and debugging.
 */
export function openRich({ id, url, token, user, status, toast, denied, presence }) {
  const ydoc = new Y.Doc();
  const local = new IndexeddbPersistence(`cowrite-rich:${id}`, ydoc);
  let localReady = false;
  let destroyed = false;
  let wsStatus = "connecting";
  let failures = 0; // connection attempts that failed since we were last connected
  let everConnected = false;
  let refused = null;
  let browserOffline = typeof navigator !== "undefined" && navigator.onLine === false;

  const provider = new HocuspocusProvider({
    url,
    name: id,
    document: ydoc,
    token,
    // reconnect soon after the network is back (the 'online' event also reconnects at once)
    maxDelay: 5000,
  });
  const socket = provider.configuration.websocketProvider;

  // ------------------------------------------------------------------ the editor
  const host = el("div", { class: "rich-host" });
  $("editor").append(host);
  const editor = new Editor({
    element: host,
    extensions: [
      StarterKit.configure({
        undoRedo: false, // Collaboration brings its own undo (of this user's changes only)
        // an empty paragraph added after a last heading/list by every client would be added
        // once per client (each adds its own, concurrently)
        trailingNode: false,
        link: { openOnClick: false, autolink: true, defaultProtocol: "https" },
      }),
      Placeholder.configure({ placeholder: "Start writing…" }),
      Collaboration.configure({ document: ydoc, field: FIELD }),
      CollaborationCaret.configure({ provider, user: { name: user.name, color: user.color }, render: caretElement, selectionRender: selectionAttrs }),
    ],
    editorProps: {
      attributes: { class: "rich-content", "aria-label": "Document text", "aria-multiline": "true", role: "textbox", spellcheck: "true" },
      handleKeyDown: (_view, event) => {
        if ((event.ctrlKey || event.metaKey) && !event.altKey && !event.shiftKey && event.key.toLowerCase() === "k") {
          event.preventDefault();
          openLinkForm();
          return true;
        }
        return false;
      },
    },
  });
  provider.setAwarenessField("active", typeof document === "undefined" || !document.hidden);

  // ------------------------------------------------------------------ toolbar
  const toolbar = $("rich-toolbar");
  const buttons = new Map();
  for (const tool of TOOLS) {
    const button = el("button", {
      type: "button",
      class: `tb-btn tb-${tool.key}`,
      "aria-label": tool.label,
      "aria-pressed": "false",
      title: `${tool.label} (${tool.hint})`,
      tabindex: buttons.size === 0 ? "0" : "-1",
      text: tool.text,
      onmousedown: (event) => event.preventDefault(), // keep the editor's selection and focus
      onclick: (event) => {
        if (tool.key === "link") openLinkForm();
        else if (event.detail === 0) tool.run(editor.chain()).run(); // from the keyboard: stay on the toolbar
        else tool.run(editor.chain().focus()).run();
      },
    });
    buttons.set(tool.key, button);
  }
  toolbar.replaceChildren(...buttons.values());
  toolbar.hidden = false;
  // one tab stop; arrows, Home and End move along the toolbar (WAI-ARIA toolbar pattern); Escape
  // goes back to the text
  const onToolbarKey = (event) => {
    const list = [...buttons.values()];
    const at = list.indexOf(document.activeElement);
    if (at < 0) return;
    if (event.key === "Escape") {
      event.preventDefault();
      editor.commands.focus();
      return;
    }
    let next = null;
    if (event.key === "ArrowRight") next = (at + 1) % list.length;
    else if (event.key === "ArrowLeft") next = (at - 1 + list.length) % list.length;
    else if (event.key === "Home") next = 0;
    else if (event.key === "End") next = list.length - 1;
    if (next === null) return;
    event.preventDefault();
    list.forEach((b, i) => b.setAttribute("tabindex", i === next ? "0" : "-1"));
    list[next].focus();
  };
  toolbar.addEventListener("keydown", onToolbarKey);

  const linkForm = $("rich-link-form");
  const linkInput = $("rich-link-url");
  function openLinkForm() {
    if (!editor.isEditable) return;
    linkInput.value = editor.getAttributes("link").href || "";
    $("rich-link-remove").hidden = !editor.isActive("link");
    linkForm.hidden = false;
    linkInput.focus();
    linkInput.select();
  }
  const closeLinkForm = () => {
    linkForm.hidden = true;
    editor.commands.focus();
  };
  const onLinkSubmit = (event) => {
    event.preventDefault();
    const href = normalizeHref(linkInput.value);
    if (!linkInput.value.trim()) {
      editor.chain().focus().extendMarkRange("link").unsetLink().run();
    } else if (!href) {
      toast("Links must start with http://, https:// or mailto:");
      linkInput.focus();
      return;
    } else if (editor.state.selection.empty && !editor.isActive("link")) {
      // nothing selected: insert the address itself as the link's text
      editor.chain().focus().insertContent({ type: "text", text: href, marks: [{ type: "link", attrs: { href } }] }).run();
    } else {
      editor.chain().focus().extendMarkRange("link").setLink({ href }).run();
    }
    linkForm.hidden = true;
  };
  const onLinkRemove = () => {
    editor.chain().focus().extendMarkRange("link").unsetLink().run();
    linkForm.hidden = true;
  };
  const onLinkKey = (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      closeLinkForm();
    }
  };
  linkForm.addEventListener("submit", onLinkSubmit);
  linkForm.addEventListener("keydown", onLinkKey);
  $("rich-link-remove").addEventListener("click", onLinkRemove);
  $("rich-link-cancel").addEventListener("click", closeLinkForm);

  const renderToolbar = () => {
    for (const tool of TOOLS) {
      const button = buttons.get(tool.key);
      button.setAttribute("aria-pressed", String(Boolean(tool.active(editor))));
      button.disabled = !editor.isEditable;
    }
  };
  editor.on("transaction", renderToolbar);
  editor.on("selectionUpdate", renderToolbar);
  renderToolbar();

  // ------------------------------------------------------------------ saved / connection
  const connection = () => {
    if (wsStatus === "connected") return "connected";
    if (browserOffline || failures >= OFFLINE_AFTER) return "offline";
    return everConnected ? "reconnecting" : "connecting";
  };

  /** {state, text} of the save indicator; "saved" only from the server's SyncStatus. */
  function saveState() {
    if (refused) return { state: "unsaved", text: `Not saved: ${refused}` };
    if (connection() !== "connected") return { state: "unsaved", text: "Offline — changes kept on this device" };
    if (provider.isAuthenticated && provider.authorizedScope === "readonly") return { state: "readonly", text: "Read-only" };
    if (provider.isAuthenticated && provider.synced && provider.unsyncedChanges === 0) return { state: "saved", text: "All changes saved" };
    return { state: "saving", text: "Saving…" };
  }

  const render = () => {
    if (destroyed) return;
    status(connection());
    document.body.classList.toggle("disconnected", connection() !== "connected");
    const box = $("save-state");
    if (!localReady && !provider.synced) {
      box.hidden = true;
      return;
    }
    const { state, text } = saveState();
    box.hidden = false;
    box.dataset.state = state;
    box.textContent = text;
  };

  provider.on("status", ({ status: s }) => {
    const was = wsStatus;
    wsStatus = s;
    if (s === "connected") {
      failures = 0;
      everConnected = true;
    } else if (s === "disconnected" && was !== "connected") failures++;
    render();
  });
  provider.on("synced", () => {
    showEditor();
    render();
  });
  provider.on("unsyncedChanges", render);
  provider.on("authenticated", ({ scope }) => {
    refused = null;
    editor.setEditable(scope !== "readonly");
    renderToolbar();
    render();
  });
  provider.on("authenticationFailed", ({ reason }) => {
    refused = reason || "permission denied";
    render();
    denied(refused);
  });

  const firstSync = new Promise((resolve) => provider.on("synced", resolve));

  local.on("synced", () => {
    localReady = true;
    showEditor();
    render();
  });

  let shown = false;
  function showEditor() {
    if (shown || destroyed) return;
    shown = true;
    $("doc-loading").hidden = true;
    editor.commands.focus("end");
  }

  // the browser says when the network goes and comes back: act on it at once rather than wait
  // for the socket to time out or for the next retry
  const onOffline = () => {
    browserOffline = true;
    if (socket.webSocket) socket.emit("close", { event: { code: 4000, reason: "the browser went offline" } });
    render();
  };
  const onOnline = () => {
    browserOffline = false;
    failures = 0;
    if (socket.status !== "connected") socket.connect();
    render();
  };
  window.addEventListener("offline", onOffline);
  window.addEventListener("online", onOnline);

  // ------------------------------------------------------------------ people
  const renderPeople = () => {
    if (destroyed) return;
    const states = provider.awareness?.getStates() ?? new Map();
    const mine = ydoc.clientID;
    const self = states.get(mine);
    const people = [{ key: "self", name: user.name, color: user.color, active: self?.active !== false, self: true }];
    const others = [];
    for (const [clientId, state] of states) {
      if (clientId === mine || !state?.user) continue;
      const name = typeof state.user.name === "string" && state.user.name ? state.user.name : "Anonymous";
      others.push({ key: String(clientId), name, color: safeColor(state.user.color, clientId), active: state.active !== false, self: false });
    }
    others.sort((a, b) => a.name.localeCompare(b.name) || a.key.localeCompare(b.key));
    renderPeopleList([...people, ...others]);
  };
  provider.on("awarenessChange", () => {
    renderPeople();
    const members = [];
    for (const [clientId, state] of provider.awareness?.getStates() ?? []) {
      if (state?.user) members.push({ session: clientId, user: state.user, self: clientId === ydoc.clientID });
    }
    presence?.(members, ydoc.clientID);
  });
  renderPeople();

  // ------------------------------------------------------------------ chat
  const chatEls = new Map();
  const renderChatMessage = (message, live) => {
    if (!message || typeof message !== "object" || message.id === undefined) return;
    const log = $("chat-log");
    const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    const [li] = chatMessageItem(message);
    const old = chatEls.get(message.id);
    if (old) old.replaceWith(li);
    else {
      const after = [...chatEls.entries()].filter(([k]) => k > message.id).sort((a, b) => (a[0] < b[0] ? -1 : 1))[0];
      if (after) log.insertBefore(li, after[1]);
      else log.append(li);
    }
    chatEls.set(message.id, li);
    $("chat-empty").hidden = true;
    if (live && nearBottom) log.scrollTop = log.scrollHeight;
  };
  $("chat-more").hidden = true; // the Stateless chat has no paging (the last 50 come on attach)
  $("chat-empty").hidden = false;
  provider.on("stateless", ({ payload }) => {
    let data;
    try {
      data = JSON.parse(payload);
    } catch {
      return;
    }
    if (data?.type === "cowrite.chat") renderChatMessage(data.message, true);
    else if (data?.type === "cowrite.chat.history" && Array.isArray(data.messages)) {
      for (const message of data.messages) renderChatMessage(message, false);
      const log = $("chat-log");
      log.scrollTop = log.scrollHeight;
    } else if (data?.type === "cowrite.error") {
      toast(`Not sent: ${data.message || data.code}`);
    }
  });

  // ------------------------------------------------------------------ the handle
  return {
    id,
    editor,
    provider,
    ydoc,
    /** Resolves once every change made so far is written to IndexedDB (a readonly transaction
     *  on the same store runs after the writes queued before it). */
    persisted() {
      return local.whenSynced.then(
        () =>
          new Promise((resolve, reject) => {
            const tx = local.db.transaction(["updates"], "readonly");
            tx.oncomplete = () => resolve();
            tx.onerror = () => reject(tx.error);
          }),
      );
    },
    saveState,
    connection,
    /** Resolves on the first sync with the server (the document then exists there). */
    serverSynced: () => firstSync,
    setUser(fields) {
      Object.assign(user, fields);
      editor.commands.updateUser({ name: user.name, color: user.color });
      renderPeople();
    },
    setActive(active) {
      provider.setAwarenessField("active", active);
    },
    /** Send a chat message; false (nothing sent) when not connected or too long. */
    sendChat(text) {
      if (Array.from(text).length > CHAT_MAX) {
        toast(`A message can have at most ${CHAT_MAX} characters`);
        return false;
      }
      if (connection() !== "connected" || !provider.isAuthenticated) {
        toast("Not connected: the message was not sent");
        return false;
      }
      provider.sendStateless(JSON.stringify({ type: "cowrite.chat.send", text, name: user.name }));
      return true;
    },
    undo: () => editor.chain().focus().undo().run(),
    redo: () => editor.chain().focus().redo().run(),
    focus: () => editor.commands.focus(),
    destroy() {
      if (destroyed) return;
      destroyed = true;
      window.removeEventListener("offline", onOffline);
      window.removeEventListener("online", onOnline);
      toolbar.removeEventListener("keydown", onToolbarKey);
      linkForm.removeEventListener("submit", onLinkSubmit);
      linkForm.removeEventListener("keydown", onLinkKey);
      $("rich-link-remove").removeEventListener("click", onLinkRemove);
      $("rich-link-cancel").removeEventListener("click", closeLinkForm);
      linkForm.hidden = true;
      toolbar.replaceChildren();
      toolbar.hidden = true;
      editor.destroy();
      provider.destroy();
      local.destroy();
      host.remove();
      ydoc.destroy();
      $("chat-log").replaceChildren();
      $("people").replaceChildren();
      document.body.classList.remove("disconnected");
    },
  };
}
