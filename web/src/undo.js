// Undo and redo of one text node of a thin client that never resurrect or duplicate text.
// The spec is docs/protocol.md, T11; the Python twin is
// cowrite/client/thin_undo.py (same algorithm, same test vectors: tests/vectors/undo).
//
// Every code point of the local text has a client-local identity (`_ids`, following the text
// exactly); our records carry the text and identities they insert and delete (undo_ops.js), so
// they invert without the document and the manager tells its characters apart.
//
// The manager keeps a log of the node's changes in *server order*: every change the server has
// applied (ours and others'), then our unacknowledged ones. A remote op R (server coordinates) goes
// into the log just before our unacknowledged records, and those are rebased over it exactly
// like the thin client rebases its in-flight and pending ops (ours "left" at ties): a record
// becomes our edit *as the server applies it*. Text that another client deleted concurrently is
// no longer deleted by our record, so our undo does not re-insert it (two undos would). Rebasing
// record by record can order a tie otherwise than the thin client (a batch whole): the log then
// keeps its own layout of the identities (`_logIds`), and a local edit enters it by identity.
//
// An undo step is a group of our records (typing within `groupMs` is one group); undoing it
// folds the log from its first record on (undo_log.js): invert each member and compose it in, rebase over
// every other record. Crossing a *restore* record (a remote whose edit_id starts "restore-", or
// a catch-up or snapshot that cannot say what it holds) drops the inserts of what was folded so
// far: a restore decided the text, and re-inserting text we once deleted could copy text the
// restore brought back. The result is placed on the text by identity (retarget: deletes take
// their characters wherever they are; nothing whose identity is in the text, or dead, is
// re-inserted) and applied as a local edit; its record is the redo step (and a redo's the next
// undo step). An unacknowledged undo/redo that a restore or a concurrent delete overtook on the
// server loses its extra re-inserts: their identities die and one compensating delete takes
// them, wherever they are (settle()); a snapshot's copy of a dropped batch inherits them (_inherit).
// `adoptRestore(version, edits)` makes a restore this page asked for (REST) one undo step.
//
// Revivals (undo_revive.js): what a batch of ours deleted gets the server's name at its ack
// (`acked`); a batch that brings such characters back says so (`marks`, the edit's `revive`),
// and the room leaves out what is no longer ours to bring back (a restore we had not seen, a
// second revival, a delete someone made first); the thin client takes it out (`ack.dropped`).

import * as ot from "./ot.js";
import { fold } from "./undo_log.js";
import { applyIds, compose, fromPlain, insertedIds, invert, isNoop, relayout, retarget, toPlain, transform } from "./undo_ops.js";
import { batchOp, deadRuns, deletes, lostRevivals, recordDeleted, reinserted, reinserts, reviveRuns } from "./undo_revive.js";

export const RESTORE_EDIT_PREFIX = "restore-";

/** True for the broadcast of a REST restore (server/restore.py names its batches so). */
export function isRestoreEdit(meta) {
  return !!meta && typeof meta.edit_id === "string" && meta.edit_id.startsWith(RESTORE_EDIT_PREFIX);
}

const KEEP_RESTORES = 8; // restore records kept (for adoptRestore) while the log is short
const LOG_SOFT_MAX = 5000;

export class UndoManager {
  /** `state`: a ThinDocState (thin.js); `node`: a text node id. `apply(op)`: makes a local edit
   *  of `node` (default state.localEdit; a session passes session.edit so it is sent). */
  constructor(state, node, { apply = null, groupMs = 500, limit = 200, now = () => Date.now() } = {}) {
    this.state = state;
    this.node = node;
    this.apply = apply || ((op) => state.localEdit(node, op));
    this.groupMs = groupMs;
    this.limit = limit;
    this.now = now;
    this.log = [];
    this.undoStack = [];
    this.redoStack = [];
    /** How many compensating deletes a restore caused (our undo/redo raced it). */
    this.compensations = 0;
    /** How many times the log no longer fit the text and was dropped (a bug if ever > 0). */
    this.failures = 0;
    this._doing = null;
    this._of = null;
    this._source = null;
    this._claims = [];
    this._fix = [];
    /** The identity of each code point of the local text (null: to be numbered afresh). */
    this._ids = null;
    /** The identities as the log lays the text out after its last record, when that differs
     *  from the text (a tie rebased otherwise); null: the same as `_ids`. */
    this._logIds = null;
    this._nextId = 1;
    /** Identities no undo/redo may re-insert any more (a correction took them back). */
    this._dead = new Set();
    this._intent = null;
    this._sweep = false;
    /** The last snapshot that came while a batch of ours was in flight: {gen, from, to} (the
     *  identities it gave what it inserts). */
    this._barrier = null;
    /** identity -> {edit, of}: the name the server knows a character by that a batch of ours
     *  deleted (its edit_id, the index among the code points it deleted): an undo/redo that
     *  brings it back says so (`revive`), and the server inserts it at most once. */
    this._deleted = new Map();
    state.observers.push(this);
  }

