// Real Yjs clients over real WebSockets (the `ws` package), driven from Python
// (tests/yjs/conftest.py `YClients`): the unchanged `y-websocket` WebsocketProvider and
// `@hocuspocus/provider` HocuspocusProvider against a running `cowrite serve`.
//   node yclients.mjs            (one process may hold many clients, each with its own Y.Doc)
// stdin: one JSON command a line, `{"id": n, "cmd": ..., ...}`; stdout: one JSON answer a line,
// `{"id": n, "ok": true, ...}` or `{"id": n, "ok": false, "error": "..."}`. Commands run
// concurrently (an `edit` with pauses does not hold the others up). Commands:
//   open {client, dialect: "hocuspocus"|"ywebsocket", url, name, token?, socket?, user?,
//         session_awareness?}
//        url: ws://HOST:PORT/hocuspocus or ws://HOST:PORT/yjs; `socket` names a shared
//        HocuspocusProviderWebsocket (several documents multiplexed on one socket)
//   edit {client, seed, n, pause_ms?, kinds?}   seeded random edits on Y.Text "text", Y.Map
//        "map", Y.Array "array" and Y.XmlFragment "xml" (one transaction each)
//   type {client, text, root?}  append `text` to Y.Text `root` (default "text")
//   disconnect {client} / connect {client}     provider.disconnect() / connect()
//   connect_and_type {client, n, char?}         connect, type n characters as soon as it opens
//   socket_disconnect {socket} / socket_connect {socket}
//   awareness {client, field, value}            setLocalStateField
//   stateless {client, payload}                 Hocuspocus sendStateless (received: `stateless`)
//   state {client}    what the client sees (see `state()` below)
//   decode {update}   the content of a Yjs update v1 (hex) read into a fresh Y.Doc
//   destroy {client}; exit
import * as Y from "yjs";
import { HocuspocusProvider, HocuspocusProviderWebsocket } from "@hocuspocus/provider";
import { WebsocketProvider } from "y-websocket";
import WebSocket from "ws";
import readline from "node:readline";

const clients = new Map();
const sockets = new Map();
const deniedByUrl = new Map(); // y-websocket logs its auth refusal (console.warn) with its URL

const warn = console.warn;
console.warn = (msg, ...rest) => {
  const s = String(msg);
  if (s.startsWith("Permission denied to access ")) {
    const [head, reason] = s.split("\n");
    const url = head.slice("Permission denied to access ".length, -1);
    deniedByUrl.set(url, [...(deniedByUrl.get(url) ?? []), reason ?? ""]);
    return;
  }
  warn(msg, ...rest);
};
const error = console.error;
const logged = [];
console.error = (...args) => {
  logged.push(args.map(String).join(" ").slice(0, 300));
  if (logged.length > 50) logged.shift();
  error(...args);
};

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const hex = (u8) => Buffer.from(u8).toString("hex");
const unhex = (h) => new Uint8Array(Buffer.from(h, "hex"));

function content(doc) {
  return {
    text: doc.getText("text").toDelta(),
    map: doc.getMap("map").toJSON(),
    array: doc.getArray("array").toJSON(),
    xml: doc.getXmlFragment("xml").toString(),
  };
}

const RECONNECT = { delay: 100, initialDelay: 0, factor: 1.5, minDelay: 50, maxDelay: 500, jitter: false };

function sharedSocket(name, url) {
  let s = sockets.get(name);
  if (!s) {
    s = new HocuspocusProviderWebsocket({ url, WebSocketPolyfill: WebSocket, ...RECONNECT });
    sockets.set(name, s);
  }
  return s;
}

// y-protocols' Awareness drops a remote state not renewed for 30 s by itself, which would hide
// a server that never removes the state of a dead client. Here only the server's removals remove
// remote states; the local state is still renewed every 15 s, as y-protocols does.
function keepRemoteStates(awareness) {
  clearInterval(awareness._checkInterval);
  awareness._checkInterval = setInterval(() => {
    const meta = awareness.meta.get(awareness.clientID);
    if (awareness.getLocalState() !== null && meta && Date.now() - meta.lastUpdated >= 15000) {
      awareness.setLocalState(awareness.getLocalState());
    }
  }, 3000);
}

