// The thin client of one document, sans I/O: steps T1-T10 of docs/protocol.md (the spec).
// A port of cowrite's Python SDK core (cowrite/client/thin.py); same algorithm, same names.
//
// Per document the client keeps:
//  * the server state at `version` (node id -> value, as the server had it after that version);
//  * `inflight`: the one batch sent and not yet acknowledged, expressed against the server state;
//  * `pending`: local edits not sent yet, composed per node (one index op per text/list node, the
//    last write per map key or register, the sum of the adds per counter), against
//    server+inflight.
// The local view (what the user sees) is always server · inflight · pending.
//
// A `remote` R (another client's batch, to apply at `version`) is rebased over our own work the
// way the server rebases client edits, client op on the left at ties:
// R' = transform(R, I, "right"), I' = transform(I, R, "left"), then the same over pending P.
// The user sees R''. An `ack` moves the in-flight batch into the server state.
//
// Reconnects: rejoin with `version`; the server replays what we missed as `remote`s (our own
// in-flight batch among them: a remote with our client_id and the in-flight edit_id counts as the
// ack), then we resend the in-flight batch with the same edit_id (an already-applied batch is
// acknowledged, not applied again). When the server's history does not reach back that far it
// sends a snapshot and we do a three-way merge: diff(base, snapshot) is rebased like a remote
// over inflight and pending. An ack naming a version we already have means the batch was applied
// before that snapshot: its second local application is undone (dropInflight).
//
// Map, register and counter ops are not transformed: the server orders writes (last writer wins
// per key) and adds commute. Our own writes show until they are acknowledged.
//
// Positions are code points (see ot.js). Nothing here does I/O or reads a clock.
//
// Text values (server and local) are kept as ropes (rope.js) once edited, so applying an edit
// costs O(log n) whatever the size of the text; a string put in `server` or `local` (a snapshot,
// a restored state) becomes a rope at its first edit. `value()` still returns strings (built once
// per version); `rope()` gives the local text itself, for editor bindings on the hot path.
//
// Modules: the values and queue slots are in thin_values.js, cursor conversion in
// thin_cursors.js, the rejoin and merge steps in thin_merge.js (ThinCursors and ThinMerge: their
// methods are ThinDocState's, like the Python SDK's mixins). This module re-exports what it
// exported before the split.

import * as ot from "./ot.js";
import { verify } from "./checksum.js";
import { Rope, isRope } from "./rope.js";
import { runIndices } from "./undo_revive.js";
import { ThinCursors } from "./thin_cursors.js";
import { CursorHistory } from "./thin_history.js";
import { ThinMerge } from "./thin_merge.js";
import { DELETED, KINDS, SEQ_KINDS, applySeq, asRope, copy, emptyValue, equal, kindOfNodeId, randomHex, seqChange, slotKey, wireOp } from "./thin_values.js";

export { DELETED, SEQ_KINDS, emptyValue, equal, kindOfNodeId, randomHex };

const RETRY_CODES = new Set(["rate_limited", "unavailable"]);

/** One document of a thin client. Inputs: local* (user edits), onJoined/onRemote/onAck/onError
 *  (server messages), onDisconnect. Outputs: takeBatch (the edit to send, if any), joinMessage
 *  (when rejoinNeeded), and the changes each on* returns: wire ops in local coordinates. */
export class ThinDocState {
  constructor(doc, clientId, { editIdPrefix = null, historyVersions = 1000, maxBatchOps = 1000, revive = true } = {}) {
    this.doc = doc;
    this.clientId = clientId;
    /** Send revival names (T11 "Revivals"); false for a server older than them (it refuses
     *  the unknown field). */
    this.revive = revive;
    /** The last server version applied (null before the first join). */
    this.version = null;
    /** What numbers `version` (the server's joined.epoch): sent back when rejoining. */
    this.epoch = "";
    /** The version vector of the server state (null: unknown): sent when rejoining, so any
     *  instance can answer with the exact changes since (joined.ops). */
    this.vv = null;
    this.server = new Map();
    this.local = new Map();
    this.kinds = new Map();
    this.roots = {};
    this.rights = [];
    /** {editId, ops: Map(slotKey -> {kind, node, key, payload}), sent} */
    this.inflight = null;
    this.pending = new Map();
    this.joined = false;
    this.rejoinNeeded = false;
    this.maxBatchOps = maxBatchOps;
    /** How many times a `checksum` showed our copy differed from the server's. */
    this.divergences = 0;
    this._wantSnapshot = false;
    this._joinSent = false; // a join is out and unanswered (its answer covers any rejoin: T6)
    this._prefix = editIdPrefix || randomHex(6);
    this._edits = 0;
    /** The shapes of the last `historyVersions` versions' sequence ops (thin_history.js),
     *  to place remote cursors sent at an older version (T10). */
    this.history = new CursorHistory(historyVersions);
    /** Undo managers (undo.js) following text nodes: told of every change of the local text
     *  (local(node, op, before), remote(node, op, serverBefore, meta), dropInflight()) and
     *  asked to settle() after each server message; marks(batch) names what a batch sent
     *  brings back (`revive`), acked(batch) precedes an acknowledgement (T11 "Revivals"). */
    this.observers = [];
  }

