// One open document of a CowriteClient (client.js): the thin-client state (ThinDocState in
// thin.js) behind an event API, its edit batches (one in flight), presence, chat, and the restore
// of a state saved by persist.js before a reload.

import * as ot from "./ot.js";
import { Emitter } from "./emitter.js";
import { CounterHandle, ListHandle, MapHandle, RegisterHandle, TextHandle } from "./handles.js";
import { ThinDocState, equal } from "./thin.js";
import { importThin } from "./persist.js";

const now = () => Date.now();

/**
 * One open document (thin mode). Values and positions are as the user sees them (local view:
 * server state, then the batch in flight, then pending edits), positions in code points.
 *
 * Events: "joined" {version, snapshot}, "change" {changes, origin: "local"|"remote"|"snapshot"|
 * "rejected", clientId}, "ack" {editId, version}, "sync" {synced}, "presence" {members, changed,
 * left}, "chat" {message}, "chat_page" {messages, hasMore}, "error" {code, message}, "deleted",
 * "saving" {pending} (the server cannot store edits right now: they wait, unacknowledged).
 */
export class DocumentSession extends Emitter {
  constructor(client, id, { create = false } = {}) {
    super();
    this.client = client;
    this.id = id;
    this.create = create;
    this.state = new ThinDocState(id, client.clientId, { historyVersions: client.historyVersions, revive: !!client.features && client.features.has("revive") });
    /** session id -> {session, user, active, cursor (server coordinates), local: [anchor, head]|null, self} */
    this.members = new Map();
    /** chat messages by id (Map keeps them in arrival order; see chatMessages()). */
    this.chat = new Map();
    this.chatHasMore = false;
    /** True while the server says it cannot store edits (see the "saving" event). */
    this.savingPending = false;
    /** Opened with a saved state holding unacknowledged edits (see `open({restore})`). */
    this.restored = false;
    /** Optional (batch) => Promise|null, called when a batch is taken: a promise delays sending
     *  it until the promise settles (persist.js records it first). */
    this.beforeBatch = null;
    this.closed = false;
    this.deleted = false;
    this._readyResolve = null;
    this._readyReject = null;
    this.ready = new Promise((resolve, reject) => {
      this._readyResolve = resolve;
      this._readyReject = reject;
    });
    this.ready.catch(() => {});
    this._everJoined = false;
    this._paceAt = 0;
    this._flushTimer = null;
    this._flushQueued = false; // a microtask will flush
    this._flushBackoff = false; // the flush timer is a retry's delay
    this._retryDelay = 250;
    this._cursor = null; // {node, anchor, head} local coordinates, wanted
    this._cursorDirty = false;
    this._cursorTimer = null;
    this._lastCursorAt = 0;
    this._dirtySince = 0;
    this._active = null;
    this._chatOutbox = [];
    this._cursorRejectedAt = null;
    this._historyWaiters = [];
    this._synced = true;
    this._syncWaiters = [];
  }

  // ------------------------------------------------------------------------ reading

  get version() {
    return this.state.version;
  }
  get rights() {
    return this.state.rights;
  }
  get joined() {
    return this.state.joined;
  }
  /** Every local edit is acknowledged (durable on the server). */
  get synced() {
    return this.state.synced;
  }
  /** The local value of a node id ("text:body", "register:title", "#12.3"). */
  value(node) {
    return this.state.value(node);
  }
  /** The local value of a text node as an immutable Rope (rope.js): length, cpToUtf16,
   *  utf16ToCp and slice in O(log n), without building the string. */
  rope(node) {
    return this.state.rope(node);
  }
  /** Resolves when every local edit made so far is acknowledged. */
  whenSynced() {
    if (this.state.synced && this.state.joined) return Promise.resolve();
    return new Promise((resolve) => this._syncWaiters.push(resolve));
  }

  /** Handles of named roots: text("body") is node "text:body", etc. */
  text(name) {
    return new TextHandle(this, `text:${name}`);
  }
  list(name) {
    return new ListHandle(this, `list:${name}`);
  }
  map(name) {
    return new MapHandle(this, `map:${name}`);
  }
  register(name) {
    return new RegisterHandle(this, `register:${name}`);
  }
  counter(name) {
    return new CounterHandle(this, `counter:${name}`);
  }

  // -------------------------------------------------------------------- local edits

