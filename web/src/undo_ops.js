// Invertible text ops with character identities for the undo manager (undo.js): the ot.js format
// where inserts and deletes carry their text *and* one identity per code point, so an op can be
// inverted without the document, and the manager can tell its characters apart (an undo never
// re-inserts a character that is already there; a correction deletes exactly the characters it
// must, wherever later steps moved them).
//
// Components: n > 0 retain n code points; {i: chars, ids} insert; {d: chars, ids} delete. `chars`
// is an array of code points, `ids` the same length: each a client-local identity (an integer; the
// manager numbers them) or null (unknown). Normalized like ot.js: no empty components, neighbours
// of one kind merged, inserts before deletes at one position, no trailing retain. Text ops only.
// Spec: docs/protocol.md, T11; Python twin: cowrite/client/thin_undo_ops.py.

import * as ot from "./ot.js";

const isIns = (c) => typeof c === "object" && c !== null && Array.isArray(c.i);
const isDel = (c) => typeof c === "object" && c !== null && Array.isArray(c.d);

function size(c) {
  if (typeof c === "number") return c;
  return (c.i || c.d).length;
}

class Builder {
  constructor() {
    this.out = [];
    this.ret = 0;
    this.ins = { i: [], ids: [] };
    this.del = { d: [], ids: [] };
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
  insert(chars, ids) {
    if (!chars.length) return;
    this._edit();
    for (let k = 0; k < chars.length; k++) this.ins.i.push(chars[k]), this.ins.ids.push(ids[k]);
  }
  remove(chars, ids) {
    if (!chars.length) return;
    this._edit();
    for (let k = 0; k < chars.length; k++) this.del.d.push(chars[k]), this.del.ids.push(ids[k]);
  }
  push(c) {
    if (typeof c === "number") this.retain(c);
    else if (isIns(c)) this.insert(c.i, c.ids);
    else this.remove(c.d, c.ids);
  }
  flush() {
    if (this.ins.i.length) {
      this.out.push(this.ins);
      this.ins = { i: [], ids: [] };
    }
    if (this.del.d.length) {
      this.out.push(this.del);
      this.del = { d: [], ids: [] };
    }
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
  }
  peek() {
    return this.i < this.op.length ? this.op[this.i] : null;
  }
  /** Take at most n code points of the current component (all that is left when n < 0). */
  take(n = -1) {
    const c = this.op[this.i];
    const left = size(c) - this.off;
    const k = n < 0 || n >= left ? left : n;
    const off = this.off;
    if (k === left) {
      this.i++;
      this.off = 0;
    } else this.off += k;
    if (typeof c === "number") return k;
    if (off === 0 && k === size(c)) return c;
    const ids = c.ids.slice(off, off + k);
    return isIns(c) ? { i: c.i.slice(off, off + k), ids } : { d: c.d.slice(off, off + k), ids };
  }
}

/** The invertible op of plain op `op` applied to `before` (a string or a rope.js Rope). `idsOf(a,
 *  b)`: the identities of `before`'s code points a..b (or null: unknown); `newId()`: an identity
 *  for each inserted code point (default null). */
export function fromPlain(op, before, idsOf = null, newId = null) {
  const out = new Builder();
  const slice =
    typeof before === "string" ? (a, b) => ot.cpSlice(before, a, b) : (a, b) => before.slice(a, b);
  let pos = 0;
  for (const c of ot.normalize(op)) {
    if (typeof c === "string") {
      const chars = Array.from(c);
      out.insert(chars, chars.map(() => (newId ? newId() : null)));
    } else if (c > 0) {
      out.retain(c);
      pos += c;
    } else {
      const chars = Array.from(slice(pos, pos - c));
      out.remove(chars, idsOf ? idsOf(pos, pos - c) : chars.map(() => null));
      pos -= c;
    }
  }
  return out.result();
}

/** The plain (wire) op (a plain op is returned as it is). */
export function toPlain(op) {
  return op.map((c) => (typeof c !== "object" ? c : isIns(c) ? c.i.join("") : -c.d.length));
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
    else if (isIns(c)) out.remove(c.i, c.ids);
    else out.insert(c.d, c.ids);
  }
  return out.result();
}

/** `op` without its inserts: what it would re-insert is dropped (the restore rule). */
export function withoutInserts(op) {
  const out = new Builder();
  for (const c of op) if (!isIns(c)) out.push(c);
  return out.result();
}

/** The identities `op` inserts (nulls left out). */
export function insertedIds(op) {
  const out = [];
  for (const c of op) if (isIns(c)) for (const id of c.ids) if (id !== null) out.push(id);
  return out;
}

