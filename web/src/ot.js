// Operational transformation of index edits, counted in Unicode CODE POINTS.
//
// A port of cowrite's engine/ot.py (the ot-text-unicode operation format). An operation is an
// array of components walking the base sequence from position 0:
//   n > 0   retain n items
//   n < 0   delete -n items
//   "str"   insert that text (text nodes)
//   [..]    insert those items (list nodes)
// Whatever the op does not reach is retained implicitly. A normalized op has no zero-length
// components, merged neighbours of one kind, inserts before deletes at one position, and no
// trailing retain; [] is the identity.
//
// Positions count code points, like the wire protocol (Python str indexes): an emoji outside
// the Basic Multilingual Plane is ONE position although it is two UTF-16 units in a JavaScript
// string. cpLength / cpToUtf16 / utf16ToCp convert at the edge (an editor speaks UTF-16).

export class InvalidOperation extends Error {
  constructor(message) {
    super(message);
    this.name = "InvalidOperation";
  }
}

// ------------------------------------------------------------------ code points vs UTF-16

function isHigh(c) {
  return c >= 0xd800 && c <= 0xdbff;
}
function isLow(c) {
  return c >= 0xdc00 && c <= 0xdfff;
}

/** The number of code points of `s` (a lone surrogate counts as one, like Python). */
export function cpLength(s) {
  let n = s.length;
  for (let i = 0; i < s.length - 1; i++) {
    if (isHigh(s.charCodeAt(i)) && isLow(s.charCodeAt(i + 1))) {
      n--;
      i++;
    }
  }
  return n;
}

/** The UTF-16 index of code point `cp` of `s`, counting from UTF-16 index `from` (default 0).
 *  Past the end: s.length. */
export function cpToUtf16(s, cp, from = 0) {
  let i = from;
  const n = s.length;
  while (cp > 0 && i < n) {
    if (isHigh(s.charCodeAt(i)) && i + 1 < n && isLow(s.charCodeAt(i + 1))) i += 2;
    else i += 1;
    cp--;
  }
  return i;
}

// The UTF-16 index n code points after `from`, or -1 when the string ends before that.
function advance(s, from, n) {
  let i = from;
  const len = s.length;
  while (n > 0) {
    if (i >= len) return -1;
    if (isHigh(s.charCodeAt(i)) && i + 1 < len && isLow(s.charCodeAt(i + 1))) i += 2;
    else i += 1;
    n--;
  }
  return i;
}

/** The code point index of UTF-16 index `u` of `s` (an index inside a surrogate pair counts
 *  the pair as passed). Counting starts at UTF-16 index `from` (default 0). */
export function utf16ToCp(s, u, from = 0) {
  let cp = 0;
  let i = from;
  while (i < u) {
    if (isHigh(s.charCodeAt(i)) && i + 1 < s.length && isLow(s.charCodeAt(i + 1))) i += 2;
    else i += 1;
    cp++;
  }
  return cp;
}

/** `s` sliced by code points [start, end). */
export function cpSlice(s, start, end) {
  const a = cpToUtf16(s, start);
  if (end === undefined) return s.slice(a);
  return s.slice(a, cpToUtf16(s, end - start, a));
}

// ----------------------------------------------------------------------------- validation

function scan(op, allowEmpty = false) {
  if (!Array.isArray(op)) throw new InvalidOperation("an operation must be an array");
  let kind = null;
  for (let i = 0; i < op.length; i++) {
    const c = op[i];
    if (typeof c === "number") {
      if (!Number.isInteger(c)) throw new InvalidOperation(`component ${i}: ${c} is not an integer`);
      if (c === 0 && !allowEmpty) throw new InvalidOperation(`component ${i}: zero-length retain/delete`);
      continue;
    }
    const isStr = typeof c === "string";
    if (!isStr && !Array.isArray(c)) {
      throw new InvalidOperation(`component ${i}: ${typeof c} is not a number, string or array`);
    }
    if (c.length === 0) {
      if (allowEmpty) continue;
      throw new InvalidOperation(`component ${i}: empty insert`);
    }
    const k = isStr ? "text" : "list";
    if (kind === null) kind = k;
    else if (kind !== k) {
      throw new InvalidOperation(`component ${i}: an operation inserts text or list items, not both`);
    }
  }
  return kind;
}

function sameKind(a, b, what) {
  if (a !== null && b !== null && a !== b) {
    throw new InvalidOperation(`cannot ${what} a ${a}-inserting op with a ${b}-inserting one`);
  }
}

function size(c) {
  if (typeof c === "number") return Math.abs(c);
  return typeof c === "string" ? cpLength(c) : c.length;
}

/** Throw InvalidOperation unless `op` is a well-formed operation. */
export function check(op) {
  scan(op);
}

// -------------------------------------------------------------------- reader and builder