  /** Apply an index op (code points) to a text or list node and send it. */
  edit(node, op) {
    this._checkOpen();
    this.state.localEdit(node, op);
    this._local([{ type: "seq", node, edit: ot.normalize(op) }]);
  }
  /** Write a register (key null) or a map key. */
  set(node, key, value) {
    this._checkOpen();
    const change = this.state.localSet(node, key, value);
    this._local(change ? [change] : []);
  }
  delete(node, key) {
    this._checkOpen();
    const change = this.state.localDelete(node, key);
    this._local(change ? [change] : []);
  }
  add(node, amount) {
    this._checkOpen();
    this.state.localAdd(node, amount);
    this._local([{ type: "add", node, amount }]);
  }

  /** Show our caret/selection (code points, local coordinates) to the others. */
  setCursor(node, anchor, head = anchor) {
    this._cursor = { node, anchor, head };
    if (!this._cursorDirty) this._dirtySince = now();
    this._cursorDirty = true;
    this._schedulePresence();
  }

  /** Mark ourselves active or idle (the server also marks idle after idle_after_s). */
  setActive(active) {
    this._active = Boolean(active);
    if (this.state.joined) this.client.send({ type: "presence", doc: this.id, active: this._active });
  }

  /** Post a chat message (queued while disconnected). */
  sendChat(text) {
    text = String(text);
    if (!text.trim()) return;
    if (this.state.joined && this.client.send({ type: "chat_send", doc: this.id, text })) return;
    this._chatOutbox.push(text);
  }
  editChat(id, text) {
    return this.client.send({ type: "chat_edit", doc: this.id, id, text: String(text) });
  }
  deleteChat(id) {
    return this.client.send({ type: "chat_delete", doc: this.id, id });
  }
  /** Older chat messages: resolves {messages (newest first), hasMore}. */
  chatHistory({ before = null, limit = 50 } = {}) {
    const msg = { type: "chat_history", doc: this.id, limit };
    if (before !== null) msg.before = before;
    if (!this.client.send(msg)) return Promise.reject(new Error("not connected"));
    return new Promise((resolve) => this._historyWaiters.push(resolve));
  }
  /** The chat messages known, oldest first. */
  chatMessages() {
    return [...this.chat.values()].sort((a, b) => a.id - b.id);
  }

  /** Leave the document (the session cannot be used afterwards). */
  leave() {
    if (this.closed) return;
    this.closed = true;
    this.client.send({ type: "leave", doc: this.id });
    this._clearTimers();
    this.client._forget(this.id);
  }

  // ---------------------------------------------------------------------- internals

  /** Before the first join: take back the unacknowledged edits of a saved state. */
  _restore(saved) {
    this.restored = importThin(this.state, saved);
    this._synced = this.state.synced;
  }

  _checkOpen() {
    if (this.closed) throw new Error(`document ${this.id} was left`);
  }

  _local(changes) {
    this._remapMembers(changes);
    if (changes.length) this.emit("change", { changes, origin: "local", clientId: this.client.clientId });
    this._checkSync();
    this._scheduleFlush();
  }

  _clearTimers() {
    if (this._flushTimer) clearTimeout(this._flushTimer);
    if (this._cursorTimer) clearTimeout(this._cursorTimer);
    this._flushTimer = this._cursorTimer = null;
  }

  _join() {
    if (this.closed) return;
    const msg = this.state.joinMessage({ create: this.create });
    this.client.send(msg);
  }

  _disconnected() {
    this.state.onDisconnect();
    if (this._flushTimer) clearTimeout(this._flushTimer);
    this._flushTimer = null;
    this._historyWaiters.splice(0).forEach((resolve) => resolve({ messages: [], hasMore: this.chatHasMore }));
  }

  _scheduleFlush(delay = null) {
    if (this._flushQueued || this.closed) return;
    // one batch on the wire: keep coalescing, its ack (or whatever settles it) schedules the next
    if (delay === null && this.state.inflight?.sent) return;
    const wait = delay ?? this._paceWait();
    if (delay === null && wait <= 0) {
      // the pace allows it: send now, without a timer hop (a microtask, so the edits of one
      // task still leave as one batch)
      if (this._flushTimer) {
        if (this._flushBackoff) return; // a retry waits out its delay
        clearTimeout(this._flushTimer);
        this._flushTimer = null;
      }
      this._flushQueued = true;
      queueMicrotask(() => {
        this._flushQueued = false;
        this._flush();
      });
      return;
    }
    if (this._flushTimer) return;
    this._flushBackoff = delay !== null;
    this._flushTimer = setTimeout(() => {
      this._flushTimer = null;
      this._flush();
    }, wait);
  }

