// The undo manager's log (undo.js): the fold that undoes a step. Python twin:
// cowrite/client/thin_undo_log.py.
//
// A record is one change of the node in server order (ours invertible, carrying text and
// identities; restores' too); a step ({records, at, open}) is some of our records. `fold` is
// docs/protocol.md T11's "Undo" rule: invert the step's records and rebase the result over every
// other record after its first, dropping re-inserts across a restore and those another client's
// batch made at the same place.

import { compose, invert, toPlain, transform, withoutEchoes, withoutInserts } from "./undo_ops.js";

/** The op undoing `group` after `log` (or just before record `end`), null if none of its
 *  records are (still) in the log. */
export function fold(log, group, end = log.length) {
  if (!group.records.length) return null;
  const members = new Set(group.records);
  let start = end;
  for (const rec of group.records) {
    const at = log.indexOf(rec);
    if (at >= 0 && at < start) start = at;
  }
  // an undo and its redo side by side (nothing between, still exact inverses) are skipped:
  // rebasing over a deletion and its re-insertion would lose where our text was (a tie)
  const kept = [];
  for (let j = start; j < end; j++) {
    const rec = log[j];
    const prev = kept[kept.length - 1];
    if (prev && rec.of === prev && !members.has(prev) && !members.has(rec) && sameOp(invert(prev.op), rec.op)) kept.pop();
    else kept.push(rec);
  }
  let u = null;
  for (const rec of kept) {
    if (members.has(rec)) {
      const inv = invert(rec.op);
      u = u === null ? inv : compose(inv, u);
    } else if (u !== null) {
      if (rec.restore) u = withoutInserts(u);
      else if (!rec.own) u = withoutEchoes(u, toPlain(rec.op));
      u = transform(u, toPlain(rec.op), "left");
    }
  }
  return u;
}

function sameOp(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}