  /** Stop following the document (the stacks are dropped). */
  detach() {
    const i = this.state.observers.indexOf(this);
    if (i >= 0) this.state.observers.splice(i, 1);
    this.reset();
  }

  get canUndo() {
    return this.undoStack.length > 0;
  }
  get canRedo() {
    return this.redoStack.length > 0;
  }

  /** Undo our last step: returns the change made ({type: "seq", node, edit, before}: before is
   *  the local text it applied to) or null when there is nothing (left) to undo. */
  undo() {
    return this._step(this.undoStack, "undo");
  }

  redo() {
    return this._step(this.redoStack, "redo");
  }

  /** Start a new undo step at the next edit (a caret jump, a blur...). */
  close() {
    const top = this.undoStack[this.undoStack.length - 1];
    if (top) top.open = false;
  }

  /** The restore this client asked for (REST answer {version, edits}) is one undo step: the
   *  remote batches at room versions version-edits+1..version, whether they came yet or not. */
  adoptRestore(version, edits = 1) {
    if (!Number.isInteger(version) || !Number.isInteger(edits) || edits < 1) return;
    const claim = { from: version - edits + 1, to: version, group: { records: [], at: this.now(), open: false } };
    for (const rec of this.log) if (rec.restore && rec.version >= claim.from && rec.version <= claim.to) claim.group.records.push(rec);
    this._claims.push(claim);
    if (this._claims.length > KEEP_RESTORES) this._claims.shift();
    this.close();
    this._push(this.undoStack, claim.group);
    this.redoStack.length = 0;
  }

  reset() {
    this.log = [];
    this.undoStack = [];
    this.redoStack = [];
    this._claims = [];
    this._fix = [];
    this._ids = null; // the text may change without us (a dropped batch): number it afresh
    this._logIds = null;
    this._dead = new Set();
    this._deleted = new Map();
  }

  // ------------------------------------------------------- observer of the ThinDocState

  /** A local edit of `node`: `op` (normalized) applies to `before` (the local value). */
  local(node, op, before) {
    if (node !== this.node) return;
    const ids = this._idsFor(cpLen(before));
    // an undo/redo re-inserts its characters under their identities; anything else is new
    const intent = this._intent && sameOp(toPlain(this._intent), op) ? insertedIds(this._intent) : [];
    let k = 0;
    const newId = () => (k < intent.length ? intent[k++] : this._nextId++);
    const rich = fromPlain(op, before, (a, b) => ids.slice(a, b), newId);
    if (isNoop(rich)) return;
    // the record goes into the log in the log's own layout (by identity)
    const moved = this._logIds === null ? null : relayout(rich, ids, this._logIds);
    if (moved === null) this._logIds = null;
    const mine = moved ?? rich;
    this._ids = applyIds(ids, rich, undefined, true);
    if (moved !== null) applyIds(this._logIds, moved, undefined, true);
    const kind = this._doing || "edit";
    const gen = this.state._edits;
    const last = this.log[this.log.length - 1];
    const rec = { op: mine, own: true, gen, kind, restore: false, version: null, of: this._of, source: this._source };
    if (kind === "edit") {
      this.redoStack.length = 0;
      const top = this.undoStack[this.undoStack.length - 1];
      const t = this.now();
      if (top && top.open && t - top.at <= this.groupMs) {
        top.at = t;
        if (last && last.own && last.gen === gen && top.records[top.records.length - 1] === last) {
          last.op = compose(last.op, mine); // same batch, next to it: one record
          return;
        }
        top.records.push(rec);
      } else this._push(this.undoStack, { records: [rec], at: t, open: true });
    } else if (kind === "undo") this._push(this.redoStack, { records: [rec], at: 0, open: false });
    else if (kind === "redo") this._push(this.undoStack, { records: [rec], at: 0, open: false });
    this.log.push(rec);
    this._trim();
  }

