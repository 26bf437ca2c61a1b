// cowrite JavaScript client: an ES module with no dependencies (docs/javascript-client.md).
//
//   import { CowriteClient } from "./client.js";
//   const client = new CowriteClient({ url: "ws://127.0.0.1:8000/ws", user: { name: "Ada" } });
//   client.connect();
//   const doc = client.open("notes", { create: true });
//   await doc.ready;
//   doc.text("body").insert(0, "Hello ");
//   doc.on("change", ({ changes, origin }) => { ... });
//   await doc.whenSynced();
//
// One WebSocket carries every open document. The client speaks the thin-client protocol
// (docs/protocol.md): one batch in flight per document, remote edits rebased over local ones
// (ThinDocState in thin.js), reconnects with exponential backoff and jitter, rejoin with the last
// version seen (or a snapshot and a three-way merge), the in-flight batch resent with the same
// edit_id (exactly-once). Positions are Unicode code points, as on the wire; cpToUtf16 and
// utf16ToCp convert for UTF-16 editors, and in O(log n) on a text's Rope (session.rope(node), the
// `before` of a text change).
//
// Modules: this one is the connection (CowriteClient: the socket, hello, reconnects, routing
// messages to documents); session.js is one open document (DocumentSession), handles.js its
// typed node handles, emitter.js the event emitter they share. This module exports them all.

import * as ot from "./ot.js";
import { ThinDocState, randomHex } from "./thin.js";
import { Emitter } from "./emitter.js";
import { DocumentSession } from "./session.js";

export { ot, ThinDocState, Emitter, DocumentSession };
export { TextHandle, ListHandle, MapHandle, RegisterHandle, CounterHandle } from "./handles.js";
export { Rope } from "./rope.js";
export { UndoManager, isRestoreEdit, RESTORE_EDIT_PREFIX } from "./undo.js";
export { cpLength, cpToUtf16, utf16ToCp, cpSlice, InvalidOperation } from "./ot.js";

export const PROTOCOL_VERSION = 1;

const now = () => Date.now();

/**
 * How long the server may stay silent before the link counts as dead (half-open: the server or
 * the path to it vanished without a close) and is dropped and reopened. The server pings every
 * `heartbeat_s` (the welcome's; 30 s by default), so a live link is never silent much longer: one
 * heartbeat plus half of one (at least 10 s) for a late ping, i.e. 45 s at the default (checked
 * every 5 s). The Python SDK uses the same rule (`cowrite.client.transport.silence_limit_s`).
 */
function silenceLimitMs(heartbeatS) {
  const beatMs = (Number.isFinite(heartbeatS) && heartbeatS > 0 ? heartbeatS : 30) * 1000;
  return Math.max(5000, beatMs + Math.max(beatMs / 2, 10_000));
}

/** Connection statuses, in the order a session usually meets them. */
export const STATUS = Object.freeze({
  IDLE: "idle", // connect() not called yet
  CONNECTING: "connecting", // first attempt
  CONNECTED: "connected", // welcome received
  RECONNECTING: "reconnecting", // lost the connection, retrying soon
  OFFLINE: "offline", // the browser is offline, or the server has been unreachable for a while
  CLOSED: "closed", // close() called, or the server refused us (bad token)
});

/**
 * One connection to a cowrite server, carrying any number of documents.
 *
 * Options: url (ws:// or wss:// URL of /ws), clientId (stable across reconnects; default: random),
 * user ({name, color, fields}: used without auth), key (without auth: a secret of 16-128 characters
 * proving authorship of chat messages; keep it with the clientId; default: random), token (JWT,
 * with auth), WebSocket (constructor,
 * default globalThis.WebSocket), reconnect ({initialDelayMs, maxDelayMs, factor, offlineAfter}),
 * batchIntervalMs and batchBurst (a document's edit batches leave at most one per batchIntervalMs
 * on average, in bursts of up to batchBurst: default 25 ms and 4),
 * presenceIntervalMs (minimum time between two cursor updates, default 80), historyVersions.
 *
 * Events: "status" {status, previous, attempt, retryInMs}, "welcome" {session, user, heartbeat_s},
 * "error" {code, message} (connection-level), "message" (every server message, for debugging).
 */
