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
    // sized for `maxVersions` keystrokes (one group each: 7 words and an offset, ~36 KB for
    // 1,000), so that a history of typing never grows: a new typed array is costly (growing
    // from small rings cost more than the writes, and their external memory brought on full
    // collections in a process of 500 clients)
    const versions = Math.min(this.max, 1024);
    this._words = new Int32Array(pow2(8 * versions));
    this._offsets = new Int32Array(pow2(versions + 1)); // record k's first word, k counted from the oldest
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
    this._lastName = null; // the node numbered last (most versions change the same one)
    this._lastNumber = -1;
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
    if (version !== this._from + this._count + 1) this.reset(version - 1);
    let need = 1;
    for (let p = 0; p < seqOps.length; p++) need += 2 + 3 * seqOps[p][1].length; // a group per component at most
    if (this._count === this.max) this._dropOldest();
    if (this._free() <= need || this._count >= this._offsets.length) this._grow(need);
    const w = this._words;
    const mask = w.length - 1;
    const start = this._tail;
    let at = start;
    w[at] = seqOps.length;
    at = (at + 1) & mask;
    for (let p = 0; p < seqOps.length; p++) {
      const op = seqOps[p][1];
      w[at] = this._number(seqOps[p][0]);
      const groupsAt = (at + 1) & mask;
      at = (at + 2) & mask;
      let groups = 0;
      let r = 0;
      let i = 0;
      let d = 0;
      // one group per run of (retain, insert, delete) in that order; j === op.length closes the last
      for (let j = 0; j <= op.length; j++) {
        let rr = 0;
        let ii = 0;
        let dd = 0;
        let close = r !== 0 || i !== 0 || d !== 0;
        if (j < op.length) {
          const c = op[j];
          if (typeof c === "number") {
            if (c < 0) dd = -c;
            else rr = c;
          } else ii = typeof c === "string" ? ot.cpLength(c) : c.length;
          close = (rr !== 0 && (i !== 0 || d !== 0)) || (ii !== 0 && d !== 0);
        }
        if (close) {
          w[at] = r;
          w[(at + 1) & mask] = i;
          w[(at + 2) & mask] = d;
          at = (at + 3) & mask;
          groups++;
          r = i = d = 0;
        }
        r += rr;
        i += ii;
        d += dd;
      }
      w[groupsAt] = groups;
    }
    this._tail = at;
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
    if (node === this._lastName) return this._lastNumber;
    let n = this._nodes.get(node);
    if (n === undefined) {
      n = this._names.length;
      this._nodes.set(node, n);
      this._names.push(node);
    }
    this._lastName = node;
    this._lastNumber = n;
    return n;
  }

  /** Words not in use (the ring is never let full: head === tail means empty). */
  _free() {
    return this._count ? (this._head - this._tail) & (this._words.length - 1) : this._words.length;
  }

  _dropOldest() {
    this._count--;
    this._from++;
    this._first = (this._first + 1) & (this._offsets.length - 1);
    this._head = this._count ? this._offsets[this._first] : this._tail;
  }

  /** Bigger rings (powers of two, so that indices wrap with a mask): more than `need` words
   *  free and room for one more offset. */
  _grow(need) {
    const used = this._words.length - this._free();
    let size = this._words.length;
    while (size - used <= need) size *= 2;
    let slots = this._offsets.length;
    while (slots <= this._count) slots *= 2;
    const words = new Int32Array(size);
    const offsets = new Int32Array(slots);
    const old = this._words;
    const mask = old.length - 1;
    const head = this._head;
    // the used words, unwrapped: [head, end) then [0, what wrapped)
    const end = Math.min(old.length, head + used);
    words.set(old.subarray(head, end));
    if (end - head < used) words.set(old.subarray(0, used - (end - head)), end - head);
    for (let k = 0; k < this._count; k++) {
      offsets[k] = (this._offsets[(this._first + k) & (this._offsets.length - 1)] - head) & mask;
    }
    this._words = words;
    this._offsets = offsets;
    this._first = 0;
    this._head = 0;
    this._tail = used;
  }
}

/** The least power of two >= n (n >= 1). */
function pow2(n) {
  return 2 ** Math.ceil(Math.log2(n));
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
