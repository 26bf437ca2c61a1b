// The rejoin and merge steps of a thin document (a mixin of ThinDocState, thin.js): our own
// batch coming back as a remote, a rejoin answered with changes or a snapshot (the three-way
// merge), a batch applied before a snapshot dropped again, and the local values of map keys,
// registers and counters recomputed from server · inflight · pending.

import * as ot from "./ot.js";
import { isRope, textOf } from "./rope.js";
import { ABSENT, DELETED, KINDS, SEQ_KINDS, applySeq, asRope, emptyValue, equal, seqChange, slotKey } from "./thin_values.js";
import { deleteInserted, droppedInserts } from "./undo_revive.js";

/** Methods of ThinDocState (copied onto its prototype). */
export class ThinMerge {
  /** The seq ops deleting what the server did not insert of `batch` (T11 "Revivals"):
   *  `indices(node, payload)` names the code points of a node's payload it dropped. */
  _drops(batch, indices) {
    const drops = [];
    for (const { kind, node, payload } of batch.ops.values()) {
      if (kind !== "seq") continue;
      const found = indices(node, payload);
      const edit = found && deleteInserted(payload, found);
      if (edit) drops.push({ type: "seq", node, edit });
    }
    return drops;
  }

  /** Our batch is settled as we held it; what the server dropped of it goes like a remote op
   *  right after it (rebased over our pending edits), at the same version. */
  _settleDrops(msg, drops, seqOps, changes) {
    const meta = { version: msg.version, client_id: this.clientId, edit_id: msg.edit_id };
    const more = this._applyRemoteOps(drops, changes, meta);
    if (more === null) return this._settleObservers(changes);
    this._advance(msg.version, [...seqOps, ...more], msg.vv);
    return this._settleObservers(changes);
  }

  /** A rejoin answered with the exact changes since our state: apply them like a remote
   *  (rebased over our unacknowledged edits), then take the server's numbering. */
  _loadChanges(msg) {
    const changes = [];
    const batch = this.inflight;
    if (batch && msg.acked === batch.editId) changes.push(...this._settle(batch, [])[1]); // ops come after it
    if (!this._applyRemoteOps(msg.ops, changes, { barrier: true, version: msg.version })) return this._settleObservers(changes);
    this.version = msg.version;
    this.history.reset(msg.version);
    this.vv = msg.state ? { ...msg.state } : null;
    return this._settleObservers(changes);
  }

  _ownRemote(msg) {
    const batch = this.inflight;
    for (const o of this.observers) if (o.acked) o.acked(batch);
    // the server may have dropped some of what we re-inserted (T11 "Revivals"): the catch-up
    // names no `dropped`; the applied op is ours without those code points
    const applied = new Map();
    for (const op of msg.ops) if (op.type === "seq") applied.set(op.node, op.edit);
    const drops = this._drops(batch, (node, payload) => (applied.has(node) ? droppedInserts(payload, applied.get(node)) : null));
    if (drops.length) {
      const ops = msg.ops.map((op) => (op.type === "seq" && drops.some((d) => d.node === op.node) ? { ...op, edit: batch.ops.get(slotKey("seq", op.node)).payload } : op));
      msg = { ...msg, ops };
    }
    const seqOps = [];
    try {
      for (const op of msg.ops) {
        const seq = this._applyServer(op);
        if (seq) seqOps.push(seq);
      }
    } catch (err) {
      if (!(err instanceof ot.InvalidOperation)) throw err;
      this.requestRejoin({ snapshot: true });
      return [];
    }
    this.inflight = null;
    const changes = this._refreshSlots(batch);
    if (drops.length) return this._settleDrops(msg, drops, seqOps, changes);
    this._advance(msg.version, seqOps, msg.vv);
    return changes;
  }

  _refreshSlots(batch) {
    const changes = [];
    for (const { kind, node, key } of batch.ops.values()) {
      let change = null;
      if (kind === "set") change = this._refreshKey(node, key);
      else if (kind === "add") change = this._refreshCounter(node);
      if (change) changes.push(change);
    }
    return changes;
  }

  _dropInflight() {
    const batch = this.inflight;
    if (!batch) return [];
    for (const o of this.observers) o.dropInflight(); // before anything changes (undo.js)
    this.inflight = null;
    const changes = [];
    for (const [k, { kind, node, payload }] of batch.ops) {
      if (kind !== "seq") continue;
      let undo = invertSeq(payload, this._serverValue(node));
      const mine = this.pending.get(k);
      if (mine) {
        const u2 = ot.transform(undo, mine.payload, "right");
        mine.payload = ot.transform(mine.payload, undo, "left");
        undo = u2;
        if (!mine.payload.length) this.pending.delete(k);
      }
      if (undo.length) {
        const before = asRope(this.local.get(node));
        this.local.set(node, applySeq(before, undo));
        changes.push(seqChange(node, undo, before));
      }
    }
    changes.push(...this._refreshSlots(batch));
    return this._settleObservers(changes);
  }

  _effective(node, key) {
    const k = slotKey("set", node, key);
    let value;
    if (this.pending.has(k)) value = this.pending.get(k).payload;
    else if (this.inflight && this.inflight.ops.has(k)) value = this.inflight.ops.get(k).payload;
    else if (key === null) return this.server.has(node) ? this.server.get(node) : null;
    else {
      const entries = this.server.get(node);
      return entries && typeof entries === "object" && Object.hasOwn(entries, key) ? entries[key] : ABSENT;
    }
    return value === DELETED ? ABSENT : value;
  }