  /** How long the next batch must wait (ms) to keep to the pace (0: it may leave now). A batch
   *  that waited for an ack does not wait again: the budget holds batchBurst batches. */
  _paceWait() {
    const { batchIntervalMs, batchBurst } = this.client;
    return Math.max(0, this._paceAt - (batchBurst - 1) * batchIntervalMs - now());
  }

  _flush() {
    if (this.closed || !this.client.connected) return;
    if (this.state.rejoinNeeded) {
      this._join();
      return;
    }
    const batch = this.state.takeBatch();
    if (!batch) return;
    // batches leave at most one per batchIntervalMs on average, in bursts of up to batchBurst
    // (GCRA: `_paceAt` is when the burst budget is whole again)
    this._paceAt = Math.max(this._paceAt, now()) + this.client.batchIntervalMs;
    const written = this.beforeBatch ? this.beforeBatch(batch) : null;
    if (!written) {
      this.client.send(batch);
      return;
    }
    // write-ahead: the batch leaves once it is recorded (persist.js), so a batch the server may
    // have applied is never missing from what a reload restores. A reconnect meanwhile marks it
    // unsent: it goes out again, with the same edit_id, after the rejoin.
    const ws = this.client._ws;
    written.then(() => {
      const inflight = this.state.inflight;
      if (this.client._ws === ws && inflight?.editId === batch.edit_id && inflight.sent && !this.closed) this.client.send(batch);
    });
  }

  _afterFrame() {
    if (this._cursorRejectedAt !== null && this.state.version !== this._cursorRejectedAt) {
      this._cursorRejectedAt = null;
      if (this._cursor) {
        this._cursorDirty = true;
        this._dirtySince = now();
      }
    }
    if (this.state.rejoinNeeded && this.client.connected) this._join();
    else if (this.state.joined && (this.state.pending.size || (this.state.inflight && !this.state.inflight.sent))) this._scheduleFlush();
    this._schedulePresence();
  }

  _checkSync() {
    const synced = this.state.synced;
    if (synced !== this._synced) {
      this._synced = synced;
      this.emit("sync", { synced });
    }
    if (synced && this.state.joined && this._syncWaiters.length) this._syncWaiters.splice(0).forEach((r) => r());
  }

  _schedulePresence() {
    if (!this._cursorDirty || this._cursorTimer || !this.state.joined) return;
    // Positions are sent "as of version": with edits outstanding the server would place the
    // caret before our own unacknowledged text, so wait (briefly) until we are synced.
    const waitSync = !this.state.synced && now() - this._dirtySince < 1000;
    const wait = waitSync ? 100 : Math.max(0, this._lastCursorAt + this.client.presenceIntervalMs - now());
    this._cursorTimer = setTimeout(() => {
      this._cursorTimer = null;
      if (!this._cursorDirty || !this.state.joined || !this.client.connected) return;
      if (!this.state.synced && now() - this._dirtySince < 1000) {
        this._schedulePresence();
        return;
      }
      this._sendCursor();
    }, wait);
  }

  _sendCursor() {
    const c = this._cursor;
    if (!c) return;
    let cursor;
    try {
      cursor = this.state.cursorToServer(c.node, c.anchor, c.head);
    } catch {
      this._cursorDirty = false;
      return;
    }
    this._cursorDirty = false;
    this._lastCursorAt = now();
    this.client.send({ type: "presence", doc: this.id, cursor });
  }

  _onMessage(msg) {
    switch (msg.type) {
      case "joined":
        return this._onJoined(msg);
      case "remote": {
        const hadInflight = this.state.inflight;
        const changes = this.state.onRemote(msg);
        if (hadInflight && !this.state.inflight) this.emit("ack", { editId: hadInflight.editId, version: msg.version });
        this._remapMembers(changes, msg.client_id);
        if (changes.length) this.emit("change", { changes, origin: "remote", clientId: msg.client_id });
        this._checkSync();
        if (this.state.pending.size) this._scheduleFlush(); // an undo manager's correction (undo.js settle)
        return;
      }
      case "ack": {
        const inflight = this.state.inflight;
        const changes = this.state.onAck(msg);
        this._retryDelay = 250;
        if (inflight && !this.state.inflight) this.emit("ack", { editId: msg.edit_id, version: msg.version });
        if (changes.length) this.emit("change", { changes, origin: changes.some((c) => c.type === "seq") ? "rejected" : "remote" });
        this._checkSync();
        this._scheduleFlush();
        return;
      }
      case "resync":
        this.state.onResync();
        return;
      case "checksum": // our copy against the server's (checksum.js); a mismatch rejoins
        for (const node of this.state.onChecksum(msg)) {
          this.client.send({ type: "diverged", doc: this.id, version: msg.version, node });
          this.emit("diverged", { node, version: msg.version });
        }
        return;
      case "saving":
        this.savingPending = msg.pending;
        this.emit("saving", { pending: msg.pending });
        return;
      case "presence_update":
        return this._onPresence(msg);
      case "chat":
        this.chat.set(msg.message.id, msg.message);
        this.emit("chat", { message: msg.message });
        return;
      case "chat_page": {
        for (const m of msg.messages) if (!this.chat.has(m.id)) this.chat.set(m.id, m);
        this.chatHasMore = msg.has_more;
        const page = { messages: msg.messages, hasMore: msg.has_more };
        const waiter = this._historyWaiters.shift();
        if (waiter) waiter(page);
        this.emit("chat_page", page);
        return;
      }
      default:
        return;
    }
  }