  // ----------------------------------------------------------------------- reading

  /** No local edit is waiting for an acknowledgement. */
  get synced() {
    return this.inflight === null && this.pending.size === 0;
  }

  kind(node) {
    return this.kinds.get(node) || kindOfNodeId(node);
  }

  /** The local value of `node` (a copy for lists and maps). */
  value(node, kind = null) {
    const known = this.kind(node) || kind;
    if (!this.local.has(node)) return known ? emptyValue(known) : null;
    return copy(this.local.get(node));
  }

  /** The local value of text node `node` as a Rope (immutable, shared: no copy); an empty rope
   *  for a node that is not text. Cheap: for editor bindings (positions in UTF-16 units). */
  rope(node) {
    const value = this.local.get(node);
    if (isRope(value)) return value;
    if (typeof value !== "string") return Rope.EMPTY;
    const rope = Rope.from(value);
    this.local.set(node, rope);
    return rope;
  }

  // ------------------------------------------------------------------- local edits

  _claim(node, want) {
    let kind = this.kind(node);
    if (!kind) {
      if (want instanceof Set) throw new ot.InvalidOperation(`unknown node ${node}`);
      kind = want;
    }
    if (want instanceof Set ? !want.has(kind) : kind !== want) {
      throw new ot.InvalidOperation(`${node} is a ${kind}`);
    }
    if (!this.kinds.has(node)) this.kinds.set(node, kind);
    return kind;
  }

  /** Apply an index op (code points) to a text or list node now and queue it. */
  localEdit(node, op) {
    const kind = this._claim(node, SEQ_KINDS);
    op = ot.normalize(op);
    if (!op.length) return;
    const before = this.local.has(node) ? this.local.get(node) : emptyValue(kind);
    const after = applySeq(before, op); // throws, changing nothing, if the op does not fit
    for (const o of this.observers) o.local(node, op, before);
    this.local.set(node, after);
    const k = slotKey("seq", node);
    const queued = this.pending.get(k);
    const composed = queued ? ot.compose(queued.payload, op) : op;
    if (composed.length) this.pending.set(k, { kind: "seq", node, key: null, payload: composed });
    else this.pending.delete(k);
  }

  /** Write a map key (`key`) or a register (`key` null). */
  localSet(node, key, value) {
    this._claim(node, key === null ? "register" : "map");
    this.pending.set(slotKey("set", node, key), { kind: "set", node, key, payload: value });
    return this._refreshKey(node, key);
  }

  localDelete(node, key) {
    this._claim(node, "map");
    this.pending.set(slotKey("set", node, key), { kind: "set", node, key, payload: DELETED });
    return this._refreshKey(node, key);
  }

  localAdd(node, amount) {
    this._claim(node, "counter");
    if (!Number.isInteger(amount)) throw new ot.InvalidOperation("counter amounts are integers");
    if (!amount) return;
    const k = slotKey("add", node);
    const total = (this.pending.get(k)?.payload || 0) + amount;
    if (total) this.pending.set(k, { kind: "add", node, key: null, payload: total });
    else this.pending.delete(k);
    this.local.set(node, (this.local.get(node) || 0) + amount);
  }

  // ------------------------------------------------------------------------ sending

  /** The join message to send now (first join, after a reconnect, or when rejoinNeeded). */
  joinMessage({ create = false } = {}) {
    const version = this._wantSnapshot ? null : this.version;
    this.joined = false;
    this._joinSent = true;
    this.rejoinNeeded = false;
    if (this.inflight) this.inflight.sent = false;
    const msg = { type: "join", doc: this.doc, mode: "thin" };
    if (version !== null) {
      msg.version = version;
      if (this.epoch) msg.epoch = this.epoch;
      if (this.vv) {
        msg.state = { ...this.vv };
        if (this.inflight) msg.inflight = this.inflight.editId;
      }
    }
    if (create) msg.create = true;
    return msg;
  }

