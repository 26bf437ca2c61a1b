// Revivals (docs/protocol.md, T11 "Revivals"): the names an undo/redo gives the characters it
// brings back, shared with the server, and what the thin client does when the server did not
// insert some of them. Python twin: cowrite/client/thin_undo_revive.py.
//
// A character a batch of ours deleted is named `{edit, of}`: that batch's edit_id and its index
// among the code points that batch's op of the node deleted *as the server applied it* (our
// record rebased over everything before it in server order, known at its ack). An edit may say
// which of the code points it inserts bring back such characters:
// `revive: [{node, at, n, edit, of}]` (its inserted code points at..at+n, in the order the op
// inserts them, bring back `edit`'s deleted code points of..of+n). The server inserts them only
// when nothing took that right first (a restore the sender had not seen, an earlier revival of
// the same character, a delete someone made first), and answers the rest in
// `ack.dropped: [{node, at, n}]`. A resend also withdraws what a correction of ours already takes
// back (`withdraw: [{node, at, n}]`: the batch itself cannot change).

import * as ot from "./ot.js";
import { compose, insertedIds, toPlain } from "./undo_ops.js";

const DELETED_MAX = 100000; // names of deleted characters a manager keeps (the oldest go first)
const isIns = (c) => typeof c === "object" && c !== null && Array.isArray(c.i);
const isDel = (c) => typeof c === "object" && c !== null && Array.isArray(c.d);

/** Only an undo/redo re-inserts characters under identities they had. */
export const reinserts = (rec) => rec.kind === "undo" || rec.kind === "redo";
export const deletes = (rec) => rec.op.some(isDel);

/** Our records (undo.js's log) of batch generation `gen` composed, when one of them is
 *  `need`ed and that names the code points of `payload` (the batch's op of the node); else null
 *  (no names). Our unacknowledged records end the log (remote ones go before). When the log's
 *  own layout differs from the text's (a tie), the composition is laid out otherwise than
 *  `payload`: then, given `base` (the server text `payload` applies to), the same characters
 *  are found in `payload` by code point, in order (what it inserts among what the records
 *  insert, what it deletes of `base` among what they delete): the result is `payload` with
 *  their identities. Names count inserted and deleted code points in `payload`'s order. (Among
 *  equal code points the first unused is taken: swapped equal characters may swap names.)
 *  `loose` (for naming re-inserts): the records may also delete characters `payload` does not
 *  (rebased over a snapshot's diff one by one, they can keep a delete the thin client's rebase of
 *  the batch whole lost): what `payload` inserts and deletes is still matched, the rest ignored. */
export function batchOp(log, gen, payload, need, base = null, loose = false) {
  const mine = [];
  for (let j = log.length - 1; j >= 0 && log[j].own && log[j].gen >= gen; j--) if (log[j].gen === gen) mine.push(log[j]);
  if (!mine.some(need)) return null;
  let c = null;
  for (let j = mine.length - 1; j >= 0; j--) c = c === null ? mine[j].op : compose(c, mine[j].op);
  const want = ot.normalize(payload);
  if (JSON.stringify(toPlain(c)) === JSON.stringify(want)) return c;
  return base === null ? null : relabel(c, want, base, loose);
}

/** Plain `op` (on `base`) with the identities of the characters invertible `c` inserts and
 *  deletes, matched by code point in order; null unless each is matched exactly once (`loose`:
 *  `c` may delete more than `op`). */
function relabel(c, op, base, loose = false) {
  const ins = new Map();
  const del = new Map();
  let left = 0;
  const put = (m, ch, id) => {
    if (!m.has(ch)) m.set(ch, []);
    m.get(ch).push(id);
    if (!loose || m === ins) left++;
  };
  for (const comp of c) {
    if (isIns(comp)) comp.i.forEach((ch, k) => put(ins, ch, comp.ids[k]));
    else if (isDel(comp)) comp.d.forEach((ch, k) => put(del, ch, comp.ids[k]));
  }
  const take = (m, ch) => {
    const q = m.get(ch);
    if (!q || !q.length) return undefined;
    if (!loose || m === ins) left--;
    return q.shift();
  };
  const text = typeof base === "string" ? Array.from(base) : null;
  const out = [];
  let pos = 0;
  for (const comp of op) {
    if (typeof comp === "string") {
      const chars = Array.from(comp);
      const ids = chars.map((ch) => take(ins, ch));
      if (ids.includes(undefined)) return null;
      out.push({ i: chars, ids });
    } else if (comp > 0) {
      out.push(comp);
      pos += comp;
    } else {
      const gone = text !== null ? text.slice(pos, pos - comp) : Array.from(base.slice(pos, pos - comp));
      const ids = gone.map((ch) => take(del, ch));
      if (gone.length !== -comp || ids.includes(undefined)) return null;
      out.push({ d: gone, ids });
      pos -= comp;
    }
  }
  return left === 0 ? out : null;
}