  _onJoined(msg) {
    const changes = this.state.onJoined(msg);
    const self = this.client.session;
    this.members.clear();
    for (const entry of msg.presence || []) this._member(entry, entry.session === self);
    const fresh = [];
    for (const m of msg.chat || []) {
      const known = this.chat.get(m.id);
      if (!known || !equal(known, m)) fresh.push(m);
      this.chat.set(m.id, m);
    }
    if (!this._everJoined) this.chatHasMore = (msg.chat || []).length >= 50;
    this._remapMembers(changes);
    if (changes.length) this.emit("change", { changes, origin: "snapshot" });
    this.emit("joined", { version: msg.version, snapshot: msg.snapshot != null, rejoin: this._everJoined });
    this.emit("presence", { members: this.members, changed: [...this.members.values()], left: [] });
    if (this._everJoined) for (const m of fresh) this.emit("chat", { message: m });
    this._everJoined = true;
    this._readyResolve(this);
    // our presence is per connection: announce it again
    const presence = { type: "presence", doc: this.id, user: this.client._userMessage() };
    if (this._active === false) presence.active = false;
    this.client.send(presence);
    if (this._cursor) {
      this._cursorDirty = true;
      this._dirtySince = now();
    }
    for (const text of this._chatOutbox.splice(0)) this.client.send({ type: "chat_send", doc: this.id, text });
    this._checkSync();
  }

  _onError(msg) {
    if (msg.code === "unknown_document") {
      if (this._everJoined) {
        this.deleted = true;
        this.emit("deleted", msg);
      }
      this._readyReject(Object.assign(new Error(msg.message), { code: msg.code }));
      this.emit("error", msg);
      return;
    }
    if (msg.code === "unknown_node" && !msg.edit_id && this._cursor) {
      // our cursor names a node the server does not have yet (nobody typed in it): resend it
      // once the document changes
      this._cursorRejectedAt = this.state.version;
    }
    const outcome = this.state.onError(msg);
    if (outcome.action === "retry") {
      this._scheduleFlush(this._retryDelay);
      this._retryDelay = Math.min(this._retryDelay * 2, 5000);
    } else if (outcome.action === "rejected" && outcome.changes.length) {
      this._remapMembers(outcome.changes);
      this.emit("change", { changes: outcome.changes, origin: "rejected" });
    }
    this._checkSync();
    this.emit("error", msg);
  }

  _member(entry, self = false) {
    const member = { session: entry.session, user: entry.user || {}, active: entry.active !== false, cursor: entry.cursor || null, local: null, self };
    if (member.cursor) member.local = this.state.cursorToLocal(member.cursor);
    this.members.set(entry.session, member);
    return member;
  }

  _onPresence(msg) {
    const self = this.client.session;
    const changed = [];
    for (const entry of msg.entries || []) {
      if (entry.session === self) continue;
      changed.push(this._member(entry));
    }
    const left = [];
    for (const session of msg.left || []) {
      if (this.members.delete(session)) left.push(session);
    }
    this.emit("presence", { members: this.members, changed, left });
  }

  /** Keep members' local cursors on the right characters while the text changes. */
  _remapMembers(changes, clientId = null) {
    for (const change of changes) {
      if (change.type !== "seq") continue;
      for (const m of this.members.values()) {
        if (m.local && m.cursor && m.cursor.node === change.node) {
          // a member whose user id is the edit's client id (clients that name users so): its own
          // typing pushes its caret along; others are placed again by their next presence update
          const own = clientId !== null && m.user.id === clientId;
          m.local = [ot.transformPosition(m.local[0], change.edit, own), ot.transformPosition(m.local[1], change.edit, own)];
        }
      }
    }
  }
}