export class CowriteClient extends Emitter {
  constructor(options = {}) {
    super();
    if (!options.url) throw new TypeError("CowriteClient needs {url}");
    this.url = options.url;
    this.clientId = options.clientId || `js-${randomHex(8)}`;
    this.user = { ...(options.user || {}) };
    this.token = options.token ?? null;
    this.key = options.key || randomHex(16);
    this.WebSocket = options.WebSocket || globalThis.WebSocket;
    const rc = options.reconnect || {};
    this.reconnectOptions = {
      initialDelayMs: rc.initialDelayMs ?? 300,
      maxDelayMs: rc.maxDelayMs ?? 10_000,
      factor: rc.factor ?? 2,
      offlineAfter: rc.offlineAfter ?? 3,
    };
    this.batchIntervalMs = options.batchIntervalMs ?? 25;
    this.batchBurst = Math.max(1, Math.floor(Number(options.batchBurst ?? 4)) || 1);
    this.presenceIntervalMs = options.presenceIntervalMs ?? 80;
    this.historyVersions = options.historyVersions ?? 1000;
    this.status = STATUS.IDLE;
    /** From the server's welcome: this connection's session id and the user as the server sees it. */
    this.session = null;
    this.serverUser = null;
    this.heartbeatS = 30;
    /** What the server understands beyond the base protocol (its `features` message, right
     *  after welcome; none from an older server): `revive` (T11 "Revivals"). */
    this.features = new Set();
    this.docs = new Map();
    this._ws = null;
    this._attempt = 0;
    this._retryTimer = null;
    this._livenessTimer = null;
    this._lastFrameAt = 0;
    this._serverDelayMs = null;
    this._browserOffline = false;
    this._wanted = false;
    this._onOnline = () => {
      this._browserOffline = false;
      if (this._wanted && !this._ws) {
        this._attempt = 0;
        this._clearRetry();
        this._open();
      }
    };
    this._onOffline = () => {
      this._browserOffline = true;
      if (this._wanted) {
        this._setStatus(STATUS.OFFLINE);
        if (this._ws) this._drop("the browser went offline");
      }
    };
  }

  /** True once welcome was received on the current socket. */
  get connected() {
    return this.status === STATUS.CONNECTED;
  }

  /** Open the connection (and keep it open: reconnects until close()). */
  connect() {
    if (this._wanted) return this;
    this._wanted = true;
    if (typeof window !== "undefined" && window.addEventListener) {
      window.addEventListener("online", this._onOnline);
      window.addEventListener("offline", this._onOffline);
      if (typeof navigator !== "undefined" && navigator.onLine === false) this._browserOffline = true;
    }
    this._open();
    return this;
  }

  /** Close the connection for good (documents stay readable, nothing more is sent). */
  close() {
    this._wanted = false;
    this._clearRetry();
    if (typeof window !== "undefined" && window.removeEventListener) {
      window.removeEventListener("online", this._onOnline);
      window.removeEventListener("offline", this._onOffline);
    }
    const ws = this._ws;
    this._detach();
    if (ws) {
      try {
        ws.close(1000, "client closed");
      } catch {
        /* already closed */
      }
    }
    this._setStatus(STATUS.CLOSED);
  }

  /** Reconnect now (skipping the backoff delay); no-op while connected. */
  reconnectNow() {
    if (!this._wanted || this._ws) return;
    this._clearRetry();
    this._open();
  }

  /**
   * Open document `id` (returns its DocumentSession at once; `await session.ready` for the
   * first `joined`). Options: create (create it if missing), restore (a state saved by
   * persist.js before a reload: its unacknowledged edits are resent, at most once).
   */
  open(id, { create = false, restore = null } = {}) {
    let session = this.docs.get(id);
    if (session) return session;
    session = new DocumentSession(this, id, { create });
    if (restore) session._restore(restore);
    this.docs.set(id, session);
    if (this.connected) session._join();
    return session;
  }

  /** Change the user's name/color: used for the next hello and sent to every open document. */
  setUser(user) {
    this.user = { ...this.user, ...user };
    for (const doc of this.docs.values()) {
      if (doc.state.joined) this.send({ type: "presence", doc: doc.id, user: this._userMessage() });
    }
  }

  /** Send a protocol message now; false when not connected (the message is dropped). */
  send(msg) {
    const ws = this._ws;
    if (!ws || ws.readyState !== 1 || !this._welcomed) return false;
    ws.send(JSON.stringify(msg));
    return true;
  }

  // ------------------------------------------------------------------------ internals

  _userMessage() {
    const u = {};
    if (this.user.name) u.name = String(this.user.name).slice(0, 100);
    if (this.user.color) u.color = String(this.user.color).slice(0, 100);
    if (this.user.fields) u.fields = this.user.fields;
    return u;
  }

  _setStatus(status, extra = {}) {
    if (this.status === status && !extra.force) return;
    const previous = this.status;
    this.status = status;
    this.emit("status", { status, previous, attempt: this._attempt, ...extra });
  }