/** The runs of the code points batch op `c` (invertible) inserts that bring back a character a
 *  batch of ours deleted: this one first (what it deletes itself, indexed in `c`), else the
 *  name in `deleted` (identity -> {edit, of}). A character of `again` (what its undo/redo
 *  records re-insert) with neither name (someone else's batch deleted it, or a name we never
 *  learned) is named by this batch and an index past its own deletes: that names nothing it
 *  deleted, so the room judges it by the restore rule alone (a restore it had not seen). */
export function reviveRuns(c, node, editId, deleted, again = null) {
  const own = new Map();
  let of = 0;
  for (const comp of c) if (isDel(comp)) for (const id of comp.ids) own.set(id, { edit: editId, of: of++ });
  const runs = [];
  let k = 0;
  for (const comp of c) {
    if (!isIns(comp)) continue;
    for (const id of comp.ids) {
      let ref = id === null ? undefined : own.get(id) || deleted.get(id);
      if (!ref && id !== null && again && again.has(id)) ref = { edit: editId, of: of + k };
      if (ref) addRun(runs, node, k, ref);
      k++;
    }
  }
  return runs;
}

/** The identities batch op `c` (invertible, on the text plain `r` applies to) deletes and
 *  re-inserts itself whose delete `r` makes too: rebasing the batch over `r` takes the delete
 *  away, so the room leaves the re-insert out (T11 "Revivals"); its client, which holds the
 *  batch unsent, takes it back at once instead of showing the character twice meanwhile. */
export function lostRevivals(c, r) {
  const back = new Set(insertedIds(c));
  const mine = new Map(); // base position -> identity
  let pos = 0;
  for (const comp of c) {
    if (typeof comp === "number") pos += comp;
    else if (isDel(comp)) {
      comp.ids.forEach((id, k) => id !== null && back.has(id) && mine.set(pos + k, id));
      pos += comp.d.length;
    }
  }
  const out = [];
  if (!mine.size) return out;
  pos = 0;
  for (const comp of ot.normalize(r)) {
    if (typeof comp !== "number") continue;
    if (comp < 0) for (let q = pos; q < pos - comp; q++) if (mine.has(q)) out.push(mine.get(q));
    pos += Math.abs(comp);
  }
  return out;
}

/** The identities the undo/redo records of batch generation `gen` re-insert. */
export function reinserted(log, gen) {
  const out = new Set();
  for (let j = log.length - 1; j >= 0 && log[j].own && log[j].gen >= gen; j--) {
    if (log[j].gen === gen && reinserts(log[j])) for (const id of insertedIds(log[j].op)) if (id !== null) out.add(id);
  }
  return out;
}

/** Batch op `c` (as the server applied it) of `editId`: name what it deleted in `deleted`
 *  (what it re-inserts itself is in the text again: counted, not named). */
export function recordDeleted(c, editId, deleted) {
  const back = new Set(insertedIds(c));
  let of = 0;
  for (const comp of c) {
    if (!isDel(comp)) continue;
    for (const id of comp.ids) {
      if (id !== null && !back.has(id)) {
        deleted.delete(id); // insertion order: the oldest are forgotten first
        deleted.set(id, { edit: editId, of });
      }
      of++;
    }
  }
  for (const id of deleted.keys()) {
    if (deleted.size <= DELETED_MAX) break;
    deleted.delete(id);
  }
}

/** Merge `{node, at, n, ...}` index `at` into the run list `runs` (consecutive: extended). */
export function addRun(runs, node, at, ref = null) {
  const last = runs[runs.length - 1];
  if (last && last.node === node && last.at + last.n === at && (ref === null ? last.edit === undefined : last.edit === ref.edit && last.of + last.n === ref.of)) {
    last.n++;
    return;
  }
  runs.push(ref === null ? { node, at, n: 1 } : { node, at, n: 1, edit: ref.edit, of: ref.of });
}