  /** The thin client sends `batch` (its records are those of generation state._edits - 1): the
   *  runs of the code points it inserts that bring back characters a batch of ours deleted
   *  (the edit's `revive`; see undo_revive.js). */
  marks(batch) {
    const slot = batch.ops.get(`seq\u0000${this.node}\u0000`);
    const c = slot && batchOp(this.log, this.state._edits - 1, slot.payload, reinserts, this.state._serverValue(this.node), true);
    return c ? reviveRuns(c, this.node, batch.editId, this._deleted, reinserted(this.log, this.state._edits - 1)) : [];
  }

  /** What `batch` (sent again) inserts that a correction of ours already takes back (dead
   *  identities): withdrawn (the edit's `withdraw`), so the room never shows it twice. */
  withdrawals(batch) {
    if (!this._dead.size) return [];
    const slot = batch.ops.get(`seq\u0000${this.node}\u0000`);
    const c = slot && batchOp(this.log, this.state._edits - 1, slot.payload, reinserts, this.state._serverValue(this.node));
    return c ? deadRuns(c, this.node, this._dead) : [];
  }

  /** The in-flight batch `batch` is applied (its ack, or our own remote in a catch-up), before
   *  the thin client settles it: what it deleted gets its server names. Our records of it are
   *  rebased over everything the server applied before it, so they delete what it deleted. */
  acked(batch) {
    const slot = batch.ops.get(`seq\u0000${this.node}\u0000`);
    const c = slot && batchOp(this.log, this.state._edits - 1, slot.payload, deletes, this.state._serverValue(this.node));
    if (c) recordDeleted(c, batch.editId, this._deleted);
  }

  /** The thin client drops its in-flight batch (refused, or applied before the snapshot we
   *  hold): called before anything changes. Its records leave the log and the steps, and our
   *  later records are rebased over their inverse, as the thin client rebases its pending op. */
  dropInflight() {
    const key = `seq\u0000${this.node}\u0000`;
    const batch = this.state.inflight;
    if (!batch) return;
    const gen = this.state._edits - 1;
    const i = batch.ops.get(key);
    const mine = this.state.pending.get(key);
    let c = null;
    const gone = new Set();
    for (const rec of this.log) {
      if (!rec.own || rec.gen !== gen) continue;
      gone.add(rec);
      c = c === null ? rec.op : compose(c, rec.op);
    }
    if (i && this._ids !== null && this._barrier && this._barrier.gen === gen && c !== null) this._inherit(c, i.payload, mine && mine.payload);
    this._barrier = null;
    if (i && this._ids !== null) {
      // the identities follow the thin client's own undo of the batch
      let undo = ot.invert(i.payload, this.state._serverValue(this.node).toString());
      if (mine) undo = ot.transform(undo, mine.payload, "right");
      // what it brings back is the server's now (the snapshot's, or never deleted): new
      // characters to us; a later re-insert of ours of the same text loses its right below
      this._ids = applyIds(this._ids, undo, () => this._nextId++, true);
    }
    this._logIds = null;
    if (!gone.size) return;
    let inv = invert(c);
    for (const rec of this.log) {
      if (!rec.own || rec.gen <= gen) continue;
      const plain = toPlain(rec.op);
      rec.op = transform(rec.op, toPlain(inv), "left");
      inv = transform(inv, plain, "right");
    }
    this.log = this.log.filter((rec) => !gone.has(rec));
    for (const group of [...this.undoStack, ...this.redoStack]) group.records = group.records.filter((rec) => !gone.has(rec));
    this._fix = this._fix.filter((rec) => !gone.has(rec));
    for (const rec of this.log) {
      if (rec.own && rec.gen > gen && (rec.kind === "undo" || rec.kind === "redo") && insertedIds(rec.op).length && !this._fix.includes(rec)) this._fix.push(rec);
    }
  }