class Reader {
  constructor(op) {
    this.op = op;
    this.i = 0;
    this.off = 0; // code points (or items) taken of the current component
    this.uoff = 0; // the same offset in UTF-16 units, for strings
    this.len = op.length ? size(op[0]) : 0;
  }
  peek() {
    return this.i < this.op.length ? this.op[this.i] : null;
  }
  next() {
    this.i++;
    this.off = 0;
    this.uoff = 0;
    this.len = this.i < this.op.length ? size(this.op[this.i]) : 0;
  }
  /** Take at most n items (all that is left of the component when n < 0). */
  take(n = -1) {
    const c = this.op[this.i];
    const left = this.len - this.off;
    if (n >= 0 && n < left) {
      if (typeof c === "number") {
        this.off += n;
        return c > 0 ? n : -n;
      }
      if (typeof c === "string") {
        const end = cpToUtf16(c, n, this.uoff);
        const piece = c.slice(this.uoff, end);
        this.uoff = end;
        this.off += n;
        return piece;
      }
      const piece = c.slice(this.off, this.off + n);
      this.off += n;
      return piece;
    }
    let out;
    if (typeof c === "number") out = c > 0 ? left : -left;
    else if (typeof c === "string") out = this.uoff ? c.slice(this.uoff) : c;
    else out = this.off ? c.slice(this.off) : c;
    this.next();
    return out;
  }
}

class Builder {
  constructor() {
    this.out = [];
    this.ins = [];
    this.ret = 0;
    this.dels = 0;
  }
  retain(n) {
    if (n > 0) {
      this.flush();
      this.ret += n;
    }
  }
  edit() {
    if (this.ret) {
      this.out.push(this.ret);
      this.ret = 0;
    }
  }
  delete(n) {
    if (n > 0) {
      this.edit();
      this.dels += n;
    }
  }
  insert(s) {
    if (s.length) {
      this.edit();
      this.ins.push(s);
    }
  }
  push(c) {
    if (typeof c === "number") {
      if (c > 0) this.retain(c);
      else this.delete(-c);
    } else this.insert(c);
  }
  flush() {
    if (this.ins.length) {
      if (typeof this.ins[0] === "string") this.out.push(this.ins.join(""));
      else this.out.push([].concat(...this.ins));
      this.ins = [];
    }
    if (this.dels) {
      this.out.push(-this.dels);
      this.dels = 0;
    }
  }
  result() {
    this.flush();
    return this.out;
  }
}

// -------------------------------------------------------------------------- operations

/** The normalized equivalent of `op` (zero-length components are dropped). */
export function normalize(op) {
  scan(op, true);
  const out = new Builder();
  for (const c of op) out.push(c);
  return out.result();
}

/** `op` itself when it is already normalized (not copied: for an op its caller owns and never
 *  changes, such as one just parsed from a message), else normalize(op). */
export function normalized(op) {
  scan(op, true);
  let last = 0; // the kind of the previous component: 0 none, 1 retain, 2 insert, 3 delete
  for (const c of op) {
    const kind = typeof c === "number" ? (c > 0 ? 1 : c < 0 ? 3 : 0) : c.length ? 2 : 0;
    // normalize merges neighbours of one kind, puts an insert before a delete, drops empties
    if (kind === 0 || kind === last || (kind === 2 && last === 3)) return normalize(op);
    last = kind;
  }
  return last === 1 ? normalize(op) : op; // a trailing retain is dropped
}

/** True when the op changes nothing. */
export function isNoop(op) {
  scan(op);
  return op.every((c) => typeof c === "number" && c > 0);
}

/** The op deleting `deleteCount` items at `pos` then inserting `insert` there. */
export function fromSplice(pos, deleteCount, insert) {
  const out = new Builder();
  out.retain(pos);
  out.insert(insert);
  out.delete(deleteCount);
  return out.result();
}

/** A new sequence: `op` applied to `seq` (a string, counted in code points, or an array). */
export function apply(seq, op) {
  const kind = scan(op);
  const isStr = typeof seq === "string";
  if (!isStr && !Array.isArray(seq)) throw new InvalidOperation("ops apply to a string or an array");
  if (kind !== null && (kind === "text") !== isStr) {
    throw new InvalidOperation(`op inserts ${kind === "text" ? "text" : "list items"} into a ${isStr ? "string" : "list"}`);
  }
  const parts = [];
  let pos = 0; // code points (or items)
  let u = 0; // UTF-16 index matching pos
  for (let i = 0; i < op.length; i++) {
    const c = op[i];
    if (typeof c === "number") {
      const n = Math.abs(c);
      let end;
      if (isStr) {
        end = advance(seq, u, n);
        if (end < 0) {
          throw new InvalidOperation(`component ${i} (${c > 0 ? "retain" : "delete"} ${n} at ${pos}) runs past the end of the text`);
        }
      } else {
        end = u + n;
        if (end > seq.length) {
          throw new InvalidOperation(`component ${i} (${c > 0 ? "retain" : "delete"} ${n} at ${pos}) runs past the end of a list of length ${seq.length}`);
        }
      }
      if (c > 0) parts.push(seq.slice(u, end));
      pos += n;
      u = end;
    } else parts.push(c);
  }
  parts.push(seq.slice(u));
  return isStr ? parts.join("") : [].concat(...parts);
}