/** The indices (among the code points `op` inserts, in order) that the runs of `node` name. */
export function runIndices(runs, node) {
  const out = new Set();
  for (const r of runs || []) {
    if (!r || r.node !== node || !Number.isInteger(r.at) || !Number.isInteger(r.n) || r.at < 0 || r.n < 1 || r.n > 1e6) continue;
    for (let k = r.at; k < r.at + r.n; k++) out.add(k);
  }
  return out;
}

/** The op (on the text `op` produced) deleting the code points `op` inserts at `indices`, or
 *  null when there are none. `op`: a normalized plain text op. */
export function deleteInserted(op, indices) {
  if (!indices.size) return null;
  const out = [];
  let run = 0;
  let k = 0;
  let any = false;
  for (const c of op) {
    if (typeof c === "number") {
      if (c > 0) run += c;
      continue;
    }
    for (const _ of c) {
      if (indices.has(k++)) {
        if (run) out.push(run), (run = 0);
        if (out.length && out[out.length - 1] < 0) out[out.length - 1]--;
        else out.push(-1);
        any = true;
      } else run++;
    }
  }
  return any ? ot.normalize(out) : null;
}

/** The indices of the code points `held` inserts that `applied` does not (the server dropped
 *  them): `applied` is `held` without some inserted code points (a catch-up of our own batch,
 *  which carries no `dropped`). Empty when they are the same; null when `applied` is not such a
 *  subsequence (then nothing can be said). */
export function droppedInserts(held, applied) {
  const out = new Set();
  const a = ot.normalize(held);
  const b = ot.normalize(applied);
  if (JSON.stringify(a) === JSON.stringify(b)) return out;
  // the same retains and deletes; each of b's inserted code points matched in order in a's
  const flat = (op) => {
    const items = [];
    for (const c of op) {
      if (typeof c === "number") items.push(c);
      else for (const ch of c) items.push({ ch });
    }
    return items;
  };
  const x = flat(a);
  const y = flat(b);
  let j = 0;
  let k = 0;
  let yr = 0; // what is left of y's current retain/delete
  for (const item of x) {
    if (typeof item !== "number") {
      if (j < y.length && typeof y[j] !== "number" && y[j].ch === item.ch) j++;
      else out.add(k);
      k++;
      continue;
    }
    let n = item;
    while (n !== 0) {
      if (j >= y.length) {
        if (n < 0) return null;
        break; // a trailing retain (left out of a normalized op)
      }
      const c = y[j];
      if (typeof c !== "number" || Math.sign(c) !== Math.sign(n)) return null;
      const avail = c - yr;
      const take = Math.abs(avail) < Math.abs(n) ? avail : n;
      n -= take;
      yr += take;
      if (yr === c) j++, (yr = 0);
    }
  }
  return j === y.length ? out : null;
}

/** The indices (among the code points `op` deletes) of the deletes that rebasing `op` over
 *  `others` (ops applied one after another from the same base) takes away: someone deleted that
 *  character first. */
export function lostDeletes(op, others) {
  let at = []; // base position of each delete still standing: [index, position]
  let pos = 0;
  let k = 0;
  for (const c of ot.normalize(op)) {
    if (typeof c === "string") continue;
    if (c > 0) pos += c;
    else for (let j = 0; j < -c; j++) at.push([k++, pos++]);
  }
  const lost = new Set();
  for (const b of others) {
    const next = [];
    let i = 0;
    let base = 0; // position in b's base
    let shift = 0; // b's inserts minus deletes before `base`
    for (const c of b) {
      if (typeof c === "string") {
        shift += ot.cpLength(c);
        continue;
      }
      const n = Math.abs(c);
      while (i < at.length && at[i][1] < base + n) {
        const [index, p] = at[i++];
        if (c < 0) lost.add(index);
        else next.push([index, p + shift]);
      }
      base += n;
      if (c < 0) shift -= n;
    }
    while (i < at.length) {
      const [index, p] = at[i++];
      next.push([index, p + shift]);
    }
    at = next;
  }
  return lost;
}

/** The runs of the code points batch op `c` inserts whose identities are `dead` (a correction
 *  of ours takes them back): a resend withdraws them (the edit's `withdraw`). */
export function deadRuns(c, node, dead) {
  const runs = [];
  let k = 0;
  for (const comp of c) {
    if (!isIns(comp)) continue;
    for (const id of comp.ids) {
      if (id !== null && dead.has(id)) addRun(runs, node, k);
      k++;
    }
  }
  return runs;
}
