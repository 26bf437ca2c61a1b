// Invertible text ops for the undo manager (undo.js): the ot.js format with deletes that carry
// the text they remove, so an op can be inverted without the document it applied to.
//
// Components: n > 0 retain n code points; "str" insert; {d: "str"} delete that text. Normalized
// like ot.js: no empty components, neighbours of one kind merged, inserts before deletes at one
// position, no trailing retain. Text ops only (undo is for text nodes). Positions count code
// points. Spec: docs/protocol.md, "Undo in thin clients"; Python twin: cowrite/client/thin_undo_ops.py.

import * as ot from "./ot.js";

const isDel = (c) => typeof c === "object" && c !== null && typeof c.d === "string";

function size(c) {
  if (typeof c === "number") return Math.abs(c);
  return ot.cpLength(typeof c === "string" ? c : c.d);
}

class Builder {
  constructor() {
    this.out = [];
    this.ret = 0;
    this.ins = [];
    this.dels = [];
  }
  retain(n) {
    if (n <= 0) return;
    this.flush();
    this.ret += n;
  }
  _edit() {
    if (this.ret) this.out.push(this.ret);
    this.ret = 0;
  }
  insert(s) {
    if (!s) return;
    this._edit();
    this.ins.push(s);
  }
  remove(s) {
    if (!s) return;
    this._edit();
    this.dels.push(s);
  }
  push(c) {
    if (typeof c === "number") this.retain(c);
    else if (typeof c === "string") this.insert(c);
    else this.remove(c.d);
  }
  flush() {
    if (this.ins.length) this.out.push(this.ins.join(""));
    if (this.dels.length) this.out.push({ d: this.dels.join("") });
    this.ins = [];
    this.dels = [];
  }
  result() {
    this.flush();
    return this.out;
  }
}

class Reader {
  constructor(op) {
    this.op = op;
    this.i = 0;
    this.off = 0;
    this.uoff = 0;
  }
  peek() {
    return this.i < this.op.length ? this.op[this.i] : null;
  }
  /** Take at most n code points of the current component (all that is left when n < 0). */
  take(n = -1) {
    const c = this.op[this.i];
    const left = size(c) - this.off;
    if (n < 0 || n >= left) {
      this.i++;
      const off = this.off;
      const uoff = this.uoff;
      this.off = this.uoff = 0;
      if (typeof c === "number") return left;
      const s = typeof c === "string" ? c : c.d;
      const rest = off ? s.slice(uoff) : s;
      return typeof c === "string" ? rest : { d: rest };
    }
    this.off += n;
    if (typeof c === "number") return n;
    const s = typeof c === "string" ? c : c.d;
    const end = ot.cpToUtf16(s, n, this.uoff);
    const piece = s.slice(this.uoff, end);
    this.uoff = end;
    return typeof c === "string" ? piece : { d: piece };
  }
}

/** The invertible op of plain op `op` applied to `before` (a string or a rope.js Rope). */
export function fromPlain(op, before) {
  const out = new Builder();
  const slice =
    typeof before === "string" ? (a, b) => ot.cpSlice(before, a, b) : (a, b) => before.slice(a, b);
  let pos = 0;
  for (const c of ot.normalize(op)) {
    if (typeof c === "string") out.insert(c);
    else if (c > 0) {
      out.retain(c);
      pos += c;
    } else {
      out.remove(slice(pos, pos - c));
      pos -= c;
    }
  }
  return out.result();
}

/** The plain (wire) op. */
export function toPlain(op) {
  return op.map((c) => (isDel(c) ? -ot.cpLength(c.d) : c));
}

/** True when the op changes nothing. */
export function isNoop(op) {
  return op.every((c) => typeof c === "number");
}

/** The op undoing `op` (applies to what `op` produced). */
export function invert(op) {
  const out = new Builder();
  for (const c of op) {
    if (typeof c === "number") out.retain(c);
    else if (typeof c === "string") out.remove(c);
    else out.insert(c.d);
  }
  return out.result();
}

/** `op` without its inserts: what it would re-insert is dropped (the restore rule). */
export function withoutInserts(op) {
  const out = new Builder();
  for (const c of op) if (typeof c !== "string") out.push(c);
  return out.result();
}

/** The op deleting what `op` inserted (applies to what `op` produced). */
export function deleteInserts(op) {
  const out = new Builder();
  for (const c of op) {
    if (typeof c === "number") out.retain(c);
    else if (typeof c === "string") out.remove(c);
  }
  return out.result();
}

/** `a` then `b` (both invertible) as one op. */
export function compose(a, b) {
  const out = new Builder();
  const ra = new Reader(a);
  const rb = new Reader(b);
  while (rb.peek() !== null) {
    const c = rb.peek();
    if (typeof c === "string") {
      out.insert(rb.take());
      continue;
    }
    const x = ra.peek();
    if (x === null) {
      out.push(rb.take());
      continue;
    }
    if (isDel(x)) {
      out.push(ra.take());
      continue;
    }
    const n = Math.min(size(c) - rb.off, size(x) - ra.off);
    const piece = ra.take(n); // a retain (base text) or an insert of a
    const mine = rb.take(n);
    if (typeof mine === "number") out.push(piece);
    else if (typeof piece === "number") out.push(mine); // b deletes base text: keep its content
    // else: b deletes what a inserted: both vanish
  }
  while (ra.peek() !== null) out.push(ra.take());
  return out.result();
}

/** Rebase invertible `a` over the concurrent plain op `b` (same base), like ot.transform: side
 *  "left" puts a's inserts first at a tie. What both delete is no longer deleted by a. */
export function transform(a, b, side) {
  const left = side === "left";
  const out = new Builder();
  const ra = new Reader(a);
  for (const c of b) {
    if (typeof c !== "number") {
      if (left) while (typeof ra.peek() === "string") out.push(ra.take());
      out.retain(ot.cpLength(c));
      continue;
    }
    let n = Math.abs(c);
    while (n > 0) {
      const x = ra.peek();
      if (x === null) {
        if (c > 0) out.retain(n);
        break;
      }
      if (typeof x === "string") {
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

function insertsByBase(op) {
  const out = new Map();
  let base = 0;
  for (const c of op) {
    if (typeof c === "number") base += c;
    else if (typeof c === "string") out.set(base, (out.get(base) || "") + c);
    else base += ot.cpLength(c.d);
  }
  return out;
}

/** The op (applying after `actual`) deleting what `actual` inserted beyond `expected`, both
 *  ops of one base: an insert of `expected` at the same base position is matched in order
 *  (a subsequence); the rest of `actual`'s inserts is extra. */
export function extraInserts(actual, expected) {
  const want = expected ? insertsByBase(expected) : new Map();
  const out = new Builder();
  let base = 0;
  for (const c of actual) {
    if (typeof c === "number") {
      out.retain(c);
      base += c;
    } else if (typeof c === "string") {
      const t = Array.from(want.get(base) || "");
      let k = 0;
      for (const ch of c) {
        if (k < t.length && t[k] === ch) {
          k++;
          out.retain(1);
        } else out.remove(ch);
      }
    } else base += ot.cpLength(c.d);
  }
  return out.result();
}
