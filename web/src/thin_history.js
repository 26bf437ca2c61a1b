// The history a thin document keeps to place remote cursors (T10): for each of the last N
// versions, the shape of its sequence ops, per node. Placing a position needs only the lengths
// of an op's retains, inserts and deletes, never the inserted text, so each op is kept as
// (retain, insert, delete) triples of integers in one ring of 32-bit words, with the nodes as
// small numbers. Nothing per version is a JavaScript object: in a process holding hundreds of
// clients, a kept op array per version per client was half the garbage collector's work (each
// one survived, was copied and promoted, then died old; docs/benchmarks.md, "cursor history").

import * as ot from "./ot.js";

/** Ring layout, one record per version, consecutive versions: [pairs, then per pair: node
 *  number, groups, then retain, insert, delete per group]. */
export class CursorHistory {
  /** `maxVersions`: how many versions are kept (at least 1); `from`: the version a cursor may
   *  be at while nothing is kept yet. */
  constructor(maxVersions, from = 0) {
    this.max = Math.max(1, maxVersions);
    this._words = new Int32Array(64);
    this._offsets = new Int32Array(16); // record k's first word, k counted from the oldest
    this.reset(from);
  }

  /** Forget every version: cursors at `version` (and later) are placed from now on. */
  reset(version) {
    this._from = version; // the version before the oldest kept record
    this._count = 0;
    this._first = 0; // ring index of the oldest record's offset
    this._head = 0; // word index of the oldest record
    this._tail = 0; // word index after the newest record
    this._nodes = new Map(); // node id -> number
    this._names = [];
  }

  /** The versions kept. */
  get length() {
    return this._count;
  }

  /** The oldest version whose cursors can be placed exactly (those of every later version up
   *  to the newest pushed can be too). */
  get start() {
    return this._from;
  }

  /** The newest version kept (`start` when none is). */
  get last() {
    return this._from + this._count;
  }

  /** Record `version`'s sequence ops ([[node, op], ...], in the order they applied). A version
   *  that does not follow the newest kept one starts the history again from the one before it. */
  push(version, seqOps) {
    if (version !== this.last + 1) this.reset(version - 1);
    let need = 1;
    for (const [, op] of seqOps) need += 2 + 3 * op.length; // at most one group per component
    this._reserve(need);
    const start = this._tail;
    let at = start;
    this._put(at++, seqOps.length);
    for (const [node, op] of seqOps) {
      this._put(at++, this._number(node));
      const groupsAt = at++;
      let groups = 0;
      let r = 0;
      let i = 0;
      let d = 0;
      for (const c of op) {
        if (typeof c === "number") {
          if (c > 0) {
            if (i || d) {
              at = this._group(at, r, i, d);
              groups++;
              r = i = d = 0;
            }
            r += c;
          } else d -= c;
        } else {
          const n = typeof c === "string" ? ot.cpLength(c) : c.length;
          if (n && d) {
            at = this._group(at, r, i, d);
            groups++;
            r = i = d = 0;
          }
          i += n;
        }
      }
      if (r || i || d) {
        at = this._group(at, r, i, d);
        groups++;
      }
      this._put(groupsAt, groups);
    }
    this._tail = at & (this._words.length - 1);
    this._offsets[(this._first + this._count) & (this._offsets.length - 1)] = start;
    this._count++;
  }

  /** [anchor, head] of `node` at `version` moved through every kept op of `node` after it
   *  (`ot.transformPosition`, someone else's op); null when `version` is not an integer
   *  within [start, last]. */
  transform(node, version, anchor, head) {
    if (!Number.isInteger(version) || version < this._from || version > this.last) return null;
    const n = this._nodes.get(node);
    if (n === undefined) return [anchor, head];
    const w = this._words;
    const mask = w.length - 1;
    const omask = this._offsets.length - 1;
    for (let k = version - this._from; k < this._count; k++) {
      let at = this._offsets[(this._first + k) & omask];
      const pairs = w[at];
      at = (at + 1) & mask;
      for (let p = 0; p < pairs; p++) {
        const node = w[at];
        const groups = w[(at + 1) & mask];
        at = (at + 2) & mask;
        if (node === n) {
          anchor = place(w, mask, at, groups, anchor);
          head = place(w, mask, at, groups, head);
        }
        at = (at + 3 * groups) & mask;
      }
    }
    return [anchor, head];
  }

  /** The kept records as [version, [[node, [[retain, insert, delete], ...]], ...]] (for tests). */
  entries() {
    const out = [];
    const w = this._words;
    const mask = w.length - 1;
    for (let k = 0; k < this._count; k++) {
      let at = this._offsets[(this._first + k) & (this._offsets.length - 1)];
      const pairs = [];
      const n = w[at];
      at = (at + 1) & mask;
      for (let p = 0; p < n; p++) {
        const groups = [];
        const node = this._names[w[at]];
        const g = w[(at + 1) & mask];
        at = (at + 2) & mask;
        for (let j = 0; j < g; j++, at = (at + 3) & mask) groups.push([w[at], w[(at + 1) & mask], w[(at + 2) & mask]]);
        pairs.push([node, groups]);
      }
      out.push([this._from + k + 1, pairs]);
    }
    return out;
  }

  // ---------------------------------------------------------------------- internals

  _number(node) {
    let n = this._nodes.get(node);
    if (n === undefined) {
      n = this._names.length;
      this._nodes.set(node, n);
      this._names.push(node);
    }
    return n;
  }

  _put(at, value) {
    this._words[at & (this._words.length - 1)] = value;
  }

  _group(at, r, i, d) {
    const mask = this._words.length - 1;
    this._words[at & mask] = r;
    this._words[(at + 1) & mask] = i;
    this._words[(at + 2) & mask] = d;
    return at + 3;
  }

  _used() {
    if (!this._count) return 0;
    return (this._tail - this._head) & (this._words.length - 1) || this._words.length;
  }

  _dropOldest() {
    this._count--;
    this._from++;
    this._first = (this._first + 1) & (this._offsets.length - 1);
    this._head = this._count ? this._offsets[this._first] : this._tail;
  }

  /** Room for a record of `need` words and one more offset: drop the oldest records while full
   *  of them, else grow the rings (powers of two, so that indices wrap with a mask). */
  _reserve(need) {
    if (this._count === this.max) this._dropOldest();
    let size = this._words.length;
    while (size - this._used() <= need) size *= 2; // never full: head === tail means empty
    let slots = this._offsets.length;
    while (slots <= this._count) slots *= 2;
    if (size === this._words.length && slots === this._offsets.length) return;
    const words = new Int32Array(size);
    const offsets = new Int32Array(slots);
    const old = this._words;
    const mask = old.length - 1;
    const used = this._used();
    for (let j = 0; j < used; j++) words[j] = old[(this._head + j) & mask];
    for (let k = 0; k < this._count; k++) {
      offsets[k] = (this._offsets[(this._first + k) & (this._offsets.length - 1)] - this._head) & mask;
    }
    this._words = words;
    this._offsets = offsets;
    this._first = 0;
    this._head = 0;
    this._tail = used;
  }
}

/** ot.transformPosition(pos, op) over `groups` (retain, insert, delete) triples at `at`. */
function place(w, mask, at, groups, pos) {
  let cursor = pos;
  let here = 0;
  for (let g = 0; g < groups; g++, at = (at + 3) & mask) {
    here += w[at];
    if (here > pos) break;
    if (here < pos) cursor += w[(at + 1) & mask];
    const d = w[(at + 2) & mask];
    if (here < pos) cursor -= Math.min(d, pos - here);
    here += d;
  }
  return cursor;
}