  /** A server op of `node` (server coordinates, applying to `before`, the server value), seen
   *  before the thin client rebases it over our unacknowledged edits. `meta`: the remote message
   *  (client_id, edit_id, version) or {barrier: true} for a catch-up or a snapshot. */
  remote(node, op, before, meta) {
    if (node !== this.node) return;
    const restore = !!meta.barrier || isRestoreEdit(meta);
    const first = this.state._edits - (this.state.inflight ? 1 : 0); // oldest unacknowledged batch
    let i = this.log.length;
    while (i > 0 && this.log[i - 1].own && this.log[i - 1].gen >= first) i--;
    let r = ot.normalize(op);
    const local = this._ids === null ? null : this._asLocal(r);
    // what r inserts gets the same identities in the log (a restore's record) and in the text;
    // what a restore deletes keeps its identities when r applies to our text as it is (nothing
    // of ours outstanding), else gets identities of its own (undoing an adopted restore brings
    // that back as new characters)
    const first0 = this._nextId;
    this._nextId += r.reduce((n, c) => n + (typeof c === "string" ? ot.cpLength(c) : 0), 0);
    const counter = () => {
      let k = first0;
      return () => k++;
    };
    const fresh = () => this._nextId++;
    const key = `seq\u0000${this.node}\u0000`;
    const own = (this.state.inflight && this.state.inflight.ops.has(key)) || this.state.pending.has(key);
    const ids = local !== null && !own ? this._ids : null;
    const idsOf = (a, b) => (ids !== null ? ids.slice(a, b) : Array.from({ length: b - a }, fresh));
    const rich = restore ? fromPlain(r, before, idsOf, counter()) : r;
    const rec = { op: rich, own: false, gen: -1, kind: "remote", restore, version: meta.version ?? null };
    // a snapshot while our batch is in flight may hold it (dropInflight, _inherit)
    if (meta.barrier && this.state.inflight) this._barrier = { gen: this.state._edits - 1, from: first0, to: this._nextId };
    // our unsent batch re-inserts what it deletes itself, and r deletes that too: the room
    // will leave the re-insert out, so it is dead now (settle takes it back)
    const unsent = own && !(this.state.inflight && this.state.inflight.ops.has(key)) && this._ids !== null;
    const c = unsent && batchOp(this.log, this.state._edits, this.state.pending.get(key).payload, reinserts, before, true);
    if (c) for (const id of lostRevivals(c, r)) if (!this._dead.has(id)) this._dead.add(id), (this._sweep = true);
    const carry = new Map();
    for (let j = i; j < this.log.length; j++) {
      const mine = this.log[j];
      const plain = toPlain(mine.op);
      const rebased = transform(mine.op, r, "left");
      if (this._dead.size && mine.kind === "fix") this._carry(mine.op, rebased, r, carry);
      mine.op = rebased;
      r = ot.transform(r, plain, "right");
    }
    this.log.splice(i, 0, rec);
    if (local !== null) {
      // the same identities for what r inserts in the text and in the log's layout
      const idsOfR = () => {
        const next = counter();
        let k = 0;
        return () => {
          const id = next();
          return carry.has(k) ? carry.get(k++) : (k++, id);
        };
      };
      // the layouts part only where r lands otherwise in the log than in the text (a tie)
      const logIds = this._logIds ?? (i < this.log.length - 1 && !sameOp(local, r) ? this._ids.slice() : null);
      this._ids = applyIds(this._ids, local, idsOfR(), true);
      if (logIds !== null) applyIds(logIds, r, idsOfR(), true);
      this._logIds = logIds !== null && !sameIds(logIds, this._ids) ? logIds : null;
      if (carry.size) this._sweep = true;
    } else this._logIds = null;
    if (restore) {
      for (const claim of this._claims) {
        if (rec.version !== null && rec.version >= claim.from && rec.version <= claim.to) claim.group.records.push(rec);
      }
    }
    // our unacknowledged undo/redo re-inserts may have lost their right (see settle)
    for (let j = i + 1; j < this.log.length; j++) {
      const mine = this.log[j];
      if ((mine.kind === "undo" || mine.kind === "redo") && insertedIds(mine.op).length) {
        if (restore) mine.tainted = true; // a restore wins over our undo/redo not applied yet
        if (!this._fix.includes(mine)) this._fix.push(mine);
      }
    }
  }