  _refreshKey(node, key) {
    const value = this._effective(node, key);
    if (key === null) {
      if (this.local.has(node) && equal(this.local.get(node), value)) return null;
      this.local.set(node, value);
      return { type: "set", node, value };
    }
    const current = this.local.get(node);
    let entries = current && typeof current === "object" && !Array.isArray(current) ? current : {};
    const old = Object.hasOwn(entries, key) ? entries[key] : ABSENT;
    if (old !== ABSENT && value !== ABSENT && equal(old, value)) return null;
    if (old === ABSENT && value === ABSENT) {
      if (!this.local.has(node)) this.local.set(node, entries);
      return null;
    }
    entries = { ...entries };
    if (value === ABSENT) {
      delete entries[key];
      this.local.set(node, entries);
      return { type: "del", node, key };
    }
    entries[key] = value;
    this.local.set(node, entries);
    return { type: "set", node, key, value };
  }

  _counter(node) {
    let total = Number(this._serverValue(node) || 0);
    const k = slotKey("add", node);
    if (this.inflight && this.inflight.ops.has(k)) total += this.inflight.ops.get(k).payload;
    if (this.pending.has(k)) total += this.pending.get(k).payload;
    return total;
  }

  _refreshCounter(node) {
    const value = this._counter(node);
    const old = this.local.get(node) || 0;
    this.local.set(node, value);
    return value !== old ? { type: "add", node, amount: value - old } : null;
  }

  _computed(node, kind) {
    if (kind === "counter") return this._counter(node);
    if (kind === "register") {
      const v = this._effective(node, null);
      return v === ABSENT ? null : v;
    }
    const server = this.server.get(node);
    const entries = server && typeof server === "object" && !Array.isArray(server) ? { ...server } : {};
    for (const ops of [this.inflight ? this.inflight.ops : new Map(), this.pending]) {
      for (const s of ops.values()) {
        if (s.kind === "set" && s.node === node && s.key !== null) {
          if (s.payload === DELETED) delete entries[s.key];
          else entries[s.key] = s.payload;
        }
      }
    }
    return entries;
  }

  _loadSnapshot(version, snapshot) {
    const theirs = new Map();
    for (const [node, entry] of Object.entries(snapshot)) {
      let kind;
      let value;
      if (entry && typeof entry === "object" && "kind" in entry && "value" in entry) {
        kind = KINDS.includes(entry.kind) ? entry.kind : null;
        value = entry.value;
      } else {
        kind = null;
        value = entry;
      }
      if (!kind) kind = this.kind(node) || kindOfValue(value);
      if (!kind) continue;
      this.kinds.set(node, kind);
      theirs.set(node, value);
    }
    const nodes = new Set([...theirs.keys(), ...this.server.keys(), ...this.local.keys()]);
    for (const ops of this.inflight ? [this.inflight.ops, this.pending] : [this.pending]) {
      for (const s of ops.values()) nodes.add(s.node);
    }
    const sorted = [...nodes].sort();
    const changes = [];
    for (const node of sorted) {
      const kind = this.kind(node);
      if (!SEQ_KINDS.has(kind)) continue;
      let base = textOf(this._serverValue(node));
      const next = theirs.has(node) ? theirs.get(node) : emptyValue(kind);
      if (typeof base !== typeof next || Array.isArray(base) !== Array.isArray(next)) base = emptyValue(kind);
      this.server.set(node, base);
      const edit = ot.diff(base, next);
      if (edit.length) for (const o of this.observers) o.remote(node, edit, base, { barrier: true, version });
      const rebased = this._rebaseRemote({ type: "seq", node, edit });
      if (rebased) changes.push(rebased);
    }
    const oldLocal = this.local;
    this.server = new Map(theirs);
    for (const node of sorted) {
      const kind = this.kind(node);
      if (!kind) continue;
      if (SEQ_KINDS.has(kind)) {
        if (!this.server.has(node)) this.server.set(node, emptyValue(kind));
        continue;
      }
      const value = this._computed(node, kind);
      const old = oldLocal.has(node) ? oldLocal.get(node) : emptyValue(kind);
      this.local.set(node, value);
      changes.push(...valueChanges(node, kind, old, value));
    }
    this.version = version;
    this.history.reset(version);
    return this._settleObservers(changes);
  }
}

function kindOfValue(value) {
  if (typeof value === "string" || isRope(value)) return "text";
  if (Array.isArray(value)) return "list";
  if (value !== null && typeof value === "object") return "map";
  return null;
}

/** ot.invert (same result), reading the deleted text from a rope without building the whole
 *  string. */
function invertSeq(op, before) {
  if (!isRope(before)) return ot.invert(op, before);
  ot.check(op);
  const out = [];
  let pos = 0;
  for (const c of op) {
    if (typeof c === "number") {
      const n = Math.abs(c);
      out.push(c > 0 ? n : before.slice(pos, pos + n));
      pos += n;
    } else out.push(-ot.cpLength(c));
  }
  return ot.normalize(out);
}

function valueChanges(node, kind, old, next) {
  if (equal(old, next)) return [];
  if (kind === "counter") return [{ type: "add", node, amount: (next || 0) - (old || 0) }];
  if (kind === "register") return [{ type: "set", node, value: next }];
  const a = old && typeof old === "object" ? old : {};
  const b = next && typeof next === "object" ? next : {};
  const out = [];
  for (const [key, value] of Object.entries(b)) {
    if (!Object.hasOwn(a, key) || !equal(a[key], value)) out.push({ type: "set", node, key, value });
  }
  for (const key of Object.keys(a)) if (!Object.hasOwn(b, key)) out.push({ type: "del", node, key });
  return out;
}