/** `a` then `b` (both invertible) as one op. */
export function compose(a, b) {
  const out = new Builder();
  const ra = new Reader(a);
  const rb = new Reader(b);
  while (rb.peek() !== null) {
    const c = rb.peek();
    if (isIns(c)) {
      out.push(rb.take());
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
      if (left) while (isIns(ra.peek())) out.push(ra.take());
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
      if (isIns(x)) {
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

/** `ids` (the identities of a text, an array) after `op` (invertible: its own inserted ids; or
 *  plain: `newId()` for each inserted code point). `inPlace`: change `ids` itself (a splice per
 *  component: cheap for the one-place edits of typing); else a new array. */
export function applyIds(ids, op, newId = () => null, inPlace = false) {
  const out = inPlace ? ids : ids.slice();
  let pos = 0;
  for (const c of op) {
    if (typeof c === "number") {
      if (c >= 0) pos += c;
      else out.splice(pos, -c);
    } else if (isDel(c)) out.splice(pos, c.d.length);
    else {
      const add = typeof c === "string" ? Array.from(c, () => newId()) : c.ids;
      if (add.length < 10000) out.splice(pos, 0, ...add);
      else spliceLarge(out, pos, add);
      pos += add.length;
    }
  }
  return out;
}

function spliceLarge(arr, pos, add) {
  const tail = arr.splice(pos);
  for (const x of add) arr.push(x);
  for (const x of tail) arr.push(x);
}

/** `op` (computed from the undo log) as an op of the text `chars` (code points) whose
 *  identities are `ids`. The log can order two runs inserted at one position (a tie) otherwise
 *  than the text (the thin client rebases its batches whole, the log record by record), so: the
 *  deletes take exactly the characters of their identities that are there (a null identity: the
 *  one at its position), the inserts go to their position (clamped), and `keep(id)` may refuse
 *  an insert. Always applies to the text. */
export function retarget(op, text, ids, keep = () => true) {
  const n = ids.length;
  const charAt = typeof text === "string" ? (b) => ot.cpSlice(text, b, b + 1) : Array.isArray(text) ? (b) => text[b] : (b) => text.slice(b, b + 1).toString();
  const del = new Set();
  const delAt = new Set();
  const ins = new Map();
  let pos = 0;
  for (const c of op) {
    if (typeof c === "number") pos += c;
    else if (isIns(c)) {
      const at = Math.min(pos, n);
      const list = ins.get(at) || [];
      for (let k = 0; k < c.i.length; k++) if (keep(c.ids[k])) list.push(c.i[k], c.ids[k]);
      ins.set(at, list);
    } else {
      for (let k = 0; k < c.d.length; k++) {
        if (c.ids[k] !== null) del.add(c.ids[k]);
        else delAt.add(pos + k);
      }
      pos += c.d.length;
    }
  }
  // the positions that change, in order (one scan of the identities)
  const stops = new Set(ins.keys());
  if (del.size) for (let b = 0; b < n; b++) if (del.has(ids[b])) stops.add(b);
  for (const b of delAt) if (b < n) stops.add(b);
  const out = new Builder();
  let last = 0;
  for (const b of [...stops].sort((x, y) => x - y)) {
    out.retain(b - last);
    last = b;
    const list = ins.get(b);
    if (list) for (let j = 0; j < list.length; j += 2) out.insert([list[j]], [list[j + 1]]);
    if (b < n && (del.has(ids[b]) || delAt.has(b))) {
      out.remove([charAt(b)], [ids[b]]);
      last = b + 1;
    }
  }
  return out.result();
}

/** `op` (invertible, applying to a text whose identities are `from`) as the same change of the
 *  same characters laid out as `to` (the same identities, possibly in another order: the undo
 *  log's layout, which can order a tie otherwise than the text). Deletes go by identity; an
 *  insert goes right after the character it follows in `from` (or first). Null when `to`
 *  lacks one of those identities (the layouts do not match: a bug). */
export function relayout(op, from, to) {
  let want = 0;
  for (const c of op) if (typeof c === "object") want += isIns(c) ? 1 : c.d.length;
  let index;
  if (want > 8) {
    const map = new Map();
    for (let b = 0; b < to.length; b++) map.set(to[b], b);
    index = (id) => map.get(id);
  } else {
    // the layouts differ only at ties: look near the same position first
    index = (id, near) => {
      const lo = Math.max(0, near - 256);
      const hi = Math.min(to.length, near + 256);
      for (let b = lo; b < hi; b++) if (to[b] === id) return b;
      return to.indexOf(id);
    };
  }
  const stops = new Map(); // target position -> [insert components..., delete component?]
  const add = (b, c) => {
    const list = stops.get(b);
    if (list) list.push(c);
    else stops.set(b, [c]);
  };
  let pos = 0;
  for (const c of op) {
    if (typeof c === "number") pos += c;
    else if (isIns(c)) {
      const b = pos === 0 ? 0 : (index(from[pos - 1], pos - 1) ?? -1) + 1;
      if (pos > 0 && !(b > 0)) return null;
      add(b, c);
    } else {
      for (let k = 0; k < c.d.length; k++) {
        const b = index(c.ids[k] ?? from[pos + k], pos + k);
        if (!(b >= 0)) return null;
        add(b, { d: [c.d[k]], ids: [c.ids[k]], at: true });
      }
      pos += c.d.length;
    }
  }
  const out = new Builder();
  let last = 0;
  for (const b of [...stops.keys()].sort((x, y) => x - y)) {
    out.retain(b - last);
    last = b;
    const list = stops.get(b);
    for (const c of list) if (isIns(c)) out.insert(c.i, c.ids);
    for (const c of list) if (c.at) out.remove(c.d, c.ids), (last = b + 1);
  }
  return out.result();
}

/** `op` (invertible) without the code points it inserts where the concurrent plain op `b` (same
 *  base) inserts the same code points at the same position, in order: another client's undo
 *  brought back text we deleted too (to us, new characters), so re-inserting ours would put it
 *  there twice. */
export function withoutEchoes(op, b) {
  const theirs = new Map(); // base position -> code points b inserts there
  let pos = 0;
  for (const c of b) {
    if (typeof c === "string") theirs.set(pos, (theirs.get(pos) || []).concat(Array.from(c)));
    else pos += Math.abs(c);
  }
  if (!theirs.size) return op;
  const out = new Builder();
  pos = 0;
  for (const c of op) {
    if (typeof c === "number") {
      out.retain(c);
      pos += c;
    } else if (isDel(c)) {
      out.remove(c.d, c.ids);
      pos += c.d.length;
    } else {
      const there = theirs.get(pos) || [];
      let k = 0;
      for (let j = 0; j < c.i.length; j++) {
        while (k < there.length && there[k] !== c.i[j]) k++;
        if (k < there.length) k++;
        else out.insert([c.i[j]], [c.ids[j]]);
      }
    }
  }
  return out.result();
}