  /** After a server message: an unacknowledged undo/redo of ours that re-inserted text it no
   *  longer may (a restore came first, or another client deleted that text concurrently with
   *  the edit we undid, so the server applies our edit without that deletion) has the extra
   *  characters deleted again: a compensating local edit. Their identities are dead: wherever
   *  a later step of ours moved or re-inserted them, they go, and no undo/redo brings them
   *  back. Returns the changes made (local coordinates). */
  settle() {
    const changes = [];
    let more = false;
    while (this._fix.length) {
      const rec = this._fix.shift();
      const at = this.log.indexOf(rec);
      if (at < 0 || !rec.source) continue;
      const legit = new Set(rec.tainted ? [] : insertedIds(this._inverse(rec.source, at) || []));
      for (const id of insertedIds(rec.op)) {
        if (!legit.has(id) && !this._dead.has(id)) {
          this._dead.add(id);
          more = true;
        }
      }
    }
    if (!more && !this._sweep) return changes;
    this._sweep = false;
    const text = this.state.rope(this.node);
    const ids = this._idsFor(text.length);
    const edit = [];
    let run = 0;
    for (const id of ids) {
      if (id !== null && this._dead.has(id)) {
        if (run > 0) edit.push(run), (run = 0);
        if (edit.length && edit[edit.length - 1] < 0) edit[edit.length - 1]--;
        else edit.push(-1);
      } else run++;
    }
    if (!edit.length) return changes;
    this._doing = "fix";
    try {
      this.state.localEdit(this.node, edit);
    } catch (err) {
      if (!(err instanceof ot.InvalidOperation)) throw err;
      this.reset(); // see _step
      this.failures++;
      return changes;
    } finally {
      this._doing = null;
    }
    this.compensations++;
    changes.push(seqChange(this.node, edit, text));
    return changes;
  }

  // --------------------------------------------------------------------- internals

  _step(stack, kind) {
    this.close();
    while (stack.length) {
      const group = stack.pop();
      let op = this._inverse(group);
      if (op === null) continue;
      // on the text as it is, by identity; never re-insert a character that is there, or one
      // a correction took back
      const text = this.state.rope(this.node);
      const ids = this._idsFor(text.length);
      const want = new Set(insertedIds(op));
      const present = new Set();
      if (want.size) for (const id of ids) if (want.has(id)) present.add(id);
      const keep = (id) => id === null || (!present.has(id) && !this._dead.has(id) && (present.add(id), true));
      op = retarget(op, text, ids, keep);
      if (isNoop(op)) continue;
      const edit = toPlain(op);
      const before = this.state.rope(this.node);
      this._doing = kind;
      this._of = group.records.length === 1 ? group.records[0] : null;
      this._source = group;
      this._intent = op;
      try {
        this.apply(edit);
      } catch (err) {
        if (!(err instanceof ot.InvalidOperation)) throw err;
        this.reset(); // our log no longer matches the text (a bug): forget it, change nothing
        this.failures++;
        return null;
      } finally {
        this._doing = null;
        this._of = this._source = this._intent = null;
      }
      return seqChange(this.node, edit, before);
    }
    return null;
  }

  /** The op undoing `group` now (or just before log record `end`): `fold` (undo_log.js). */
  _inverse(group, end = this.log.length) {
    return fold(this.log, group, end);
  }

  /** Our record `before` (rebased to `after` over plain `r`, same base) lost deletes of dead
   *  characters (a correction's) to `r`, which deleted them too. If `r` inserts the same
   *  characters in order where it deleted them (a delete and its undo sent as one batch by
   *  someone else, a restore), those are the same characters, still to be deleted: `carry`
   *  maps the index of each such code point among those `r` inserts to its dead identity. */
  _carry(before, after, r, carry) {
    const kept = new Set();
    for (const c of after) if (typeof c === "object" && Array.isArray(c.d)) for (const id of c.ids) kept.add(id);
    const lost = new Map(); // base position -> code point
    let pos = 0;
    for (const c of before) {
      if (typeof c === "number") pos += c;
      else if (Array.isArray(c.d)) {
        c.ids.forEach((id, k) => {
          if (id !== null && this._dead.has(id) && !kept.has(id)) lost.set(pos + k, [c.d[k], id]);
        });
        pos += c.d.length;
      }
    }
    if (!lost.size) return;
    pos = 0;
    let index = 0;
    for (let j = 0; j < r.length; j++) {
      const c = r[j];
      if (typeof c === "number") {
        pos += Math.abs(c);
        continue;
      }
      const chars = Array.from(c);
      const next = r[j + 1];
      if (typeof next === "number" && next < 0) {
        let k = 0;
        for (let q = pos; q < pos - next && k < chars.length; q++) {
          const hit = lost.get(q);
          if (!hit) continue;
          while (k < chars.length && chars[k] !== hit[0]) k++;
          if (k < chars.length) carry.set(index + k++, hit[1]);
        }
      }
      index += chars.length;
    }
  }