function open(c) {
  const doc = new Y.Doc();
  const st = {
    dialect: c.dialect, name: c.name, doc, provider: null, status: "connecting", closes: [],
    errors: 0, denied: [], scope: null, authenticated: false, synced: false, syncedOnce: false,
    statuses: [], terminal: null, stateless: [],
  };
  if (c.dialect === "hocuspocus") {
    const opts = {
      name: c.name, document: doc, token: c.token ?? "x",
      onAuthenticated: ({ scope }) => { st.scope = scope; st.authenticated = true; },
      onAuthenticationFailed: ({ reason }) => { st.denied.push(reason); st.authenticated = false; },
      onSynced: ({ state }) => { if (state) st.syncedOnce = true; },
      onStatus: ({ status }) => { st.status = status; },
      onClose: ({ event }) => { st.closes.push({ code: event?.code ?? null, reason: String(event?.reason ?? "") }); },
      onStateless: ({ payload }) => { st.stateless.push(payload); },
      sessionAwareness: Boolean(c.session_awareness), // 4.x routing key `name\0sessionId`
    };
    if (c.socket) {
      st.socket = c.socket;
      const ws = sharedSocket(c.socket, c.url);
      st.provider = new HocuspocusProvider({ ...opts, websocketProvider: ws });
      st.provider.attach();
      st.status = ws.status;
    } else {
      st.provider = new HocuspocusProvider({ ...opts, url: c.url, WebSocketPolyfill: WebSocket, ...RECONNECT });
    }
  } else {
    const params = c.token ? { token: c.token } : {};
    st.provider = new WebsocketProvider(c.url, c.name, doc, {
      WebSocketPolyfill: WebSocket, params, disableBc: true, maxBackoffTime: 400,
    });
    st.provider.on("status", ({ status }) => { st.status = status; });
    st.provider.on("sync", (s) => { if (s) st.syncedOnce = true; });
    st.provider.on("connection-close", (event) => {
      st.closes.push({ code: event?.code ?? null, reason: String(event?.reason ?? "") });
    });
    st.provider.on("connection-error", () => { st.errors += 1; });
    st.provider.on("closed", ({ code, reason }) => { st.terminal = { code, reason: String(reason) }; });
  }
  keepRemoteStates(st.provider.awareness);
  if (c.user) st.provider.awareness.setLocalStateField("user", c.user);
  clients.set(c.client, st);
  return state(st);
}

function state(st) {
  const p = st.provider;
  const awareness = {};
  for (const [id, s] of p.awareness.getStates()) awareness[id] = s;
  const out = {
    dialect: st.dialect, clientID: st.doc.clientID, status: st.status, closes: st.closes,
    errors: st.errors, content: content(st.doc), sv: hex(Y.encodeStateVector(st.doc)),
    awareness, syncedOnce: st.syncedOnce,
  };
  if (st.dialect === "hocuspocus") {
    Object.assign(out, {
      synced: p.isSynced, unsynced: p.unsyncedChanges, authenticated: p.isAuthenticated,
      scope: p.authorizedScope ?? st.scope, denied: st.denied, stateless: st.stateless,
    });
  } else {
    Object.assign(out, {
      synced: p.synced, unsynced: null, connected: p.wsconnected,
      denied: deniedByUrl.get(p.url) ?? [], terminal: st.terminal,
    });
  }
  return out;
}

const LETTERS = "abcdefghijklmnopqrstuvwxyzäöü€😀 ";

function word(rng, n) {
  let s = "";
  for (let i = 0; i < n; i++) s += [...LETTERS][Math.floor(rng() * [...LETTERS].length)];
  return s;
}

// A position in a Y.Text / Y.XmlText that does not split a surrogate pair (an emoji): editors
// never do, and the server refuses it (close 1003: Yrs cannot hold it; see
// test_an_update_that_splits_an_emoji_* in test_server_e2e.py).
function whole(t, i) {
  const s = t.toDelta().map((d) => (typeof d.insert === "string" ? d.insert : " ")).join("");
  const c = s.charCodeAt(i - 1);
  return i > 0 && i < s.length && c >= 0xd800 && c <= 0xdbff ? i - 1 : i;
}