  _open() {
    if (!this._wanted) return;
    // even when the browser says it is offline we try (navigator.onLine can be wrong): the
    // status stays "offline" until a welcome arrives
    if (this.status === STATUS.IDLE || this.status === STATUS.CLOSED) this._setStatus(STATUS.CONNECTING);
    let ws;
    try {
      ws = new this.WebSocket(this.url);
    } catch (err) {
      this.emit("error", { code: "connect_failed", message: String(err) });
      this._scheduleRetry();
      return;
    }
    this._ws = ws;
    this._welcomed = false;
    ws.onopen = () => {
      if (ws !== this._ws) return;
      this._lastFrameAt = now();
      const hello = { type: "hello", client_id: this.clientId, protocol: PROTOCOL_VERSION, user: this._userMessage() };
      if (this.token) hello.token = this.token;
      else hello.key = this.key;
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (event) => {
      if (ws !== this._ws) return;
      this._lastFrameAt = now();
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      if (Array.isArray(data)) for (const msg of data) this._handle(msg);
      else this._handle(data);
      for (const doc of this.docs.values()) doc._afterFrame();
    };
    ws.onclose = (event) => {
      if (ws !== this._ws) return;
      this._detach();
      if (event.code === 1008) {
        // policy: a bad token or a hostile client; retrying would not help
        this._wanted = false;
        this.emit("error", { code: "closed", message: event.reason || "the server closed the connection" });
        this._setStatus(STATUS.CLOSED);
        return;
      }
      this._scheduleRetry();
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  /** Forget the socket and tell the documents. */
  _detach() {
    const ws = this._ws;
    this._ws = null;
    this._welcomed = false;
    if (this._livenessTimer) clearInterval(this._livenessTimer);
    this._livenessTimer = null;
    if (ws) ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    for (const doc of this.docs.values()) doc._disconnected();
  }

  /** Drop the current socket (half-open, offline) and retry. */
  _drop(reason) {
    const ws = this._ws;
    this._detach();
    if (ws) {
      try {
        ws.close(4000, reason);
      } catch {
        /* ignore */
      }
    }
    this._scheduleRetry();
  }

  _clearRetry() {
    if (this._retryTimer) clearTimeout(this._retryTimer);
    this._retryTimer = null;
  }

  _scheduleRetry() {
    if (!this._wanted || this._retryTimer) return;
    const o = this.reconnectOptions;
    let delay;
    if (this._serverDelayMs !== null) {
      delay = this._serverDelayMs + Math.random() * Math.max(100, this._serverDelayMs / 2);
      this._serverDelayMs = null;
    } else {
      const cap = Math.min(o.maxDelayMs, o.initialDelayMs * o.factor ** this._attempt);
      delay = cap / 2 + Math.random() * (cap / 2); // "equal jitter": spread, never hammer
    }
    this._attempt++;
    const status = this._browserOffline || this._attempt > o.offlineAfter ? STATUS.OFFLINE : STATUS.RECONNECTING;
    this._setStatus(status, { retryInMs: Math.round(delay), force: true });
    this._retryTimer = setTimeout(() => {
      this._retryTimer = null;
      this._open();
    }, delay);
  }

  _handle(msg) {
    this.emit("message", msg);
    switch (msg.type) {
      case "welcome":
        this._welcomed = true;
        this._attempt = 0;
        this._browserOffline = false;
        this.session = msg.session;
        this.serverUser = msg.user;
        this.heartbeatS = Number.isFinite(msg.heartbeat_s) && msg.heartbeat_s > 0 ? msg.heartbeat_s : 30;
        this._setFeatures([]); // until its features message says more
        this._startLiveness();
        this._setStatus(STATUS.CONNECTED);
        this.emit("welcome", msg);
        for (const doc of this.docs.values()) doc._join();
        return;
      case "features":
        this._setFeatures(Array.isArray(msg.features) ? msg.features : []);
        return;
      case "ping":
        this.send({ type: "pong", nonce: msg.nonce ?? 0 });
        return;
      case "reconnect":
        this._serverDelayMs = Math.max(0, msg.after_ms || 0);
        return;
      case "error":
        if (msg.doc && this.docs.has(msg.doc)) this.docs.get(msg.doc)._onError(msg);
        else this.emit("error", msg);
        return;
      default:
        if (msg.doc && this.docs.has(msg.doc)) this.docs.get(msg.doc)._onMessage(msg);
    }
  }

  _setFeatures(names) {
    this.features = new Set(names);
    // an undo/redo names what it brings back only to a server that knows `revive` (an older
    // one refuses the field): the batches are formed when sent, after this
    for (const doc of this.docs.values()) doc.state.revive = this.features.has("revive");
  }

  _startLiveness() {
    if (this._livenessTimer) clearInterval(this._livenessTimer);
    const limitMs = silenceLimitMs(this.heartbeatS);
    this._livenessTimer = setInterval(() => {
      if (this._ws && now() - this._lastFrameAt > limitMs) this._drop("no frame from the server");
    }, Math.max(1000, Math.min(limitMs / 3, 5000)));
  }

  _forget(id) {
    this.docs.delete(id);
  }
}