  /** The edit to send now, or null (nothing queued, not joined, or a batch in flight). The
   *  in-flight batch is returned again (same edit_id) after a rejoin or a retry. */
  takeBatch() {
    if (!this.joined || this.version === null) return null;
    let batch = this.inflight;
    if (!batch) {
      if (!this.pending.size) return null;
      const ops = new Map();
      for (const [k, slot] of this.pending) {
        if (ops.size >= this.maxBatchOps) break;
        ops.set(k, slot);
      }
      for (const k of ops.keys()) this.pending.delete(k);
      this._edits++;
      batch = this.inflight = { editId: `${this._prefix}-${this._edits}`, ops, sent: false, revive: [] };
    } else if (batch.sent) return null;
    batch.sent = true;
    // what an undo/redo brings back, named for the server (undo.js, T11 "Revivals"); again at a
    // resend: the batch's own deletes are indexed in the op as sent (rebased since)
    batch.revive = [];
    const withdraw = [];
    if (this.revive) {
      for (const o of this.observers) if (o.marks) batch.revive.push(...o.marks(batch));
      for (const o of this.observers) if (o.withdrawals) withdraw.push(...o.withdrawals(batch));
    }
    const msg = {
      type: "edit",
      doc: this.doc,
      edit_id: batch.editId,
      version: this.version,
      ops: [...batch.ops.values()].map(wireOp),
    };
    if (batch.revive && batch.revive.length) msg.revive = batch.revive;
    if (withdraw.length) msg.withdraw = withdraw;
    return msg;
  }

  // ---------------------------------------------------------------------- receiving

  onJoined(msg) {
    this.joined = true;
    this.rejoinNeeded = false;
    this._wantSnapshot = false;
    this._joinSent = false;
    this.epoch = msg.epoch || "";
    this.rights = (msg.rights || []).slice();
    if (msg.roots) this.roots = { ...msg.roots };
    if (this.inflight) this.inflight.sent = false;
    if (msg.ops && this.version !== null) return this._loadChanges(msg);
    if (msg.state) this.vv = { ...msg.state };
    if (msg.snapshot === undefined || msg.snapshot === null) {
      if (this.version === null) {
        this.version = msg.version;
        this.history.reset(msg.version);
      } else if (msg.version !== this.version) {
        this.requestRejoin({ snapshot: true });
      }
      return [];
    }
    const batch = this.inflight; // named by `acked`: the snapshot holds it, settle it first (T8)
    const settled = batch && msg.acked === batch.editId ? this._settle(batch, [])[1] : [];
    return [...settled, ...this._loadSnapshot(msg.version, msg.snapshot)];
  }

  onRemote(msg) {
    if (this.version === null || msg.version <= this.version || !this.joined) return []; // T5, T6
    if (msg.version !== this.version + 1) {
      this.requestRejoin();
      return [];
    }
    const batch = this.inflight;
    if (batch && msg.client_id === this.clientId && msg.edit_id === batch.editId) {
      return this._ownRemote(msg);
    }
    const changes = [];
    const seqOps = this._applyRemoteOps(msg.ops, changes, msg);
    if (seqOps) this._advance(msg.version, seqOps, msg.vv);
    return this._settleObservers(changes);
  }

  /** Apply server ops to the server state and, rebased, to the local view (pushed to
   *  `changes`); returns their sequence ops, or null if our copy diverged (rejoin asked). */
  _applyRemoteOps(ops, changes, meta) {
    const seqOps = [];
    try {
      for (const op of ops) {
        const prior = op.type === "seq" ? this.server.get(op.node) : undefined;
        const before = this.observers.length && op.type === "seq" ? this._serverValue(op.node) : null;
        const seq = this._applyServer(op);
        if (seq) seqOps.push(seq);
        if (seq && before !== null) for (const o of this.observers) o.remote(op.node, seq[1], before, meta);
        const change = this._rebaseRemote(op, seq ? prior : undefined);
        if (change) changes.push(change);
      }
    } catch (err) {
      if (!(err instanceof ot.InvalidOperation)) throw err;
      this.requestRejoin({ snapshot: true });
      return null;
    }
    return seqOps;
  }

  onAck(msg) {
    const batch = this.inflight;
    if (!batch || msg.edit_id !== batch.editId || this.version === null || !this.joined) return [];
    if (msg.version > this.version + 1) {
      this.requestRejoin();
      return [];
    }
    if (msg.version <= this.version) return this._dropInflight();
    for (const o of this.observers) if (o.acked) o.acked(batch);
    const drops = this._drops(batch, (node, payload) => runIndices(msg.dropped, node));
    const [seqOps, changes] = this._settle(batch, msg.created || []);
    if (drops.length) return this._settleDrops(msg, drops, seqOps, changes);
    this._advance(msg.version, seqOps, msg.vv);
    return changes;
  }