/** The op equal to `a` then `b`. */
export function compose(a, b) {
  sameKind(scan(a), scan(b), "compose");
  const out = new Builder();
  const ra = new Reader(a);
  for (const c of b) {
    if (typeof c !== "number") {
      out.insert(c);
      continue;
    }
    let n = Math.abs(c);
    while (n > 0) {
      const x = ra.peek();
      if (x === null) {
        out.push(c > 0 ? n : -n);
        break;
      }
      if (typeof x === "number" && x < 0) {
        out.push(ra.take());
        continue;
      }
      const piece = ra.take(n);
      const m = size(piece);
      n -= m;
      if (c > 0) out.push(piece);
      else if (typeof piece === "number") out.delete(m);
      // else: b deletes what a inserted: both vanish
    }
  }
  while (ra.peek() !== null) out.push(ra.take());
  return out.result();
}

/** Rebase `a` to apply after the concurrent `b` (same base). side "left": a's inserts go first
 *  at a tie; "right": b's go first. */
export function transform(a, b, side) {
  if (side !== "left" && side !== "right") throw new InvalidOperation(`side must be "left" or "right"`);
  sameKind(scan(a), scan(b), "transform");
  const left = side === "left";
  const out = new Builder();
  const ra = new Reader(a);
  for (const c of b) {
    if (typeof c !== "number") {
      if (left) {
        let x;
        while ((x = ra.peek()) !== null && typeof x !== "number") out.push(ra.take());
      }
      out.retain(size(c));
      continue;
    }
    let n = Math.abs(c);
    while (n > 0) {
      const x = ra.peek();
      if (x === null) {
        if (c > 0) out.retain(n);
        break;
      }
      if (typeof x !== "number") {
        out.push(ra.take());
        continue;
      }
      const piece = ra.take(n);
      n -= size(piece);
      if (c > 0) out.push(piece);
    }
  }
  while (ra.peek() !== null) out.push(ra.take());
  return out.result();
}

/** The op undoing `op` applied to `before`. */
export function invert(op, before) {
  scan(op);
  const isStr = typeof before === "string";
  const out = new Builder();
  let u = 0;
  for (const c of op) {
    if (typeof c === "number") {
      const n = Math.abs(c);
      const end = isStr ? cpToUtf16(before, n, u) : u + n;
      if (c > 0) out.retain(n);
      else out.insert(before.slice(u, end));
      u = end;
    } else out.delete(size(c));
  }
  return out.result();
}

/** Where a position ends up once `op` is applied. An insert exactly at the position leaves it
 *  before the inserted items unless `isOwnOp` (then it moves after them, like a typing caret). */
export function transformPosition(pos, op, isOwnOp = false) {
  let cursor = pos;
  let at = 0;
  for (const c of op) {
    if (at > pos) break;
    if (typeof c !== "number") {
      if (at < pos || (at === pos && isOwnOp)) cursor += size(c);
    } else if (c > 0) at += c;
    else {
      if (at < pos) cursor -= Math.min(-c, pos - at);
      at -= c;
    }
  }
  return cursor;
}

/** Where position `pos` of apply(s, op) was in s (a position inside inserted items maps to
 *  where they were inserted). The inverse of transformPosition. */
export function positionBefore(pos, op) {
  let pre = 0;
  let post = 0;
  for (const c of op) {
    if (typeof c === "number") {
      if (c > 0) {
        if (pos < post + c) return pre + (pos - post);
        pre += c;
        post += c;
      } else pre -= c;
    } else {
      const n = size(c);
      if (pos < post + n) return pre;
      post += n;
    }
  }
  return pre + (pos - post);
}

/** An op turning `a` into `b` (strings or arrays): keep the common prefix and suffix, replace
 *  the middle (one region: what a three-way merge wants). */
export function diff(a, b) {
  if (typeof a === "string") {
    const ca = Array.from(a);
    const cb = Array.from(b);
    const op = diffArrays(ca, cb);
    return op.map((c) => (Array.isArray(c) ? c.join("") : c));
  }
  return diffArrays(a, b, true);
}

function diffArrays(a, b, deep = false) {
  const eq = deep ? (x, y) => JSON.stringify(x) === JSON.stringify(y) : (x, y) => x === y;
  const n = Math.min(a.length, b.length);
  let start = 0;
  while (start < n && eq(a[start], b[start])) start++;
  let end = 0;
  while (end < n - start && eq(a[a.length - 1 - end], b[b.length - 1 - end])) end++;
  return normalize([start, b.slice(start, b.length - end), -(a.length - start - end)]);
}