  /** The in-flight batch (composed: `batch`; plain, as the thin client holds it: `inflight`)
   *  is dropped as applied before the snapshot we hold: what it inserts is in the text twice,
   *  ours (which the thin client now deletes) and the snapshot's copy (new identities, next to
   *  ours). What a correction took back of ours (dead) must go from the copy too: among the
   *  characters that snapshot inserted right before and after each of our inserts (up to the
   *  text that was there before it), those of the same code points, in order, take the dead
   *  identities (settle()'s sweep deletes them). */
  _inherit(batch, inflight, pending) {
    const lost = [];
    for (const c of batch) if (typeof c === "object" && Array.isArray(c.i)) c.ids.forEach((id, k) => id !== null && this._dead.has(id) && lost.push([c.i[k], id]));
    if (!lost.length) return;
    const { from, to } = this._barrier;
    const ids = this._ids;
    // the snapshot's characters; what came later (newer identities) may sit between
    const copy = (b) => ids[b] >= from && ids[b] < to && !this._dead.has(ids[b]);
    const near = (b) => b >= 0 && b < ids.length && ids[b] !== null && ids[b] >= from;
    const text = this.state.rope(this.node);
    const runs = new Set();
    let at = 0;
    for (const c of ot.normalize(inflight)) {
      if (typeof c === "number") {
        if (c > 0) at += c;
        continue;
      }
      const n = ot.cpLength(c);
      // our insert spans at..at+n of server value + inflight; where it is in the local text
      const a = pending ? ot.transformPosition(at, pending) : at;
      const e = pending ? ot.transformPosition(at + n, pending, true) : at + n;
      for (let b = a - 1; near(b); b--) if (copy(b)) runs.add(b);
      for (let b = e; near(b); b++) if (copy(b)) runs.add(b);
      at += n;
    }
    let j = 0;
    for (const b of [...runs].sort((x, y) => x - y)) {
      if (j >= lost.length) break;
      if (text.slice(b, b + 1).toString() !== lost[j][0]) continue;
      ids[b] = lost[j++][1];
      this._sweep = true;
    }
  }

  /** Server op `r` as the thin client applies it to the local text: rebased over its in-flight
   *  and pending ops of the node as they stand (not over our records one by one: at a tie the
   *  two can differ, and the identities must follow the text exactly). */
  _asLocal(r) {
    const key = `seq\u0000${this.node}\u0000`;
    const batch = this.state.inflight;
    const i = batch && batch.ops.get(key);
    if (i) r = ot.transform(r, i.payload, "right");
    const mine = this.state.pending.get(key);
    if (mine) r = ot.transform(r, mine.payload, "right");
    return r;
  }

  /** The identities of the local text (`n` code points), numbered afresh if we lost track. */
  _idsFor(n) {
    if (this._ids === null || this._ids.length !== n) {
      this._logIds = null;
      this._ids = [];
      for (let k = 0; k < n; k++) this._ids.push(this._nextId++);
    }
    return this._ids;
  }

  _push(stack, group) {
    stack.push(group);
    if (stack.length > this.limit) stack.shift();
  }

  /** Forget log records no step needs: before the first record of any step, of any claimable
   *  restore, and of our unacknowledged records (later remotes rebase those). */
  _trim() {
    if (this.log.length < 64) return;
    const first = this.state._edits - (this.state.inflight ? 1 : 0);
    const index = new Map(this.log.map((rec, i) => [rec, i]));
    let cut = this.log.length;
    for (let i = 0; i < this.log.length; i++) {
      const rec = this.log[i];
      if (rec.own && rec.gen >= first) {
        cut = i;
        break;
      }
    }
    const groups = [...this.undoStack, ...this.redoStack];
    for (let i = cut; i < this.log.length; i++) if (this.log[i].source) groups.push(this.log[i].source); // settle() folds them
    for (const group of groups) for (const rec of group.records) cut = Math.min(cut, index.get(rec) ?? cut);
    if (this.log.length < LOG_SOFT_MAX) {
      let seen = 0;
      for (let i = this.log.length - 1; i >= 0 && seen < KEEP_RESTORES; i--) {
        if (this.log[i].restore) {
          seen++;
          cut = Math.min(cut, i);
        }
      }
    }
    if (cut > 0) this.log.splice(0, cut);
  }
}

function cpLen(text) {
  return typeof text === "string" ? ot.cpLength(text) : text.length;
}

function sameIds(a, b) {
  if (a.length !== b.length) return false;
  for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) return false;
  return true;
}

function sameOp(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

function seqChange(node, edit, before) {
  const change = { type: "seq", node, edit };
  Object.defineProperty(change, "before", { value: before });
  return change;
}