  /** The in-flight batch is applied: move it into the server state. */
  _settle(batch, createdIds) {
    const created = createdIds[Symbol.iterator]();
    const seqOps = [];
    for (const { kind, node, key, payload } of batch.ops.values()) {
      if (kind === "seq") {
        // with nothing of this node pending, the local text is server · payload: share the rope
        // (remotes then apply to it once, while it stays shared: _rebaseRemote)
        const local = this.pending.has(slotKey("seq", node)) ? null : this.local.get(node);
        this.server.set(node, isRope(local) ? local : applySeq(this._serverValue(node), payload));
        seqOps.push([node, payload]);
      } else if (kind === "add") {
        this.server.set(node, this._serverValue(node) + payload);
      } else {
        let value = payload;
        if (value && typeof value === "object" && !Array.isArray(value) && "$new" in value) {
          const next = created.next();
          if (!next.done) {
            value = { $node: next.value };
            this._newNode(next.value, KINDS.includes(payload.$new) ? payload.$new : null);
          }
        }
        this._serverSet(node, key, value);
      }
    }
    this.inflight = null;
    return [seqOps, this._refreshSlots(batch)];
  }

  /** What an error means: {action: "ignore"|"retry"|"rejoin"|"rejected", changes}. */
  onError(msg) {
    const batch = this.inflight;
    const code = msg.code;
    if (batch && msg.edit_id === batch.editId) {
      if (RETRY_CODES.has(code)) {
        batch.sent = false;
        return { action: "retry", changes: [] };
      }
      if (code === "stale_version" || code === "not_joined") {
        this.requestRejoin();
        return { action: "rejoin", changes: [] };
      }
      if (code === "future_version") {
        this.requestRejoin({ snapshot: true });
        return { action: "rejoin", changes: [] };
      }
      const changes = this._dropInflight();
      if (code === "internal") this.requestRejoin({ snapshot: true });
      return { action: "rejected", changes };
    }
    if (!msg.edit_id && (code === "stale_version" || code === "future_version")) {
      this._joinSent = false; // it refused our join
      this.requestRejoin({ snapshot: true });
      return { action: "rejoin", changes: [] };
    }
    if (!msg.edit_id && code === "not_joined") {
      this.requestRejoin();
      return { action: "rejoin", changes: [] };
    }
    return { action: "ignore", changes: [] };
  }

  /** Verify our copy against a `checksum` (checksum.js): the nodes that failed, after which a
   *  snapshot rejoin is requested. */
  onChecksum(msg) {
    const seq = (node) => slotKey("seq", node);
    const outstanding = (node) => this.pending.has(seq(node)) || Boolean(this.inflight?.ops.has(seq(node)));
    const diverged = verify(this, msg, outstanding);
    this.divergences += diverged.length;
    if (diverged.length) this.requestRejoin({ snapshot: true });
    return diverged;
  }

  onResync() {
    this.requestRejoin();
  }

  onDisconnect() {
    this.joined = false;
    this._joinSent = false;
    if (this.inflight) this.inflight.sent = false;
  }

  requestRejoin({ snapshot = false } = {}) {
    if (this._joinSent) return; // the server sent what asks for it before reading our join: T6
    this.rejoinNeeded = true;
    this.joined = false;
    if (snapshot) this._wantSnapshot = true;
    if (this.inflight) this.inflight.sent = false;
  }

  /** Throw when the local view is not server · inflight · pending (for tests). */
  checkInvariants() {
    const batches = this.inflight ? [this.inflight.ops, this.pending] : [this.pending];
    const nodes = new Set([...this.local.keys(), ...this.server.keys()]);
    for (const ops of batches) for (const s of ops.values()) nodes.add(s.node);
    for (const node of nodes) {
      const kind = this.kind(node);
      if (!kind) continue;
      let expected;
      if (SEQ_KINDS.has(kind)) {
        expected = this._serverValue(node);
        for (const ops of batches) {
          const s = ops.get(slotKey("seq", node));
          if (s) expected = applySeq(expected, s.payload);
        }
      } else expected = this._computed(node, kind);
      const local = this.local.has(node) ? this.local.get(node) : emptyValue(kind);
      if (!equal(local, expected)) {
        throw new Error(`${node}: local ${JSON.stringify(local)} != server·inflight·pending ${JSON.stringify(expected)}`);
      }
    }
  }