function editOnce(doc, rng, kinds, tag) {
  const pick = (n) => Math.floor(rng() * n);
  const span = (t, max) => {
    const at = whole(t, pick(t.length));
    return [at, whole(t, Math.min(at + 1 + pick(max), t.length)) - at];
  };
  const kind = kinds[pick(kinds.length)];
  doc.transact(() => {
    if (kind === "text") {
      const t = doc.getText("text");
      const r = rng();
      if (r < 0.6 || t.length === 0) {
        const attrs = rng() < 0.2 ? { bold: true } : rng() < 0.1 ? { italic: true } : undefined;
        t.insert(whole(t, pick(t.length + 1)), `${tag}${word(rng, 1 + pick(4))}`, attrs);
      } else if (r < 0.85) {
        const [at, n] = span(t, 4);
        if (n > 0) t.delete(at, n);
      } else {
        const [at, n] = span(t, 5);
        if (n > 0) t.format(at, n, { italic: rng() < 0.5 ? true : null });
      }
    } else if (kind === "map") {
      const m = doc.getMap("map");
      const key = `k${pick(8)}`;
      const r = rng();
      if (r < 0.55) m.set(key, rng() < 0.5 ? pick(1000) : `${tag}${word(rng, 3)}`);
      else if (r < 0.7) {
        const inner = new Y.Array();
        inner.insert(0, [tag, pick(100)]);
        m.set(key, inner);
      } else if (r < 0.85) {
        const v = m.get(key);
        if (v instanceof Y.Array) v.insert(pick(v.length + 1), [`${tag}n`]);
        else m.set(key, { nested: tag, n: pick(10) });
      } else m.delete(key);
    } else if (kind === "array") {
      const a = doc.getArray("array");
      const r = rng();
      if (r < 0.65 || a.length === 0) {
        const items = [];
        for (let i = 0; i <= pick(3); i++) items.push(rng() < 0.5 ? `${tag}${word(rng, 2)}` : pick(100));
        a.insert(pick(a.length + 1), items);
      } else {
        const at = pick(a.length);
        a.delete(at, Math.min(1 + pick(2), a.length - at));
      }
    } else {
      const x = doc.getXmlFragment("xml");
      const r = rng();
      if (r < 0.35 || x.length === 0) {
        const p = new Y.XmlElement(rng() < 0.2 ? "heading" : "paragraph");
        const t = new Y.XmlText();
        t.insert(0, `${tag}${word(rng, 2)}`);
        p.insert(0, [t]);
        x.insert(pick(x.length + 1), [p]);
      } else if (r < 0.7) {
        const p = x.get(pick(x.length));
        const t = p instanceof Y.XmlElement ? p.get(0) : null;
        if (t instanceof Y.XmlText) {
          t.insert(whole(t, pick(t.length + 1)), word(rng, 1 + pick(3)), rng() < 0.2 ? { bold: true } : undefined);
        }
      } else if (r < 0.85) {
        const p = x.get(pick(x.length));
        if (p instanceof Y.XmlElement) p.setAttribute("level", String(1 + pick(3)));
      } else x.delete(pick(x.length), 1);
    }
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function edit(c) {
  const st = clients.get(c.client);
  const rng = mulberry32(c.seed);
  const kinds = c.kinds ?? ["text", "map", "array", "xml"];
  const tag = c.tag ?? "";
  for (let i = 0; i < c.n; i++) {
    editOnce(st.doc, rng, kinds, tag);
    if (c.pause_ms) await sleep(c.pause_ms * rng() * 2);
    else if (i % 5 === 4) await new Promise((r) => setImmediate(r));
  }
  return state(st);
}

function client(c) {
  const st = clients.get(c.client);
  if (!st) throw new Error(`no client ${c.client}`);
  return st;
}

async function run(c) {
  switch (c.cmd) {
    case "open": return open(c);
    case "edit": return edit(c);
    case "type": {
      const st = client(c);
      const t = st.doc.getText(c.root ?? "text");
      t.insert(c.at ?? t.length, c.text);
      return state(st);
    }
    case "delete": {
      const st = client(c);
      st.doc.getText(c.root ?? "text").delete(c.at, c.n);
      return state(st);
    }
    case "disconnect": client(c).provider.disconnect(); return state(client(c));
    case "connect": client(c).provider.connect(); return state(client(c));
    case "connect_and_type": {
      // connect, and type `n` characters (one update each) the moment the socket opens: a
      // user typing on while the connection comes back, before the sync handshake is through
      const st = client(c);
      const t = st.doc.getText("text");
      await new Promise((resolve) => {
        const opened = ({ status }) => {
          if (status !== "connected") return;
          st.provider.off("status", opened);
          for (let i = 0; i < c.n; i++) t.insert(t.length, c.char ?? "x");
          resolve();
        };
        st.provider.on("status", opened);
        st.provider.connect();
      });
      return state(st);
    }
    case "socket_disconnect": sockets.get(c.socket).disconnect(); return {};
    case "socket_connect": sockets.get(c.socket).connect(); return {};
    case "awareness": {
      const st = client(c);
      st.provider.awareness.setLocalStateField(c.field, c.value);
      return state(st);
    }
    case "stateless": client(c).provider.sendStateless(c.payload); return {};
    case "state": return state(client(c));
    case "states": {
      const out = {};
      for (const [k, st] of clients) out[k] = state(st);
      return { states: out };
    }
    case "decode": {
      const doc = new Y.Doc();
      Y.applyUpdate(doc, unhex(c.update));
      return { content: content(doc), sv: hex(Y.encodeStateVector(doc)) };
    }
    case "destroy": {
      const st = client(c);
      st.provider.destroy();
      clients.delete(c.client);
      return {};
    }
    case "logged": return { logged };
    default: throw new Error(`unknown command ${c.cmd}`);
  }
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const c = JSON.parse(line);
  if (c.cmd === "exit") {
    for (const st of clients.values()) st.provider.destroy();
    for (const s of sockets.values()) s.destroy();
    process.stdout.write(JSON.stringify({ id: c.id, ok: true }) + "\n", () => process.exit(0));
    return;
  }
  Promise.resolve()
    .then(() => run(c))
    .then(
      (r) => process.stdout.write(JSON.stringify({ id: c.id, ok: true, ...r }) + "\n"),
      (e) => process.stdout.write(JSON.stringify({ id: c.id, ok: false, error: String(e?.stack ?? e) }) + "\n"),
    );
});
rl.on("close", () => process.exit(0));