  // ---------------------------------------------------------------------- internals

  _advance(version, seqOps, vv) {
    this.version = version;
    if (this.vv && vv) Object.assign(this.vv, vv);
    this.history.push(version, seqOps);
  }

  _serverValue(node) {
    if (this.server.has(node)) return this.server.get(node);
    const kind = this.kind(node);
    return kind ? emptyValue(kind) : null;
  }

  _inferKind(op) {
    let kind = this.kind(op.node);
    if (kind) return kind;
    if (op.type === "seq") {
      for (const c of op.edit) {
        if (typeof c === "string") kind = "text";
        else if (Array.isArray(c)) kind = "list";
      }
    } else if (op.type === "set") kind = op.key === undefined || op.key === null ? "register" : "map";
    else if (op.type === "del") kind = "map";
    else kind = "counter";
    if (kind) this.kinds.set(op.node, kind);
    return kind;
  }

  _newNode(node, kind) {
    if (!kind) return;
    if (!this.kinds.has(node)) this.kinds.set(node, kind);
    if (!this.server.has(node)) this.server.set(node, emptyValue(kind));
    if (!this.local.has(node)) this.local.set(node, emptyValue(kind));
  }

  _serverSet(node, key, value) {
    if (key === null || key === undefined) {
      this.server.set(node, value);
      return;
    }
    const current = this.server.get(node);
    const entries = current && typeof current === "object" && !Array.isArray(current) ? { ...current } : {};
    if (value === DELETED) delete entries[key];
    else entries[key] = value;
    this.server.set(node, entries);
  }

  _applyServer(op) {
    const kind = this._inferKind(op);
    const node = op.node;
    if (op.type === "seq") {
      if (!kind) throw new ot.InvalidOperation(`an edit of ${node}, whose kind is unknown`);
      const edit = ot.normalized(op.edit); // kept in the history: the op as parsed when it can be
      this.server.set(node, applySeq(this._serverValue(node), edit));
      return [node, edit];
    }
    if (op.type === "set") this._serverSet(node, op.key ?? null, op.value);
    else if (op.type === "del") this._serverSet(node, op.key, DELETED);
    else this.server.set(node, this._serverValue(node) + op.amount);
    return null;
  }

  /** `op` (a server op) rebased over our unacknowledged edits and applied to the local view: the
   *  change the user sees, or null. `serverBefore`: the server's text before `op`, when `op` was
   *  just applied to it: if the local text is that very rope (shared since an ack, see
   *  `_settle`) and nothing of ours is outstanding, the server's new rope is the local one too.
   *  Only the same object is shared: a server copy that differs (a bug) never reaches the view,
   *  the checksum finds it. */
  _rebaseRemote(op, serverBefore = undefined) {
    const node = op.node;
    if (op.type === "seq") {
      let r = ot.normalize(op.edit);
      const k = slotKey("seq", node);
      const batch = this.inflight;
      const i = batch && batch.ops.get(k);
      const mine = this.pending.get(k);
      if (!i && !mine && r.length && isRope(serverBefore) && this.local.get(node) === serverBefore) {
        // one immutable rope for both texts, the op applied once
        this.local.set(node, this.server.get(node));
        return seqChange(node, r, serverBefore);
      }
      if (i) {
        const r2 = ot.transform(r, i.payload, "right");
        i.payload = ot.transform(i.payload, r, "left");
        r = r2;
      }
      if (mine) {
        const r2 = ot.transform(r, mine.payload, "right");
        mine.payload = ot.transform(mine.payload, r, "left");
        r = r2;
        if (!mine.payload.length) this.pending.delete(k);
      }
      if (!r.length) return null;
      const before = asRope(this.local.has(node) ? this.local.get(node) : emptyValue(this.kind(node)));
      this.local.set(node, applySeq(before, r));
      return seqChange(node, r, before);
    }
    if (op.type === "set" || op.type === "del") return this._refreshKey(node, op.key ?? null);
    return this._refreshCounter(node);
  }

  /** `changes` and what the observers changed settling a server message (undo.js settle). */
  _settleObservers(changes) {
    for (const o of this.observers) changes.push(...o.settle());
    return changes;
  }
}

for (const mixin of [ThinCursors, ThinMerge]) {
  for (const name of Object.getOwnPropertyNames(mixin.prototype)) {
    if (name !== "constructor") Object.defineProperty(ThinDocState.prototype, name, Object.getOwnPropertyDescriptor(mixin.prototype, name));
  }
}
