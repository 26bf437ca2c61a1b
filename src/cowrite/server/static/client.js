// cowrite JavaScript client (ES module, no dependencies). Built from web/src by web/build.mjs: edit the sources, not this file.
// Docs: docs/javascript-client.md. License: MIT.
var __defProp = Object.defineProperty;
var __export = (target, all) => {
  for (var name in all)
    __defProp(target, name, { get: all[name], enumerable: true });
};

// src/ot.js
var ot_exports = {};
__export(ot_exports, {
  InvalidOperation: () => InvalidOperation,
  apply: () => apply,
  check: () => check,
  compose: () => compose,
  cpLength: () => cpLength,
  cpSlice: () => cpSlice,
  cpToUtf16: () => cpToUtf16,
  diff: () => diff,
  fromSplice: () => fromSplice,
  invert: () => invert,
  isNoop: () => isNoop,
  normalize: () => normalize,
  normalized: () => normalized,
  positionBefore: () => positionBefore,
  transform: () => transform,
  transformPosition: () => transformPosition,
  utf16ToCp: () => utf16ToCp
});
var InvalidOperation = class extends Error {
  constructor(message) {
    super(message);
    this.name = "InvalidOperation";
  }
};
function isHigh(c) {
  return c >= 55296 && c <= 56319;
}
function isLow(c) {
  return c >= 56320 && c <= 57343;
}
function cpLength(s) {
  let n = s.length;
  for (let i = 0; i < s.length - 1; i++) {
    if (isHigh(s.charCodeAt(i)) && isLow(s.charCodeAt(i + 1))) {
      n--;
      i++;
    }
  }
  return n;
}
function cpToUtf16(s, cp, from = 0) {
  let i = from;
  const n = s.length;
  while (cp > 0 && i < n) {
    if (isHigh(s.charCodeAt(i)) && i + 1 < n && isLow(s.charCodeAt(i + 1))) i += 2;
    else i += 1;
    cp--;
  }
  return i;
}
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
function utf16ToCp(s, u, from = 0) {
  let cp = 0;
  let i = from;
  while (i < u) {
    if (isHigh(s.charCodeAt(i)) && i + 1 < s.length && isLow(s.charCodeAt(i + 1))) i += 2;
    else i += 1;
    cp++;
  }
  return cp;
}
function cpSlice(s, start, end) {
  const a = cpToUtf16(s, start);
  if (end === void 0) return s.slice(a);
  return s.slice(a, cpToUtf16(s, end - start, a));
}
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
function check(op) {
  scan(op);
}
var Reader = class {
  constructor(op) {
    this.op = op;
    this.i = 0;
    this.off = 0;
    this.uoff = 0;
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
        const piece2 = c.slice(this.uoff, end);
        this.uoff = end;
        this.off += n;
        return piece2;
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
};
var Builder = class {
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
};
function normalize(op) {
  scan(op, true);
  const out = new Builder();
  for (const c of op) out.push(c);
  return out.result();
}
function normalized(op) {
  scan(op, true);
  let last = 0;
  for (const c of op) {
    const kind = typeof c === "number" ? c > 0 ? 1 : c < 0 ? 3 : 0 : c.length ? 2 : 0;
    if (kind === 0 || kind === last || kind === 2 && last === 3) return normalize(op);
    last = kind;
  }
  return last === 1 ? normalize(op) : op;
}
function isNoop(op) {
  scan(op);
  return op.every((c) => typeof c === "number" && c > 0);
}
function fromSplice(pos, deleteCount, insert2) {
  const out = new Builder();
  out.retain(pos);
  out.insert(insert2);
  out.delete(deleteCount);
  return out.result();
}
function apply(seq, op) {
  const kind = scan(op);
  const isStr = typeof seq === "string";
  if (!isStr && !Array.isArray(seq)) throw new InvalidOperation("ops apply to a string or an array");
  if (kind !== null && kind === "text" !== isStr) {
    throw new InvalidOperation(`op inserts ${kind === "text" ? "text" : "list items"} into a ${isStr ? "string" : "list"}`);
  }
  const parts = [];
  let pos = 0;
  let u = 0;
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
function compose(a, b) {
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
    }
  }
  while (ra.peek() !== null) out.push(ra.take());
  return out.result();
}
function transform(a, b, side) {
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
function invert(op, before) {
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
function transformPosition(pos, op, isOwnOp = false) {
  let cursor = pos;
  let at = 0;
  for (const c of op) {
    if (at > pos) break;
    if (typeof c !== "number") {
      if (at < pos || at === pos && isOwnOp) cursor += size(c);
    } else if (c > 0) at += c;
    else {
      if (at < pos) cursor -= Math.min(-c, pos - at);
      at -= c;
    }
  }
  return cursor;
}
function positionBefore(pos, op) {
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
function diff(a, b) {
  if (typeof a === "string") {
    const ca = Array.from(a);
    const cb = Array.from(b);
    const op = diffArrays(ca, cb);
    return op.map((c) => Array.isArray(c) ? c.join("") : c);
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

// src/rope.js
var LEAF_MAX = 1024;
var LEAF_TARGET = 512;
var LEAF_MIN = 128;
var FAN_MAX = 32;
var FAN_MIN = 8;
function isHigh2(c) {
  return c >= 55296 && c <= 56319;
}
function isLow2(c) {
  return c >= 56320 && c <= 57343;
}
function pairs(a, b) {
  return a.length && b.length && isHigh2(a.charCodeAt(a.length - 1)) && isLow2(b.charCodeAt(0)) ? 1 : 0;
}
var Leaf = class {
  constructor(s, cp) {
    this.s = s;
    this.cp = cp;
    this.u = s.length;
  }
};
var Branch = class {
  constructor(kids) {
    this.kids = kids;
    let cp = 0;
    let u = 0;
    for (let i = 0; i < kids.length; i++) {
      cp += kids[i].cp;
      u += kids[i].u;
    }
    this.cp = cp;
    this.u = u;
  }
};
function leafU(leaf, cp) {
  if (leaf.cp === leaf.u) return cp;
  return cpToUtf16(leaf.s, cp);
}
function chunk(s) {
  if (s.length <= LEAF_MAX) return [new Leaf(s, cpLength(s))];
  const count = Math.ceil(s.length / LEAF_TARGET);
  const size3 = Math.ceil(s.length / count);
  const out = [];
  let a = 0;
  while (a < s.length) {
    let b = Math.min(s.length, a + size3);
    if (b < s.length && isLow2(s.charCodeAt(b)) && isHigh2(s.charCodeAt(b - 1))) b++;
    const piece = s.slice(a, b);
    out.push(new Leaf(piece, cpLength(piece)));
    a = b;
  }
  return out;
}
function group(nodes) {
  const count = Math.ceil(nodes.length / FAN_MAX);
  const size3 = Math.ceil(nodes.length / count);
  const out = [];
  for (let i = 0; i < nodes.length; i += size3) out.push(new Branch(nodes.slice(i, i + size3)));
  return out;
}
function build(nodes) {
  if (!nodes.length) return EMPTY_LEAF;
  while (nodes.length > 1) nodes = group(nodes);
  return nodes[0];
}
var EMPTY_LEAF = new Leaf("", 0);
function insert(node, cp, str, strCp) {
  if (node instanceof Leaf) {
    const s = node.s;
    const u = leafU(node, cp);
    const head = s.slice(0, u);
    const tail = s.slice(u);
    const joined = head + str + tail;
    if (joined.length > LEAF_MAX) return chunk(joined);
    return [new Leaf(joined, node.cp + strCp - pairs(head, str) - pairs(str, tail))];
  }
  const kids = node.kids;
  let i = 0;
  let acc = 0;
  while (i < kids.length - 1 && acc + kids[i].cp < cp) acc += kids[i++].cp;
  const done = insert(kids[i], cp - acc, str, strCp);
  let next;
  if (done.length === 1) {
    next = kids.slice();
    next[i] = done[0];
  } else next = kids.slice(0, i).concat(done, kids.slice(i + 1));
  return next.length > FAN_MAX ? group(next) : [new Branch(next)];
}
function small(node) {
  return node instanceof Leaf ? node.u < LEAF_MIN : node.kids.length < FAN_MIN;
}
function merge(a, b) {
  if (a instanceof Leaf) {
    if (a.u + b.u > LEAF_MAX) return null;
    return new Leaf(a.s + b.s, a.cp + b.cp - pairs(a.s, b.s));
  }
  if (a.kids.length + b.kids.length > FAN_MAX) return null;
  return new Branch(a.kids.concat(b.kids));
}
function remove(node, from, to) {
  if (node instanceof Leaf) {
    const s = node.s;
    const a = leafU(node, from);
    const b = node.cp === node.u ? to : cpToUtf16(s, to - from, a);
    if (a === 0 && b === s.length) return null;
    const head = s.slice(0, a);
    const tail = s.slice(b);
    return new Leaf(head + tail, node.cp - (to - from) - pairs(head, tail));
  }
  const kids = node.kids;
  const next = [];
  const touched = [];
  let acc = 0;
  for (let i = 0; i < kids.length; i++) {
    const kid = kids[i];
    const end = acc + kid.cp;
    if (end <= from || acc >= to) next.push(kid);
    else if (from <= acc && end <= to) {
    } else {
      const left = remove(kid, Math.max(from, acc) - acc, Math.min(to, end) - acc);
      if (left) {
        touched.push(left);
        next.push(left);
      }
    }
    acc = end;
  }
  if (!next.length) return null;
  for (const kid of touched) {
    if (!small(kid)) continue;
    const i = next.indexOf(kid);
    if (i > 0) {
      const m = merge(next[i - 1], kid);
      if (m) {
        next.splice(i - 1, 2, m);
        continue;
      }
    }
    if (i >= 0 && i + 1 < next.length) {
      const m = merge(kid, next[i + 1]);
      if (m) next.splice(i, 2, m);
    }
  }
  return new Branch(next);
}
function root(nodes) {
  let node = nodes.length === 1 ? nodes[0] : build(nodes);
  while (node instanceof Branch && node.kids.length === 1) node = node.kids[0];
  return node;
}
var Rope = class _Rope {
  constructor(node = EMPTY_LEAF, str = null) {
    this._root = node;
    this._str = str;
  }
  /** The rope of string `s`. */
  static from(s) {
    if (isRope(s)) return s;
    if (typeof s !== "string") throw new TypeError("Rope.from takes a string");
    return new _Rope(build(chunk(s)), s);
  }
  /** Length in code points. */
  get length() {
    return this._root.cp;
  }
  /** Length in UTF-16 units (a JavaScript string's length). */
  get utf16Length() {
    return this._root.u;
  }
  /** The whole text (built once, then cached). */
  toString() {
    if (this._str === null) {
      const parts = [];
      const walk = (node) => {
        if (node instanceof Leaf) parts.push(node.s);
        else for (const kid of node.kids) walk(kid);
      };
      walk(this._root);
      this._str = parts.join("");
    }
    return this._str;
  }
  toJSON() {
    return this.toString();
  }
  /** Same text. */
  equals(other) {
    if (other === this) return true;
    if (isRope(other)) {
      if (other._root === this._root) return true;
      if (other.length !== this.length || other.utf16Length !== this.utf16Length) return false;
    } else if (typeof other !== "string" || other.length !== this.utf16Length) return false;
    return this.toString() === String(other);
  }
  /** The UTF-16 index of code point `cp` (past the end: the UTF-16 length). */
  cpToUtf16(cp) {
    let node = this._root;
    if (cp >= node.cp) return node.u;
    if (cp <= 0) return 0;
    let u = 0;
    while (node instanceof Branch) {
      const kids = node.kids;
      let i = 0;
      while (i < kids.length - 1 && cp >= kids[i].cp) {
        cp -= kids[i].cp;
        u += kids[i].u;
        i++;
      }
      node = kids[i];
    }
    return u + leafU(node, cp);
  }
  /** The code point index of UTF-16 index `u` (an index inside a surrogate pair counts the
   *  pair as passed, like ot.utf16ToCp; past the end: the length). */
  utf16ToCp(u) {
    let node = this._root;
    if (u >= node.u) return node.cp;
    if (u <= 0) return 0;
    let cp = 0;
    while (node instanceof Branch) {
      const kids = node.kids;
      let i = 0;
      while (i < kids.length - 1 && u >= kids[i].u) {
        u -= kids[i].u;
        cp += kids[i].cp;
        i++;
      }
      node = kids[i];
    }
    return cp + (node.cp === node.u ? u : utf16ToCp(node.s, u));
  }
  /** The text of code points [start, end) (clamped; end defaults to the length). */
  slice(start = 0, end = this.length) {
    start = Math.max(0, Math.min(start, this.length));
    end = Math.max(start, Math.min(end, this.length));
    if (start === end) return "";
    if (this._str !== null) return this._str.slice(this.cpToUtf16(start), this.cpToUtf16(end));
    const parts = [];
    const walk = (node, from, to) => {
      if (node instanceof Leaf) {
        if (from === 0 && to === node.cp) parts.push(node.s);
        else {
          const a = leafU(node, from);
          parts.push(node.s.slice(a, node.cp === node.u ? to : cpToUtf16(node.s, to - from, a)));
        }
        return;
      }
      let acc = 0;
      for (const kid of node.kids) {
        const kend = acc + kid.cp;
        if (kend > from && acc < to) walk(kid, Math.max(from, acc) - acc, Math.min(to, kend) - acc);
        if (kend >= to) break;
        acc = kend;
      }
    };
    walk(this._root, start, end);
    return parts.join("");
  }
  /** `text` inserted at code point `pos` (a new rope). */
  insert(pos, text) {
    if (!text.length) return this;
    if (pos < 0 || pos > this.length) throw new InvalidOperation(`insert at ${pos} is outside a text of length ${this.length}`);
    return new _Rope(root(insert(this._root, pos, text, cpLength(text))));
  }
  /** Code points [pos, pos + count) removed (a new rope). */
  delete(pos, count) {
    if (count <= 0) return this;
    if (pos < 0 || pos + count > this.length) throw new InvalidOperation(`delete ${count} at ${pos} runs past the end of the text`);
    const node = remove(this._root, pos, pos + count);
    return new _Rope(node ? root([node]) : EMPTY_LEAF);
  }
  /** `op` (an ot.js text op, code points) applied: a new rope. Throws InvalidOperation like
   *  ot.apply (same messages). */
  apply(op) {
    check(op);
    let pos = 0;
    const length = this.length;
    for (let i = 0; i < op.length; i++) {
      const c = op[i];
      if (typeof c === "number") {
        const n = Math.abs(c);
        if (pos + n > length) {
          throw new InvalidOperation(`component ${i} (${c > 0 ? "retain" : "delete"} ${n} at ${pos}) runs past the end of the text`);
        }
        pos += n;
      } else if (typeof c !== "string") throw new InvalidOperation("op inserts list items into a string");
    }
    let node = this._root;
    pos = 0;
    for (const c of op) {
      if (typeof c === "number") {
        if (c > 0) pos += c;
        else {
          const left = remove(node, pos, pos - c);
          node = left ? root([left]) : EMPTY_LEAF;
        }
      } else {
        const n = cpLength(c);
        node = root(insert(node, pos, c, n));
        pos += n;
      }
    }
    return node === this._root ? this : new _Rope(node);
  }
  /** Check the tree's counts and shape (for tests). */
  checkInvariants() {
    const depth = (node) => {
      if (node instanceof Leaf) {
        if (node.cp !== cpLength(node.s)) throw new Error(`chunk counts ${node.cp} code points, has ${cpLength(node.s)}`);
        if (node.u > LEAF_MAX) throw new Error(`chunk of ${node.u} units`);
        return 0;
      }
      if (!node.kids.length || node.kids.length > FAN_MAX) throw new Error(`branch of ${node.kids.length}`);
      let cp = 0;
      let u = 0;
      let h = -1;
      for (const kid of node.kids) {
        const d = depth(kid);
        if (h >= 0 && d !== h) throw new Error("unbalanced");
        h = d;
        cp += kid.cp;
        u += kid.u;
        if (kid instanceof Leaf && !kid.u) throw new Error("an empty chunk");
      }
      if (cp !== node.cp || u !== node.u) throw new Error("branch counts");
      return h + 1;
    };
    depth(this._root);
    if (this._str !== null && this._str.length !== this._root.u) throw new Error("stale string");
  }
};
var BRAND = /* @__PURE__ */ Symbol.for("cowrite.rope");
Rope.prototype[BRAND] = true;
function isRope(value) {
  return value !== null && typeof value === "object" && value[BRAND] === true;
}
Rope.EMPTY = new Rope(EMPTY_LEAF, "");
function textOf(value) {
  return isRope(value) ? value.toString() : value;
}

// src/checksum.js
var TABLES = (() => {
  const tables = [];
  for (let t = 0; t < 8; t++) tables.push(new Uint32Array(256));
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 3988292384 ^ c >>> 1 : c >>> 1;
    tables[0][n] = c >>> 0;
  }
  for (let t = 1; t < 8; t++) {
    for (let n = 0; n < 256; n++) {
      const prev = tables[t - 1][n];
      tables[t][n] = (tables[0][prev & 255] ^ prev >>> 8) >>> 0;
    }
  }
  return tables;
})();
var [T0, T1, T2, T3, T4, T5, T6, T7] = TABLES;
var encoder = new TextEncoder();
var KEEP_BYTES = 1 << 22;
var scratch = new Uint8Array(4096);
function utf8(text) {
  const most = text.length * 3;
  if (most > KEEP_BYTES) return encoder.encode(text);
  if (scratch.length < most) scratch = new Uint8Array(Math.max(most, scratch.length * 2));
  return scratch.subarray(0, encoder.encodeInto(text, scratch).written);
}
function textChecksum(text) {
  const bytes = utf8(text);
  const n = bytes.length;
  let crc = 4294967295;
  let i = 0;
  for (const whole = n - (n & 7); i < whole; i += 8) {
    const a = crc ^ (bytes[i] | bytes[i + 1] << 8 | bytes[i + 2] << 16 | bytes[i + 3] << 24);
    crc = T7[a & 255] ^ T6[a >>> 8 & 255] ^ T5[a >>> 16 & 255] ^ T4[a >>> 24] ^ T3[bytes[i + 4]] ^ T2[bytes[i + 5]] ^ T1[bytes[i + 6]] ^ T0[bytes[i + 7]];
  }
  for (; i < n; i++) crc = T0[(crc ^ bytes[i]) & 255] ^ crc >>> 8;
  return (crc ^ 4294967295) >>> 0;
}
function verify(state, msg, outstanding) {
  if (state.version !== msg.version || !state.joined) return [];
  const diverged = [];
  for (const [node, expected] of Object.entries(msg.sums || {})) {
    if (state.kind(node) !== "text") continue;
    const server = state.server.has(node) ? textOf(state.server.get(node)) : "";
    if (typeof server !== "string") continue;
    const mine = outstanding(node);
    const local = state.local.has(node) ? textOf(state.local.get(node)) : "";
    if (textChecksum(server) === expected && (mine || local === server)) continue;
    diverged.push(node);
    if (!mine && typeof local === "string") state.server.set(node, local);
  }
  return diverged;
}

// src/undo_ops.js
var isIns = (c) => typeof c === "object" && c !== null && Array.isArray(c.i);
var isDel = (c) => typeof c === "object" && c !== null && Array.isArray(c.d);
function size2(c) {
  if (typeof c === "number") return c;
  return (c.i || c.d).length;
}
var Builder2 = class {
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
};
var Reader2 = class {
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
    const left = size2(c) - this.off;
    const k = n < 0 || n >= left ? left : n;
    const off = this.off;
    if (k === left) {
      this.i++;
      this.off = 0;
    } else this.off += k;
    if (typeof c === "number") return k;
    if (off === 0 && k === size2(c)) return c;
    const ids = c.ids.slice(off, off + k);
    return isIns(c) ? { i: c.i.slice(off, off + k), ids } : { d: c.d.slice(off, off + k), ids };
  }
};
function fromPlain(op, before, idsOf = null, newId = null) {
  const out = new Builder2();
  const slice = typeof before === "string" ? (a, b) => cpSlice(before, a, b) : (a, b) => before.slice(a, b);
  let pos = 0;
  for (const c of normalize(op)) {
    if (typeof c === "string") {
      const chars = Array.from(c);
      out.insert(chars, chars.map(() => newId ? newId() : null));
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
function toPlain(op) {
  return op.map((c) => typeof c !== "object" ? c : isIns(c) ? c.i.join("") : -c.d.length);
}
function isNoop2(op) {
  return op.every((c) => typeof c === "number");
}
function invert2(op) {
  const out = new Builder2();
  for (const c of op) {
    if (typeof c === "number") out.retain(c);
    else if (isIns(c)) out.remove(c.i, c.ids);
    else out.insert(c.d, c.ids);
  }
  return out.result();
}
function withoutInserts(op) {
  const out = new Builder2();
  for (const c of op) if (!isIns(c)) out.push(c);
  return out.result();
}
function insertedIds(op) {
  const out = [];
  for (const c of op) if (isIns(c)) {
    for (const id of c.ids) if (id !== null) out.push(id);
  }
  return out;
}
function compose2(a, b) {
  const out = new Builder2();
  const ra = new Reader2(a);
  const rb = new Reader2(b);
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
    const n = Math.min(size2(c) - rb.off, size2(x) - ra.off);
    const piece = ra.take(n);
    const mine = rb.take(n);
    if (typeof mine === "number") out.push(piece);
    else if (typeof piece === "number") out.push(mine);
  }
  while (ra.peek() !== null) out.push(ra.take());
  return out.result();
}
function transform2(a, b, side) {
  const left = side === "left";
  const out = new Builder2();
  const ra = new Reader2(a);
  for (const c of b) {
    if (typeof c !== "number") {
      if (left) while (isIns(ra.peek())) out.push(ra.take());
      out.retain(cpLength(c));
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
      n -= size2(piece);
      if (c > 0) out.push(piece);
    }
  }
  while (ra.peek() !== null) out.push(ra.take());
  return out.result();
}
function applyIds(ids, op, newId = () => null, inPlace = false) {
  const out = inPlace ? ids : ids.slice();
  let pos = 0;
  for (const c of op) {
    if (typeof c === "number") {
      if (c >= 0) pos += c;
      else out.splice(pos, -c);
    } else if (isDel(c)) out.splice(pos, c.d.length);
    else {
      const add = typeof c === "string" ? Array.from(c, () => newId()) : c.ids;
      if (add.length < 1e4) out.splice(pos, 0, ...add);
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
function retarget(op, text, ids, keep = () => true) {
  const n = ids.length;
  const charAt = typeof text === "string" ? (b) => cpSlice(text, b, b + 1) : Array.isArray(text) ? (b) => text[b] : (b) => text.slice(b, b + 1).toString();
  const del = /* @__PURE__ */ new Set();
  const delAt = /* @__PURE__ */ new Set();
  const ins = /* @__PURE__ */ new Map();
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
  const stops = new Set(ins.keys());
  if (del.size) {
    for (let b = 0; b < n; b++) if (del.has(ids[b])) stops.add(b);
  }
  for (const b of delAt) if (b < n) stops.add(b);
  const out = new Builder2();
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
function relayout(op, from, to) {
  let want = 0;
  for (const c of op) if (typeof c === "object") want += isIns(c) ? 1 : c.d.length;
  let index;
  if (want > 8) {
    const map = /* @__PURE__ */ new Map();
    for (let b = 0; b < to.length; b++) map.set(to[b], b);
    index = (id) => map.get(id);
  } else {
    index = (id, near) => {
      const lo = Math.max(0, near - 256);
      const hi = Math.min(to.length, near + 256);
      for (let b = lo; b < hi; b++) if (to[b] === id) return b;
      return to.indexOf(id);
    };
  }
  const stops = /* @__PURE__ */ new Map();
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
  const out = new Builder2();
  let last = 0;
  for (const b of [...stops.keys()].sort((x, y) => x - y)) {
    out.retain(b - last);
    last = b;
    const list = stops.get(b);
    for (const c of list) if (isIns(c)) out.insert(c.i, c.ids);
    for (const c of list) if (c.at) out.remove(c.d, c.ids), last = b + 1;
  }
  return out.result();
}
function withoutEchoes(op, b) {
  const theirs = /* @__PURE__ */ new Map();
  let pos = 0;
  for (const c of b) {
    if (typeof c === "string") theirs.set(pos, (theirs.get(pos) || []).concat(Array.from(c)));
    else pos += Math.abs(c);
  }
  if (!theirs.size) return op;
  const out = new Builder2();
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

// src/undo_revive.js
var DELETED_MAX = 1e5;
var isIns2 = (c) => typeof c === "object" && c !== null && Array.isArray(c.i);
var isDel2 = (c) => typeof c === "object" && c !== null && Array.isArray(c.d);
var reinserts = (rec) => rec.kind === "undo" || rec.kind === "redo";
var deletes = (rec) => rec.op.some(isDel2);
function batchOp(log, gen, payload, need, base = null, loose = false) {
  const mine = [];
  for (let j = log.length - 1; j >= 0 && log[j].own && log[j].gen >= gen; j--) if (log[j].gen === gen) mine.push(log[j]);
  if (!mine.some(need)) return null;
  let c = null;
  for (let j = mine.length - 1; j >= 0; j--) c = c === null ? mine[j].op : compose2(c, mine[j].op);
  const want = normalize(payload);
  if (JSON.stringify(toPlain(c)) === JSON.stringify(want)) return c;
  return base === null ? null : relabel(c, want, base, loose);
}
function relabel(c, op, base, loose = false) {
  const ins = /* @__PURE__ */ new Map();
  const del = /* @__PURE__ */ new Map();
  let left = 0;
  const put = (m, ch, id) => {
    if (!m.has(ch)) m.set(ch, []);
    m.get(ch).push(id);
    if (!loose || m === ins) left++;
  };
  for (const comp of c) {
    if (isIns2(comp)) comp.i.forEach((ch, k) => put(ins, ch, comp.ids[k]));
    else if (isDel2(comp)) comp.d.forEach((ch, k) => put(del, ch, comp.ids[k]));
  }
  const take = (m, ch) => {
    const q = m.get(ch);
    if (!q || !q.length) return void 0;
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
      if (ids.includes(void 0)) return null;
      out.push({ i: chars, ids });
    } else if (comp > 0) {
      out.push(comp);
      pos += comp;
    } else {
      const gone = text !== null ? text.slice(pos, pos - comp) : Array.from(base.slice(pos, pos - comp));
      const ids = gone.map((ch) => take(del, ch));
      if (gone.length !== -comp || ids.includes(void 0)) return null;
      out.push({ d: gone, ids });
      pos -= comp;
    }
  }
  return left === 0 ? out : null;
}
function reviveRuns(c, node, editId, deleted, again = null) {
  const own = /* @__PURE__ */ new Map();
  let of = 0;
  for (const comp of c) if (isDel2(comp)) for (const id of comp.ids) own.set(id, { edit: editId, of: of++ });
  const runs = [];
  let k = 0;
  for (const comp of c) {
    if (!isIns2(comp)) continue;
    for (const id of comp.ids) {
      let ref = id === null ? void 0 : own.get(id) || deleted.get(id);
      if (!ref && id !== null && again && again.has(id)) ref = { edit: editId, of: of + k };
      if (ref) addRun(runs, node, k, ref);
      k++;
    }
  }
  return runs;
}
function lostRevivals(c, r) {
  const back = new Set(insertedIds(c));
  const mine = /* @__PURE__ */ new Map();
  let pos = 0;
  for (const comp of c) {
    if (typeof comp === "number") pos += comp;
    else if (isDel2(comp)) {
      comp.ids.forEach((id, k) => id !== null && back.has(id) && mine.set(pos + k, id));
      pos += comp.d.length;
    }
  }
  const out = [];
  if (!mine.size) return out;
  pos = 0;
  for (const comp of normalize(r)) {
    if (typeof comp !== "number") continue;
    if (comp < 0) {
      for (let q = pos; q < pos - comp; q++) if (mine.has(q)) out.push(mine.get(q));
    }
    pos += Math.abs(comp);
  }
  return out;
}
function reinserted(log, gen) {
  const out = /* @__PURE__ */ new Set();
  for (let j = log.length - 1; j >= 0 && log[j].own && log[j].gen >= gen; j--) {
    if (log[j].gen === gen && reinserts(log[j])) {
      for (const id of insertedIds(log[j].op)) if (id !== null) out.add(id);
    }
  }
  return out;
}
function recordDeleted(c, editId, deleted) {
  const back = new Set(insertedIds(c));
  let of = 0;
  for (const comp of c) {
    if (!isDel2(comp)) continue;
    for (const id of comp.ids) {
      if (id !== null && !back.has(id)) {
        deleted.delete(id);
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
function addRun(runs, node, at, ref = null) {
  const last = runs[runs.length - 1];
  if (last && last.node === node && last.at + last.n === at && (ref === null ? last.edit === void 0 : last.edit === ref.edit && last.of + last.n === ref.of)) {
    last.n++;
    return;
  }
  runs.push(ref === null ? { node, at, n: 1 } : { node, at, n: 1, edit: ref.edit, of: ref.of });
}
function runIndices(runs, node) {
  const out = /* @__PURE__ */ new Set();
  for (const r of runs || []) {
    if (!r || r.node !== node || !Number.isInteger(r.at) || !Number.isInteger(r.n) || r.at < 0 || r.n < 1 || r.n > 1e6) continue;
    for (let k = r.at; k < r.at + r.n; k++) out.add(k);
  }
  return out;
}
function deleteInserted(op, indices) {
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
        if (run) out.push(run), run = 0;
        if (out.length && out[out.length - 1] < 0) out[out.length - 1]--;
        else out.push(-1);
        any = true;
      } else run++;
    }
  }
  return any ? normalize(out) : null;
}
function droppedInserts(held, applied) {
  const out = /* @__PURE__ */ new Set();
  const a = normalize(held);
  const b = normalize(applied);
  if (JSON.stringify(a) === JSON.stringify(b)) return out;
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
  let yr = 0;
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
        break;
      }
      const c = y[j];
      if (typeof c !== "number" || Math.sign(c) !== Math.sign(n)) return null;
      const avail = c - yr;
      const take = Math.abs(avail) < Math.abs(n) ? avail : n;
      n -= take;
      yr += take;
      if (yr === c) j++, yr = 0;
    }
  }
  return j === y.length ? out : null;
}
function deadRuns(c, node, dead) {
  const runs = [];
  let k = 0;
  for (const comp of c) {
    if (!isIns2(comp)) continue;
    for (const id of comp.ids) {
      if (id !== null && dead.has(id)) addRun(runs, node, k);
      k++;
    }
  }
  return runs;
}

// src/thin_values.js
var SEQ_KINDS = /* @__PURE__ */ new Set(["text", "list"]);
var KINDS = ["text", "list", "map", "register", "counter"];
var DELETED = Object.freeze({ deleted: true });
var ABSENT = /* @__PURE__ */ Symbol("absent");
function kindOfNodeId(node) {
  if (node.startsWith("#")) return null;
  const i = node.indexOf(":");
  if (i < 0 || i === node.length - 1) return null;
  const kind = node.slice(0, i);
  return KINDS.includes(kind) ? kind : null;
}
function emptyValue(kind) {
  switch (kind) {
    case "text":
      return "";
    case "list":
      return [];
    case "map":
      return {};
    case "counter":
      return 0;
    default:
      return null;
  }
}
function equal(a, b) {
  if (a === b) return true;
  if (isRope(a)) return (typeof b === "string" || isRope(b)) && a.equals(b);
  if (isRope(b)) return typeof a === "string" && b.equals(a);
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!equal(a[i], b[i])) return false;
    return true;
  }
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (!Object.hasOwn(b, k) || !equal(a[k], b[k])) return false;
  return true;
}
function copy(value) {
  if (isRope(value)) return value.toString();
  if (Array.isArray(value)) return value.slice();
  if (value !== null && typeof value === "object") return { ...value };
  return value;
}
function slotKey(kind, node, key = null) {
  return `${kind}\0${node}\0${key === null ? "" : "=" + key}`;
}
function applySeq(value, op) {
  if (isRope(value)) return value.apply(op);
  if (typeof value === "string") return Rope.from(value).apply(op);
  return apply(value, op);
}
function asRope(value) {
  return typeof value === "string" ? Rope.from(value) : value;
}
function seqChange(node, edit, before) {
  const change = { type: "seq", node, edit };
  if (isRope(before)) Object.defineProperty(change, "before", { value: before });
  return change;
}
function wireOp({ kind, node, key, payload }) {
  if (kind === "seq") return { type: "seq", node, edit: payload.slice() };
  if (kind === "add") return { type: "add", node, amount: payload };
  if (payload === DELETED) return { type: "del", node, key };
  const op = { type: "set", node, value: payload };
  if (key !== null) op.key = key;
  return op;
}
function randomHex(bytes) {
  const buf = new Uint8Array(bytes);
  globalThis.crypto.getRandomValues(buf);
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}

// src/thin_cursors.js
var ThinCursors = class {
  /** A remote cursor {node, anchor, head, version} in local coordinates: [anchor, head] or
   *  null. Positions from versions not reached yet, or older than the kept history, are
   *  clamped rather than transformed. */
  cursorToLocal(cursor) {
    const node = cursor.node;
    if (!SEQ_KINDS.has(this.kind(node)) || this.version === null) return null;
    let { anchor, head } = cursor;
    const version = cursor.version ?? this.version;
    const moved = version <= this.version ? this.history.transform(node, version, anchor, head) : null;
    if (moved) {
      [anchor, head] = moved;
      const k = slotKey("seq", node);
      for (const ops of [this.inflight ? this.inflight.ops : null, this.pending]) {
        const mine = ops && ops.get(k);
        if (mine) {
          anchor = transformPosition(anchor, mine.payload);
          head = transformPosition(head, mine.payload);
        }
      }
    }
    const value = this.local.get(node);
    const length = value === void 0 ? 0 : typeof value === "string" ? cpLength(value) : value.length;
    return [Math.min(anchor, length), Math.min(head, length)];
  }
  /** A local selection as the server understands it: {node, anchor, head, version}. */
  cursorToServer(node, anchor, head) {
    if (!SEQ_KINDS.has(this.kind(node))) throw new InvalidOperation(`cursors live in text and list nodes, not ${node}`);
    const k = slotKey("seq", node);
    for (const slot of [this.pending.get(k), this.inflight ? this.inflight.ops.get(k) : null]) {
      if (slot) {
        anchor = positionBefore(anchor, slot.payload);
        head = positionBefore(head, slot.payload);
      }
    }
    return { node, anchor, head, version: this.version };
  }
};

// src/thin_history.js
var CursorHistory = class {
  /** `maxVersions`: how many versions are kept (at least 1); `from`: the version a cursor may
   *  be at while nothing is kept yet. */
  constructor(maxVersions, from = 0) {
    this.max = Math.max(1, maxVersions);
    const versions = Math.min(this.max, 1024);
    this._words = new Int32Array(pow2(8 * versions));
    this._offsets = new Int32Array(pow2(versions + 1));
    this.reset(from);
  }
  /** Forget every version: cursors at `version` (and later) are placed from now on. */
  reset(version) {
    this._from = version;
    this._count = 0;
    this._first = 0;
    this._head = 0;
    this._tail = 0;
    this._nodes = /* @__PURE__ */ new Map();
    this._names = [];
    this._lastName = null;
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
    for (let p = 0; p < seqOps.length; p++) need += 2 + 3 * seqOps[p][1].length;
    if (this._count === this.max) this._dropOldest();
    if (this._free() <= need || this._count >= this._offsets.length) this._grow(need);
    const w = this._words;
    const mask = w.length - 1;
    const start = this._tail;
    let at = start;
    w[at] = seqOps.length;
    at = at + 1 & mask;
    for (let p = 0; p < seqOps.length; p++) {
      const op = seqOps[p][1];
      w[at] = this._number(seqOps[p][0]);
      const groupsAt = at + 1 & mask;
      at = at + 2 & mask;
      let groups = 0;
      let r = 0;
      let i = 0;
      let d = 0;
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
          } else ii = typeof c === "string" ? cpLength(c) : c.length;
          close = rr !== 0 && (i !== 0 || d !== 0) || ii !== 0 && d !== 0;
        }
        if (close) {
          w[at] = r;
          w[at + 1 & mask] = i;
          w[at + 2 & mask] = d;
          at = at + 3 & mask;
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
    this._offsets[this._first + this._count & this._offsets.length - 1] = start;
    this._count++;
  }
  /** [anchor, head] of `node` at `version` moved through every kept op of `node` after it
   *  (`ot.transformPosition`, someone else's op); null when `version` is not an integer
   *  within [start, last]. */
  transform(node, version, anchor, head) {
    if (!Number.isInteger(version) || version < this._from || version > this.last) return null;
    const n = this._nodes.get(node);
    if (n === void 0) return [anchor, head];
    const w = this._words;
    const mask = w.length - 1;
    const omask = this._offsets.length - 1;
    for (let k = version - this._from; k < this._count; k++) {
      let at = this._offsets[this._first + k & omask];
      const pairs2 = w[at];
      at = at + 1 & mask;
      for (let p = 0; p < pairs2; p++) {
        const node2 = w[at];
        const groups = w[at + 1 & mask];
        at = at + 2 & mask;
        if (node2 === n) {
          anchor = place(w, mask, at, groups, anchor);
          head = place(w, mask, at, groups, head);
        }
        at = at + 3 * groups & mask;
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
      let at = this._offsets[this._first + k & this._offsets.length - 1];
      const pairs2 = [];
      const n = w[at];
      at = at + 1 & mask;
      for (let p = 0; p < n; p++) {
        const groups = [];
        const node = this._names[w[at]];
        const g = w[at + 1 & mask];
        at = at + 2 & mask;
        for (let j = 0; j < g; j++, at = at + 3 & mask) groups.push([w[at], w[at + 1 & mask], w[at + 2 & mask]]);
        pairs2.push([node, groups]);
      }
      out.push([this._from + k + 1, pairs2]);
    }
    return out;
  }
  // ---------------------------------------------------------------------- internals
  _number(node) {
    if (node === this._lastName) return this._lastNumber;
    let n = this._nodes.get(node);
    if (n === void 0) {
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
    return this._count ? this._head - this._tail & this._words.length - 1 : this._words.length;
  }
  _dropOldest() {
    this._count--;
    this._from++;
    this._first = this._first + 1 & this._offsets.length - 1;
    this._head = this._count ? this._offsets[this._first] : this._tail;
  }
  /** Bigger rings (powers of two, so that indices wrap with a mask): more than `need` words
   *  free and room for one more offset. */
  _grow(need) {
    const used = this._words.length - this._free();
    let size3 = this._words.length;
    while (size3 - used <= need) size3 *= 2;
    let slots = this._offsets.length;
    while (slots <= this._count) slots *= 2;
    const words = new Int32Array(size3);
    const offsets = new Int32Array(slots);
    const old = this._words;
    const mask = old.length - 1;
    const head = this._head;
    const end = Math.min(old.length, head + used);
    words.set(old.subarray(head, end));
    if (end - head < used) words.set(old.subarray(0, used - (end - head)), end - head);
    for (let k = 0; k < this._count; k++) {
      offsets[k] = this._offsets[this._first + k & this._offsets.length - 1] - head & mask;
    }
    this._words = words;
    this._offsets = offsets;
    this._first = 0;
    this._head = 0;
    this._tail = used;
  }
};
function pow2(n) {
  return 2 ** Math.ceil(Math.log2(n));
}
function place(w, mask, at, groups, pos) {
  let cursor = pos;
  let here = 0;
  for (let g = 0; g < groups; g++, at = at + 3 & mask) {
    here += w[at];
    if (here > pos) break;
    if (here < pos) cursor += w[at + 1 & mask];
    const d = w[at + 2 & mask];
    if (here < pos) cursor -= Math.min(d, pos - here);
    here += d;
  }
  return cursor;
}

// src/thin_merge.js
var ThinMerge = class {
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
    if (batch && msg.acked === batch.editId) changes.push(...this._settle(batch, [])[1]);
    if (!this._applyRemoteOps(msg.ops, changes, { barrier: true, version: msg.version })) return this._settleObservers(changes);
    this.version = msg.version;
    this.history.reset(msg.version);
    this.vv = msg.state ? { ...msg.state } : null;
    return this._settleObservers(changes);
  }
  _ownRemote(msg) {
    const batch = this.inflight;
    for (const o of this.observers) if (o.acked) o.acked(batch);
    const applied = /* @__PURE__ */ new Map();
    for (const op of msg.ops) if (op.type === "seq") applied.set(op.node, op.edit);
    const drops = this._drops(batch, (node, payload) => applied.has(node) ? droppedInserts(payload, applied.get(node)) : null);
    if (drops.length) {
      const ops = msg.ops.map((op) => op.type === "seq" && drops.some((d) => d.node === op.node) ? { ...op, edit: batch.ops.get(slotKey("seq", op.node)).payload } : op);
      msg = { ...msg, ops };
    }
    const seqOps = [];
    try {
      for (const op of msg.ops) {
        const seq = this._applyServer(op);
        if (seq) seqOps.push(seq);
      }
    } catch (err) {
      if (!(err instanceof InvalidOperation)) throw err;
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
    for (const o of this.observers) o.dropInflight();
    this.inflight = null;
    const changes = [];
    for (const [k, { kind, node, payload }] of batch.ops) {
      if (kind !== "seq") continue;
      let undo = invertSeq(payload, this._serverValue(node));
      const mine = this.pending.get(k);
      if (mine) {
        const u2 = transform(undo, mine.payload, "right");
        mine.payload = transform(mine.payload, undo, "left");
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
    for (const ops of [this.inflight ? this.inflight.ops : /* @__PURE__ */ new Map(), this.pending]) {
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
    const theirs = /* @__PURE__ */ new Map();
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
    const nodes = /* @__PURE__ */ new Set([...theirs.keys(), ...this.server.keys(), ...this.local.keys()]);
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
      const edit = diff(base, next);
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
};
function kindOfValue(value) {
  if (typeof value === "string" || isRope(value)) return "text";
  if (Array.isArray(value)) return "list";
  if (value !== null && typeof value === "object") return "map";
  return null;
}
function invertSeq(op, before) {
  if (!isRope(before)) return invert(op, before);
  check(op);
  const out = [];
  let pos = 0;
  for (const c of op) {
    if (typeof c === "number") {
      const n = Math.abs(c);
      out.push(c > 0 ? n : before.slice(pos, pos + n));
      pos += n;
    } else out.push(-cpLength(c));
  }
  return normalize(out);
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

// src/thin.js
var RETRY_CODES = /* @__PURE__ */ new Set(["rate_limited", "unavailable"]);
var ThinDocState = class {
  constructor(doc, clientId, { editIdPrefix = null, historyVersions = 1e3, maxBatchOps = 1e3, revive = true } = {}) {
    this.doc = doc;
    this.clientId = clientId;
    this.revive = revive;
    this.version = null;
    this.epoch = "";
    this.vv = null;
    this.server = /* @__PURE__ */ new Map();
    this.local = /* @__PURE__ */ new Map();
    this.kinds = /* @__PURE__ */ new Map();
    this.roots = {};
    this.rights = [];
    this.inflight = null;
    this.pending = /* @__PURE__ */ new Map();
    this.joined = false;
    this.rejoinNeeded = false;
    this.maxBatchOps = maxBatchOps;
    this.divergences = 0;
    this._wantSnapshot = false;
    this._joinSent = false;
    this._prefix = editIdPrefix || randomHex(6);
    this._edits = 0;
    this.history = new CursorHistory(historyVersions);
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
      if (want instanceof Set) throw new InvalidOperation(`unknown node ${node}`);
      kind = want;
    }
    if (want instanceof Set ? !want.has(kind) : kind !== want) {
      throw new InvalidOperation(`${node} is a ${kind}`);
    }
    if (!this.kinds.has(node)) this.kinds.set(node, kind);
    return kind;
  }
  /** Apply an index op (code points) to a text or list node now and queue it. */
  localEdit(node, op) {
    const kind = this._claim(node, SEQ_KINDS);
    op = normalize(op);
    if (!op.length) return;
    const before = this.local.has(node) ? this.local.get(node) : emptyValue(kind);
    const after = applySeq(before, op);
    for (const o of this.observers) o.local(node, op, before);
    this.local.set(node, after);
    const k = slotKey("seq", node);
    const queued = this.pending.get(k);
    const composed = queued ? compose(queued.payload, op) : op;
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
    if (!Number.isInteger(amount)) throw new InvalidOperation("counter amounts are integers");
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
      const ops = /* @__PURE__ */ new Map();
      for (const [k, slot] of this.pending) {
        if (ops.size >= this.maxBatchOps) break;
        ops.set(k, slot);
      }
      for (const k of ops.keys()) this.pending.delete(k);
      this._edits++;
      batch = this.inflight = { editId: `${this._prefix}-${this._edits}`, ops, sent: false, revive: [] };
    } else if (batch.sent) return null;
    batch.sent = true;
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
      ops: [...batch.ops.values()].map(wireOp)
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
    if (msg.snapshot === void 0 || msg.snapshot === null) {
      if (this.version === null) {
        this.version = msg.version;
        this.history.reset(msg.version);
      } else if (msg.version !== this.version) {
        this.requestRejoin({ snapshot: true });
      }
      return [];
    }
    const batch = this.inflight;
    const settled = batch && msg.acked === batch.editId ? this._settle(batch, [])[1] : [];
    return [...settled, ...this._loadSnapshot(msg.version, msg.snapshot)];
  }
  onRemote(msg) {
    if (this.version === null || msg.version <= this.version || !this.joined) return [];
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
        const prior = op.type === "seq" ? this.server.get(op.node) : void 0;
        const before = this.observers.length && op.type === "seq" ? this._serverValue(op.node) : null;
        const seq = this._applyServer(op);
        if (seq) seqOps.push(seq);
        if (seq && before !== null) for (const o of this.observers) o.remote(op.node, seq[1], before, meta);
        const change = this._rebaseRemote(op, seq ? prior : void 0);
        if (change) changes.push(change);
      }
    } catch (err) {
      if (!(err instanceof InvalidOperation)) throw err;
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
      this._joinSent = false;
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
    if (this._joinSent) return;
    this.rejoinNeeded = true;
    this.joined = false;
    if (snapshot) this._wantSnapshot = true;
    if (this.inflight) this.inflight.sent = false;
  }
  /** Throw when the local view is not server · inflight · pending (for tests). */
  checkInvariants() {
    const batches = this.inflight ? [this.inflight.ops, this.pending] : [this.pending];
    const nodes = /* @__PURE__ */ new Set([...this.local.keys(), ...this.server.keys()]);
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
    } else if (op.type === "set") kind = op.key === void 0 || op.key === null ? "register" : "map";
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
    if (key === null || key === void 0) {
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
      if (!kind) throw new InvalidOperation(`an edit of ${node}, whose kind is unknown`);
      const edit = normalized(op.edit);
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
  _rebaseRemote(op, serverBefore = void 0) {
    const node = op.node;
    if (op.type === "seq") {
      let r = normalize(op.edit);
      const k = slotKey("seq", node);
      const batch = this.inflight;
      const i = batch && batch.ops.get(k);
      const mine = this.pending.get(k);
      if (!i && !mine && r.length && isRope(serverBefore) && this.local.get(node) === serverBefore) {
        this.local.set(node, this.server.get(node));
        return seqChange(node, r, serverBefore);
      }
      if (i) {
        const r2 = transform(r, i.payload, "right");
        i.payload = transform(i.payload, r, "left");
        r = r2;
      }
      if (mine) {
        const r2 = transform(r, mine.payload, "right");
        mine.payload = transform(mine.payload, r, "left");
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
};
for (const mixin of [ThinCursors, ThinMerge]) {
  for (const name of Object.getOwnPropertyNames(mixin.prototype)) {
    if (name !== "constructor") Object.defineProperty(ThinDocState.prototype, name, Object.getOwnPropertyDescriptor(mixin.prototype, name));
  }
}

// src/emitter.js
var Emitter = class {
  constructor() {
    this._listeners = /* @__PURE__ */ new Map();
  }
  on(type, fn) {
    const fns = this._listeners.get(type) || [];
    if (!fns.includes(fn)) this._listeners.set(type, [...fns, fn]);
    return () => this.off(type, fn);
  }
  once(type, fn) {
    const off = this.on(type, (detail) => {
      off();
      fn(detail);
    });
    return off;
  }
  off(type, fn) {
    const fns = this._listeners.get(type);
    if (fns && fns.includes(fn)) this._listeners.set(type, fns.filter((f) => f !== fn));
  }
  emit(type, detail) {
    const fns = this._listeners.get(type);
    if (!fns) return;
    for (const fn of fns) {
      try {
        fn(detail);
      } catch (err) {
        if (typeof globalThis.reportError === "function") globalThis.reportError(err);
        else setTimeout(() => {
          throw err;
        });
      }
    }
  }
};

// src/handles.js
var Handle = class {
  constructor(session, node) {
    this.session = session;
    this.node = node;
  }
  get value() {
    return this.session.value(this.node);
  }
};
var TextHandle = class extends Handle {
  /** Length in code points. */
  get length() {
    return this.session.rope(this.node).length;
  }
  insert(pos, text) {
    this.session.edit(this.node, fromSplice(pos, 0, text));
  }
  delete(pos, count) {
    this.session.edit(this.node, fromSplice(pos, count, ""));
  }
  replace(pos, count, text) {
    this.session.edit(this.node, fromSplice(pos, count, text));
  }
  /** Replace the whole text with `text` (one diff: prefix and suffix kept). */
  setValue(text) {
    const op = diff(this.value || "", text);
    if (op.length) this.session.edit(this.node, op);
  }
};
var ListHandle = class extends Handle {
  insert(pos, ...items) {
    this.session.edit(this.node, fromSplice(pos, 0, items));
  }
  delete(pos, count = 1) {
    this.session.edit(this.node, fromSplice(pos, count, []));
  }
};
var MapHandle = class extends Handle {
  get(key) {
    return (this.value || {})[key];
  }
  set(key, value) {
    this.session.set(this.node, key, value);
  }
  delete(key) {
    this.session.delete(this.node, key);
  }
};
var RegisterHandle = class extends Handle {
  set(value) {
    this.session.set(this.node, null, value);
  }
};
var CounterHandle = class extends Handle {
  add(amount = 1) {
    this.session.add(this.node, amount);
  }
};

// src/persist.js
var FORMAT = 1;
function slotsIn(entries) {
  return new Map(entries.map(([k, slot]) => [k, slot.payload && slot.payload.$cowriteDeleted === true ? { ...slot, payload: DELETED } : slot]));
}
function importThin(state, saved) {
  if (!saved || saved.format !== FORMAT || saved.doc !== state.doc || saved.clientId !== state.clientId) return false;
  if (saved.version === null || !saved.inflight && !saved.pending.length) return false;
  state.version = saved.version;
  state.epoch = saved.epoch || "";
  state.vv = saved.vv ? { ...saved.vv } : null;
  state.server = new Map(saved.server);
  state.local = new Map(saved.local);
  state.kinds = new Map(saved.kinds);
  state.roots = { ...saved.roots };
  state.rights = saved.rights.slice();
  state._prefix = saved.prefix;
  state._edits = saved.edits;
  state.history.reset(saved.version);
  state.pending = slotsIn(saved.pending);
  state.inflight = saved.inflight ? { editId: saved.inflight.editId, ops: slotsIn(saved.inflight.ops), sent: false } : null;
  if (!state.inflight) {
    const ops = /* @__PURE__ */ new Map();
    for (const [k, slot] of state.pending) {
      if (ops.size >= state.maxBatchOps) break;
      ops.set(k, slot);
    }
    for (const k of ops.keys()) state.pending.delete(k);
    state._edits++;
    state.inflight = { editId: `${state._prefix}-${state._edits}`, ops, sent: false };
  }
  state.joined = false;
  return true;
}

// src/session.js
var now = () => Date.now();
var DocumentSession = class extends Emitter {
  constructor(client, id, { create = false } = {}) {
    super();
    this.client = client;
    this.id = id;
    this.create = create;
    this.state = new ThinDocState(id, client.clientId, { historyVersions: client.historyVersions, revive: !!client.features && client.features.has("revive") });
    this.members = /* @__PURE__ */ new Map();
    this.chat = /* @__PURE__ */ new Map();
    this.chatHasMore = false;
    this.savingPending = false;
    this.restored = false;
    this.beforeBatch = null;
    this.closed = false;
    this.deleted = false;
    this._readyResolve = null;
    this._readyReject = null;
    this.ready = new Promise((resolve, reject) => {
      this._readyResolve = resolve;
      this._readyReject = reject;
    });
    this.ready.catch(() => {
    });
    this._everJoined = false;
    this._paceAt = 0;
    this._flushTimer = null;
    this._flushQueued = false;
    this._flushBackoff = false;
    this._retryDelay = 250;
    this._cursor = null;
    this._cursorDirty = false;
    this._cursorTimer = null;
    this._lastCursorAt = 0;
    this._dirtySince = 0;
    this._active = null;
    this._chatOutbox = [];
    this._cursorRejectedAt = null;
    this._historyWaiters = [];
    this._synced = true;
    this._syncWaiters = [];
  }
  // ------------------------------------------------------------------------ reading
  get version() {
    return this.state.version;
  }
  get rights() {
    return this.state.rights;
  }
  get joined() {
    return this.state.joined;
  }
  /** Every local edit is acknowledged (durable on the server). */
  get synced() {
    return this.state.synced;
  }
  /** The local value of a node id ("text:body", "register:title", "#12.3"). */
  value(node) {
    return this.state.value(node);
  }
  /** The local value of a text node as an immutable Rope (rope.js): length, cpToUtf16,
   *  utf16ToCp and slice in O(log n), without building the string. */
  rope(node) {
    return this.state.rope(node);
  }
  /** Resolves when every local edit made so far is acknowledged. */
  whenSynced() {
    if (this.state.synced && this.state.joined) return Promise.resolve();
    return new Promise((resolve) => this._syncWaiters.push(resolve));
  }
  /** Handles of named roots: text("body") is node "text:body", etc. */
  text(name) {
    return new TextHandle(this, `text:${name}`);
  }
  list(name) {
    return new ListHandle(this, `list:${name}`);
  }
  map(name) {
    return new MapHandle(this, `map:${name}`);
  }
  register(name) {
    return new RegisterHandle(this, `register:${name}`);
  }
  counter(name) {
    return new CounterHandle(this, `counter:${name}`);
  }
  // -------------------------------------------------------------------- local edits
  /** Apply an index op (code points) to a text or list node and send it. */
  edit(node, op) {
    this._checkOpen();
    this.state.localEdit(node, op);
    this._local([{ type: "seq", node, edit: normalize(op) }]);
  }
  /** Write a register (key null) or a map key. */
  set(node, key, value) {
    this._checkOpen();
    const change = this.state.localSet(node, key, value);
    this._local(change ? [change] : []);
  }
  delete(node, key) {
    this._checkOpen();
    const change = this.state.localDelete(node, key);
    this._local(change ? [change] : []);
  }
  add(node, amount) {
    this._checkOpen();
    this.state.localAdd(node, amount);
    this._local([{ type: "add", node, amount }]);
  }
  /** Show our caret/selection (code points, local coordinates) to the others. */
  setCursor(node, anchor, head = anchor) {
    this._cursor = { node, anchor, head };
    if (!this._cursorDirty) this._dirtySince = now();
    this._cursorDirty = true;
    this._schedulePresence();
  }
  /** Mark ourselves active or idle (the server also marks idle after idle_after_s). */
  setActive(active) {
    this._active = Boolean(active);
    if (this.state.joined) this.client.send({ type: "presence", doc: this.id, active: this._active });
  }
  /** Post a chat message (queued while disconnected). */
  sendChat(text) {
    text = String(text);
    if (!text.trim()) return;
    if (this.state.joined && this.client.send({ type: "chat_send", doc: this.id, text })) return;
    this._chatOutbox.push(text);
  }
  editChat(id, text) {
    return this.client.send({ type: "chat_edit", doc: this.id, id, text: String(text) });
  }
  deleteChat(id) {
    return this.client.send({ type: "chat_delete", doc: this.id, id });
  }
  /** Older chat messages: resolves {messages (newest first), hasMore}. */
  chatHistory({ before = null, limit = 50 } = {}) {
    const msg = { type: "chat_history", doc: this.id, limit };
    if (before !== null) msg.before = before;
    if (!this.client.send(msg)) return Promise.reject(new Error("not connected"));
    return new Promise((resolve) => this._historyWaiters.push(resolve));
  }
  /** The chat messages known, oldest first. */
  chatMessages() {
    return [...this.chat.values()].sort((a, b) => a.id - b.id);
  }
  /** Leave the document (the session cannot be used afterwards). */
  leave() {
    if (this.closed) return;
    this.closed = true;
    this.client.send({ type: "leave", doc: this.id });
    this._clearTimers();
    this.client._forget(this.id);
  }
  // ---------------------------------------------------------------------- internals
  /** Before the first join: take back the unacknowledged edits of a saved state. */
  _restore(saved) {
    this.restored = importThin(this.state, saved);
    this._synced = this.state.synced;
  }
  _checkOpen() {
    if (this.closed) throw new Error(`document ${this.id} was left`);
  }
  _local(changes) {
    this._remapMembers(changes);
    if (changes.length) this.emit("change", { changes, origin: "local", clientId: this.client.clientId });
    this._checkSync();
    this._scheduleFlush();
  }
  _clearTimers() {
    if (this._flushTimer) clearTimeout(this._flushTimer);
    if (this._cursorTimer) clearTimeout(this._cursorTimer);
    this._flushTimer = this._cursorTimer = null;
  }
  _join() {
    if (this.closed) return;
    const msg = this.state.joinMessage({ create: this.create });
    this.client.send(msg);
  }
  _disconnected() {
    this.state.onDisconnect();
    if (this._flushTimer) clearTimeout(this._flushTimer);
    this._flushTimer = null;
    this._historyWaiters.splice(0).forEach((resolve) => resolve({ messages: [], hasMore: this.chatHasMore }));
  }
  _scheduleFlush(delay = null) {
    if (this._flushQueued || this.closed) return;
    if (delay === null && this.state.inflight?.sent) return;
    const wait = delay ?? this._paceWait();
    if (delay === null && wait <= 0) {
      if (this._flushTimer) {
        if (this._flushBackoff) return;
        clearTimeout(this._flushTimer);
        this._flushTimer = null;
      }
      this._flushQueued = true;
      queueMicrotask(() => {
        this._flushQueued = false;
        this._flush();
      });
      return;
    }
    if (this._flushTimer) return;
    this._flushBackoff = delay !== null;
    this._flushTimer = setTimeout(() => {
      this._flushTimer = null;
      this._flush();
    }, wait);
  }
  /** How long the next batch must wait (ms) to keep to the pace (0: it may leave now). A batch
   *  that waited for an ack does not wait again: the budget holds batchBurst batches. */
  _paceWait() {
    const { batchIntervalMs, batchBurst } = this.client;
    return Math.max(0, this._paceAt - (batchBurst - 1) * batchIntervalMs - now());
  }
  _flush() {
    if (this.closed || !this.client.connected) return;
    if (this.state.rejoinNeeded) {
      this._join();
      return;
    }
    const batch = this.state.takeBatch();
    if (!batch) return;
    this._paceAt = Math.max(this._paceAt, now()) + this.client.batchIntervalMs;
    const written = this.beforeBatch ? this.beforeBatch(batch) : null;
    if (!written) {
      this.client.send(batch);
      return;
    }
    const ws = this.client._ws;
    written.then(() => {
      const inflight = this.state.inflight;
      if (this.client._ws === ws && inflight?.editId === batch.edit_id && inflight.sent && !this.closed) this.client.send(batch);
    });
  }
  _afterFrame() {
    if (this._cursorRejectedAt !== null && this.state.version !== this._cursorRejectedAt) {
      this._cursorRejectedAt = null;
      if (this._cursor) {
        this._cursorDirty = true;
        this._dirtySince = now();
      }
    }
    if (this.state.rejoinNeeded && this.client.connected) this._join();
    else if (this.state.joined && (this.state.pending.size || this.state.inflight && !this.state.inflight.sent)) this._scheduleFlush();
    this._schedulePresence();
  }
  _checkSync() {
    const synced = this.state.synced;
    if (synced !== this._synced) {
      this._synced = synced;
      this.emit("sync", { synced });
    }
    if (synced && this.state.joined && this._syncWaiters.length) this._syncWaiters.splice(0).forEach((r) => r());
  }
  _schedulePresence() {
    if (!this._cursorDirty || this._cursorTimer || !this.state.joined) return;
    const waitSync = !this.state.synced && now() - this._dirtySince < 1e3;
    const wait = waitSync ? 100 : Math.max(0, this._lastCursorAt + this.client.presenceIntervalMs - now());
    this._cursorTimer = setTimeout(() => {
      this._cursorTimer = null;
      if (!this._cursorDirty || !this.state.joined || !this.client.connected) return;
      if (!this.state.synced && now() - this._dirtySince < 1e3) {
        this._schedulePresence();
        return;
      }
      this._sendCursor();
    }, wait);
  }
  _sendCursor() {
    const c = this._cursor;
    if (!c) return;
    let cursor;
    try {
      cursor = this.state.cursorToServer(c.node, c.anchor, c.head);
    } catch {
      this._cursorDirty = false;
      return;
    }
    this._cursorDirty = false;
    this._lastCursorAt = now();
    this.client.send({ type: "presence", doc: this.id, cursor });
  }
  _onMessage(msg) {
    switch (msg.type) {
      case "joined":
        return this._onJoined(msg);
      case "remote": {
        const hadInflight = this.state.inflight;
        const changes = this.state.onRemote(msg);
        if (hadInflight && !this.state.inflight) this.emit("ack", { editId: hadInflight.editId, version: msg.version });
        this._remapMembers(changes, msg.client_id);
        if (changes.length) this.emit("change", { changes, origin: "remote", clientId: msg.client_id });
        this._checkSync();
        if (this.state.pending.size) this._scheduleFlush();
        return;
      }
      case "ack": {
        const inflight = this.state.inflight;
        const changes = this.state.onAck(msg);
        this._retryDelay = 250;
        if (inflight && !this.state.inflight) this.emit("ack", { editId: msg.edit_id, version: msg.version });
        if (changes.length) this.emit("change", { changes, origin: changes.some((c) => c.type === "seq") ? "rejected" : "remote" });
        this._checkSync();
        this._scheduleFlush();
        return;
      }
      case "resync":
        this.state.onResync();
        return;
      case "checksum":
        for (const node of this.state.onChecksum(msg)) {
          this.client.send({ type: "diverged", doc: this.id, version: msg.version, node });
          this.emit("diverged", { node, version: msg.version });
        }
        return;
      case "saving":
        this.savingPending = msg.pending;
        this.emit("saving", { pending: msg.pending });
        return;
      case "presence_update":
        return this._onPresence(msg);
      case "chat":
        this.chat.set(msg.message.id, msg.message);
        this.emit("chat", { message: msg.message });
        return;
      case "chat_page": {
        for (const m of msg.messages) if (!this.chat.has(m.id)) this.chat.set(m.id, m);
        this.chatHasMore = msg.has_more;
        const page = { messages: msg.messages, hasMore: msg.has_more };
        const waiter = this._historyWaiters.shift();
        if (waiter) waiter(page);
        this.emit("chat_page", page);
        return;
      }
      default:
        return;
    }
  }
  _onJoined(msg) {
    const changes = this.state.onJoined(msg);
    const self = this.client.session;
    this.members.clear();
    for (const entry of msg.presence || []) this._member(entry, entry.session === self);
    const fresh = [];
    for (const m of msg.chat || []) {
      const known = this.chat.get(m.id);
      if (!known || !equal(known, m)) fresh.push(m);
      this.chat.set(m.id, m);
    }
    if (!this._everJoined) this.chatHasMore = (msg.chat || []).length >= 50;
    this._remapMembers(changes);
    if (changes.length) this.emit("change", { changes, origin: "snapshot" });
    this.emit("joined", { version: msg.version, snapshot: msg.snapshot != null, rejoin: this._everJoined });
    this.emit("presence", { members: this.members, changed: [...this.members.values()], left: [] });
    if (this._everJoined) for (const m of fresh) this.emit("chat", { message: m });
    this._everJoined = true;
    this._readyResolve(this);
    const presence = { type: "presence", doc: this.id, user: this.client._userMessage() };
    if (this._active === false) presence.active = false;
    this.client.send(presence);
    if (this._cursor) {
      this._cursorDirty = true;
      this._dirtySince = now();
    }
    for (const text of this._chatOutbox.splice(0)) this.client.send({ type: "chat_send", doc: this.id, text });
    this._checkSync();
  }
  _onError(msg) {
    if (msg.code === "unknown_document") {
      if (this._everJoined) {
        this.deleted = true;
        this.emit("deleted", msg);
      }
      this._readyReject(Object.assign(new Error(msg.message), { code: msg.code }));
      this.emit("error", msg);
      return;
    }
    if (msg.code === "unknown_node" && !msg.edit_id && this._cursor) {
      this._cursorRejectedAt = this.state.version;
    }
    const outcome = this.state.onError(msg);
    if (outcome.action === "retry") {
      this._scheduleFlush(this._retryDelay);
      this._retryDelay = Math.min(this._retryDelay * 2, 5e3);
    } else if (outcome.action === "rejected" && outcome.changes.length) {
      this._remapMembers(outcome.changes);
      this.emit("change", { changes: outcome.changes, origin: "rejected" });
    }
    this._checkSync();
    this.emit("error", msg);
  }
  _member(entry, self = false) {
    const member = { session: entry.session, user: entry.user || {}, active: entry.active !== false, cursor: entry.cursor || null, local: null, self };
    if (member.cursor) member.local = this.state.cursorToLocal(member.cursor);
    this.members.set(entry.session, member);
    return member;
  }
  _onPresence(msg) {
    const self = this.client.session;
    const changed = [];
    for (const entry of msg.entries || []) {
      if (entry.session === self) continue;
      changed.push(this._member(entry));
    }
    const left = [];
    for (const session of msg.left || []) {
      if (this.members.delete(session)) left.push(session);
    }
    this.emit("presence", { members: this.members, changed, left });
  }
  /** Keep members' local cursors on the right characters while the text changes. */
  _remapMembers(changes, clientId = null) {
    for (const change of changes) {
      if (change.type !== "seq") continue;
      for (const m of this.members.values()) {
        if (m.local && m.cursor && m.cursor.node === change.node) {
          const own = clientId !== null && m.user.id === clientId;
          m.local = [transformPosition(m.local[0], change.edit, own), transformPosition(m.local[1], change.edit, own)];
        }
      }
    }
  }
};

// src/undo_log.js
function fold(log, group2, end = log.length) {
  if (!group2.records.length) return null;
  const members = new Set(group2.records);
  let start = end;
  for (const rec of group2.records) {
    const at = log.indexOf(rec);
    if (at >= 0 && at < start) start = at;
  }
  const kept = [];
  for (let j = start; j < end; j++) {
    const rec = log[j];
    const prev = kept[kept.length - 1];
    if (prev && rec.of === prev && !members.has(prev) && !members.has(rec) && sameOp(invert2(prev.op), rec.op)) kept.pop();
    else kept.push(rec);
  }
  let u = null;
  for (const rec of kept) {
    if (members.has(rec)) {
      const inv = invert2(rec.op);
      u = u === null ? inv : compose2(inv, u);
    } else if (u !== null) {
      if (rec.restore) u = withoutInserts(u);
      else if (!rec.own) u = withoutEchoes(u, toPlain(rec.op));
      u = transform2(u, toPlain(rec.op), "left");
    }
  }
  return u;
}
function sameOp(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

// src/undo.js
var RESTORE_EDIT_PREFIX = "restore-";
function isRestoreEdit(meta) {
  return !!meta && typeof meta.edit_id === "string" && meta.edit_id.startsWith(RESTORE_EDIT_PREFIX);
}
var KEEP_RESTORES = 8;
var LOG_SOFT_MAX = 5e3;
var UndoManager = class {
  /** `state`: a ThinDocState (thin.js); `node`: a text node id. `apply(op)`: makes a local edit
   *  of `node` (default state.localEdit; a session passes session.edit so it is sent). */
  constructor(state, node, { apply: apply2 = null, groupMs = 500, limit = 200, now: now3 = () => Date.now() } = {}) {
    this.state = state;
    this.node = node;
    this.apply = apply2 || ((op) => state.localEdit(node, op));
    this.groupMs = groupMs;
    this.limit = limit;
    this.now = now3;
    this.log = [];
    this.undoStack = [];
    this.redoStack = [];
    this.compensations = 0;
    this.failures = 0;
    this._doing = null;
    this._of = null;
    this._source = null;
    this._claims = [];
    this._fix = [];
    this._ids = null;
    this._logIds = null;
    this._nextId = 1;
    this._dead = /* @__PURE__ */ new Set();
    this._intent = null;
    this._sweep = false;
    this._barrier = null;
    this._deleted = /* @__PURE__ */ new Map();
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
    this._ids = null;
    this._logIds = null;
    this._dead = /* @__PURE__ */ new Set();
    this._deleted = /* @__PURE__ */ new Map();
  }
  // ------------------------------------------------------- observer of the ThinDocState
  /** A local edit of `node`: `op` (normalized) applies to `before` (the local value). */
  local(node, op, before) {
    if (node !== this.node) return;
    const ids = this._idsFor(cpLen(before));
    const intent = this._intent && sameOp2(toPlain(this._intent), op) ? insertedIds(this._intent) : [];
    let k = 0;
    const newId = () => k < intent.length ? intent[k++] : this._nextId++;
    const rich = fromPlain(op, before, (a, b) => ids.slice(a, b), newId);
    if (isNoop2(rich)) return;
    const moved = this._logIds === null ? null : relayout(rich, ids, this._logIds);
    if (moved === null) this._logIds = null;
    const mine = moved ?? rich;
    this._ids = applyIds(ids, rich, void 0, true);
    if (moved !== null) applyIds(this._logIds, moved, void 0, true);
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
          last.op = compose2(last.op, mine);
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
    const slot = batch.ops.get(`seq\0${this.node}\0`);
    const c = slot && batchOp(this.log, this.state._edits - 1, slot.payload, reinserts, this.state._serverValue(this.node), true);
    return c ? reviveRuns(c, this.node, batch.editId, this._deleted, reinserted(this.log, this.state._edits - 1)) : [];
  }
  /** What `batch` (sent again) inserts that a correction of ours already takes back (dead
   *  identities): withdrawn (the edit's `withdraw`), so the room never shows it twice. */
  withdrawals(batch) {
    if (!this._dead.size) return [];
    const slot = batch.ops.get(`seq\0${this.node}\0`);
    const c = slot && batchOp(this.log, this.state._edits - 1, slot.payload, reinserts, this.state._serverValue(this.node));
    return c ? deadRuns(c, this.node, this._dead) : [];
  }
  /** The in-flight batch `batch` is applied (its ack, or our own remote in a catch-up), before
   *  the thin client settles it: what it deleted gets its server names. Our records of it are
   *  rebased over everything the server applied before it, so they delete what it deleted. */
  acked(batch) {
    const slot = batch.ops.get(`seq\0${this.node}\0`);
    const c = slot && batchOp(this.log, this.state._edits - 1, slot.payload, deletes, this.state._serverValue(this.node));
    if (c) recordDeleted(c, batch.editId, this._deleted);
  }
  /** The thin client drops its in-flight batch (refused, or applied before the snapshot we
   *  hold): called before anything changes. Its records leave the log and the steps, and our
   *  later records are rebased over their inverse, as the thin client rebases its pending op. */
  dropInflight() {
    const key = `seq\0${this.node}\0`;
    const batch = this.state.inflight;
    if (!batch) return;
    const gen = this.state._edits - 1;
    const i = batch.ops.get(key);
    const mine = this.state.pending.get(key);
    let c = null;
    const gone = /* @__PURE__ */ new Set();
    for (const rec of this.log) {
      if (!rec.own || rec.gen !== gen) continue;
      gone.add(rec);
      c = c === null ? rec.op : compose2(c, rec.op);
    }
    if (i && this._ids !== null && this._barrier && this._barrier.gen === gen && c !== null) this._inherit(c, i.payload, mine && mine.payload);
    this._barrier = null;
    if (i && this._ids !== null) {
      let undo = invert(i.payload, this.state._serverValue(this.node).toString());
      if (mine) undo = transform(undo, mine.payload, "right");
      this._ids = applyIds(this._ids, undo, () => this._nextId++, true);
    }
    this._logIds = null;
    if (!gone.size) return;
    let inv = invert2(c);
    for (const rec of this.log) {
      if (!rec.own || rec.gen <= gen) continue;
      const plain = toPlain(rec.op);
      rec.op = transform2(rec.op, toPlain(inv), "left");
      inv = transform2(inv, plain, "right");
    }
    this.log = this.log.filter((rec) => !gone.has(rec));
    for (const group2 of [...this.undoStack, ...this.redoStack]) group2.records = group2.records.filter((rec) => !gone.has(rec));
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
    const first = this.state._edits - (this.state.inflight ? 1 : 0);
    let i = this.log.length;
    while (i > 0 && this.log[i - 1].own && this.log[i - 1].gen >= first) i--;
    let r = normalize(op);
    const local = this._ids === null ? null : this._asLocal(r);
    const first0 = this._nextId;
    this._nextId += r.reduce((n, c2) => n + (typeof c2 === "string" ? cpLength(c2) : 0), 0);
    const counter = () => {
      let k = first0;
      return () => k++;
    };
    const fresh = () => this._nextId++;
    const key = `seq\0${this.node}\0`;
    const own = this.state.inflight && this.state.inflight.ops.has(key) || this.state.pending.has(key);
    const ids = local !== null && !own ? this._ids : null;
    const idsOf = (a, b) => ids !== null ? ids.slice(a, b) : Array.from({ length: b - a }, fresh);
    const rich = restore ? fromPlain(r, before, idsOf, counter()) : r;
    const rec = { op: rich, own: false, gen: -1, kind: "remote", restore, version: meta.version ?? null };
    if (meta.barrier && this.state.inflight) this._barrier = { gen: this.state._edits - 1, from: first0, to: this._nextId };
    const unsent = own && !(this.state.inflight && this.state.inflight.ops.has(key)) && this._ids !== null;
    const c = unsent && batchOp(this.log, this.state._edits, this.state.pending.get(key).payload, reinserts, before, true);
    if (c) {
      for (const id of lostRevivals(c, r)) if (!this._dead.has(id)) this._dead.add(id), this._sweep = true;
    }
    const carry = /* @__PURE__ */ new Map();
    for (let j = i; j < this.log.length; j++) {
      const mine = this.log[j];
      const plain = toPlain(mine.op);
      const rebased = transform2(mine.op, r, "left");
      if (this._dead.size && mine.kind === "fix") this._carry(mine.op, rebased, r, carry);
      mine.op = rebased;
      r = transform(r, plain, "right");
    }
    this.log.splice(i, 0, rec);
    if (local !== null) {
      const idsOfR = () => {
        const next = counter();
        let k = 0;
        return () => {
          const id = next();
          return carry.has(k) ? carry.get(k++) : (k++, id);
        };
      };
      const logIds = this._logIds ?? (i < this.log.length - 1 && !sameOp2(local, r) ? this._ids.slice() : null);
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
    for (let j = i + 1; j < this.log.length; j++) {
      const mine = this.log[j];
      if ((mine.kind === "undo" || mine.kind === "redo") && insertedIds(mine.op).length) {
        if (restore) mine.tainted = true;
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
        if (run > 0) edit.push(run), run = 0;
        if (edit.length && edit[edit.length - 1] < 0) edit[edit.length - 1]--;
        else edit.push(-1);
      } else run++;
    }
    if (!edit.length) return changes;
    this._doing = "fix";
    try {
      this.state.localEdit(this.node, edit);
    } catch (err) {
      if (!(err instanceof InvalidOperation)) throw err;
      this.reset();
      this.failures++;
      return changes;
    } finally {
      this._doing = null;
    }
    this.compensations++;
    changes.push(seqChange2(this.node, edit, text));
    return changes;
  }
  // --------------------------------------------------------------------- internals
  _step(stack, kind) {
    this.close();
    while (stack.length) {
      const group2 = stack.pop();
      let op = this._inverse(group2);
      if (op === null) continue;
      const text = this.state.rope(this.node);
      const ids = this._idsFor(text.length);
      const want = new Set(insertedIds(op));
      const present = /* @__PURE__ */ new Set();
      if (want.size) {
        for (const id of ids) if (want.has(id)) present.add(id);
      }
      const keep = (id) => id === null || !present.has(id) && !this._dead.has(id) && (present.add(id), true);
      op = retarget(op, text, ids, keep);
      if (isNoop2(op)) continue;
      const edit = toPlain(op);
      const before = this.state.rope(this.node);
      this._doing = kind;
      this._of = group2.records.length === 1 ? group2.records[0] : null;
      this._source = group2;
      this._intent = op;
      try {
        this.apply(edit);
      } catch (err) {
        if (!(err instanceof InvalidOperation)) throw err;
        this.reset();
        this.failures++;
        return null;
      } finally {
        this._doing = null;
        this._of = this._source = this._intent = null;
      }
      return seqChange2(this.node, edit, before);
    }
    return null;
  }
  /** The op undoing `group` now (or just before log record `end`): `fold` (undo_log.js). */
  _inverse(group2, end = this.log.length) {
    return fold(this.log, group2, end);
  }
  /** Our record `before` (rebased to `after` over plain `r`, same base) lost deletes of dead
   *  characters (a correction's) to `r`, which deleted them too. If `r` inserts the same
   *  characters in order where it deleted them (a delete and its undo sent as one batch by
   *  someone else, a restore), those are the same characters, still to be deleted: `carry`
   *  maps the index of each such code point among those `r` inserts to its dead identity. */
  _carry(before, after, r, carry) {
    const kept = /* @__PURE__ */ new Set();
    for (const c of after) if (typeof c === "object" && Array.isArray(c.d)) for (const id of c.ids) kept.add(id);
    const lost = /* @__PURE__ */ new Map();
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
    const copy2 = (b) => ids[b] >= from && ids[b] < to && !this._dead.has(ids[b]);
    const near = (b) => b >= 0 && b < ids.length && ids[b] !== null && ids[b] >= from;
    const text = this.state.rope(this.node);
    const runs = /* @__PURE__ */ new Set();
    let at = 0;
    for (const c of normalize(inflight)) {
      if (typeof c === "number") {
        if (c > 0) at += c;
        continue;
      }
      const n = cpLength(c);
      const a = pending ? transformPosition(at, pending) : at;
      const e = pending ? transformPosition(at + n, pending, true) : at + n;
      for (let b = a - 1; near(b); b--) if (copy2(b)) runs.add(b);
      for (let b = e; near(b); b++) if (copy2(b)) runs.add(b);
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
    const key = `seq\0${this.node}\0`;
    const batch = this.state.inflight;
    const i = batch && batch.ops.get(key);
    if (i) r = transform(r, i.payload, "right");
    const mine = this.state.pending.get(key);
    if (mine) r = transform(r, mine.payload, "right");
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
  _push(stack, group2) {
    stack.push(group2);
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
    for (let i = cut; i < this.log.length; i++) if (this.log[i].source) groups.push(this.log[i].source);
    for (const group2 of groups) for (const rec of group2.records) cut = Math.min(cut, index.get(rec) ?? cut);
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
};
function cpLen(text) {
  return typeof text === "string" ? cpLength(text) : text.length;
}
function sameIds(a, b) {
  if (a.length !== b.length) return false;
  for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) return false;
  return true;
}
function sameOp2(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}
function seqChange2(node, edit, before) {
  const change = { type: "seq", node, edit };
  Object.defineProperty(change, "before", { value: before });
  return change;
}

// src/client.js
var PROTOCOL_VERSION = 1;
var now2 = () => Date.now();
function silenceLimitMs(heartbeatS) {
  const beatMs = (Number.isFinite(heartbeatS) && heartbeatS > 0 ? heartbeatS : 30) * 1e3;
  return Math.max(5e3, beatMs + Math.max(beatMs / 2, 1e4));
}
var STATUS = Object.freeze({
  IDLE: "idle",
  // connect() not called yet
  CONNECTING: "connecting",
  // first attempt
  CONNECTED: "connected",
  // welcome received
  RECONNECTING: "reconnecting",
  // lost the connection, retrying soon
  OFFLINE: "offline",
  // the browser is offline, or the server has been unreachable for a while
  CLOSED: "closed"
  // close() called, or the server refused us (bad token)
});
var CowriteClient = class extends Emitter {
  constructor(options = {}) {
    super();
    if (!options.url) throw new TypeError("CowriteClient needs {url}");
    this.url = options.url;
    this.clientId = options.clientId || `js-${randomHex(8)}`;
    this.user = { ...options.user || {} };
    this.token = options.token ?? null;
    this.key = options.key || randomHex(16);
    this.WebSocket = options.WebSocket || globalThis.WebSocket;
    const rc = options.reconnect || {};
    this.reconnectOptions = {
      initialDelayMs: rc.initialDelayMs ?? 300,
      maxDelayMs: rc.maxDelayMs ?? 1e4,
      factor: rc.factor ?? 2,
      offlineAfter: rc.offlineAfter ?? 3
    };
    this.batchIntervalMs = options.batchIntervalMs ?? 25;
    this.batchBurst = Math.max(1, Math.floor(Number(options.batchBurst ?? 4)) || 1);
    this.presenceIntervalMs = options.presenceIntervalMs ?? 80;
    this.historyVersions = options.historyVersions ?? 1e3;
    this.status = STATUS.IDLE;
    this.session = null;
    this.serverUser = null;
    this.heartbeatS = 30;
    this.features = /* @__PURE__ */ new Set();
    this.docs = /* @__PURE__ */ new Map();
    this._ws = null;
    this._attempt = 0;
    this._retryTimer = null;
    this._livenessTimer = null;
    this._lastFrameAt = 0;
    this._serverDelayMs = null;
    this._browserOffline = false;
    this._wanted = false;
    this._onOnline = () => {
      this._browserOffline = false;
      if (this._wanted && !this._ws) {
        this._attempt = 0;
        this._clearRetry();
        this._open();
      }
    };
    this._onOffline = () => {
      this._browserOffline = true;
      if (this._wanted) {
        this._setStatus(STATUS.OFFLINE);
        if (this._ws) this._drop("the browser went offline");
      }
    };
  }
  /** True once welcome was received on the current socket. */
  get connected() {
    return this.status === STATUS.CONNECTED;
  }
  /** Open the connection (and keep it open: reconnects until close()). */
  connect() {
    if (this._wanted) return this;
    this._wanted = true;
    if (typeof window !== "undefined" && window.addEventListener) {
      window.addEventListener("online", this._onOnline);
      window.addEventListener("offline", this._onOffline);
      if (typeof navigator !== "undefined" && navigator.onLine === false) this._browserOffline = true;
    }
    this._open();
    return this;
  }
  /** Close the connection for good (documents stay readable, nothing more is sent). */
  close() {
    this._wanted = false;
    this._clearRetry();
    if (typeof window !== "undefined" && window.removeEventListener) {
      window.removeEventListener("online", this._onOnline);
      window.removeEventListener("offline", this._onOffline);
    }
    const ws = this._ws;
    this._detach();
    if (ws) {
      try {
        ws.close(1e3, "client closed");
      } catch {
      }
    }
    this._setStatus(STATUS.CLOSED);
  }
  /** Reconnect now (skipping the backoff delay); no-op while connected. */
  reconnectNow() {
    if (!this._wanted || this._ws) return;
    this._clearRetry();
    this._open();
  }
  /**
   * Open document `id` (returns its DocumentSession at once; `await session.ready` for the
   * first `joined`). Options: create (create it if missing), restore (a state saved by
   * persist.js before a reload: its unacknowledged edits are resent, at most once).
   */
  open(id, { create = false, restore = null } = {}) {
    let session = this.docs.get(id);
    if (session) return session;
    session = new DocumentSession(this, id, { create });
    if (restore) session._restore(restore);
    this.docs.set(id, session);
    if (this.connected) session._join();
    return session;
  }
  /** Change the user's name/color: used for the next hello and sent to every open document. */
  setUser(user) {
    this.user = { ...this.user, ...user };
    for (const doc of this.docs.values()) {
      if (doc.state.joined) this.send({ type: "presence", doc: doc.id, user: this._userMessage() });
    }
  }
  /** Send a protocol message now; false when not connected (the message is dropped). */
  send(msg) {
    const ws = this._ws;
    if (!ws || ws.readyState !== 1 || !this._welcomed) return false;
    ws.send(JSON.stringify(msg));
    return true;
  }
  // ------------------------------------------------------------------------ internals
  _userMessage() {
    const u = {};
    if (this.user.name) u.name = String(this.user.name).slice(0, 100);
    if (this.user.color) u.color = String(this.user.color).slice(0, 100);
    if (this.user.fields) u.fields = this.user.fields;
    return u;
  }
  _setStatus(status, extra = {}) {
    if (this.status === status && !extra.force) return;
    const previous = this.status;
    this.status = status;
    this.emit("status", { status, previous, attempt: this._attempt, ...extra });
  }
  _open() {
    if (!this._wanted) return;
    if (this.status === STATUS.IDLE || this.status === STATUS.CLOSED) this._setStatus(STATUS.CONNECTING);
    let ws;
    try {
      ws = new this.WebSocket(this.url);
    } catch (err) {
      this.emit("error", { code: "connect_failed", message: String(err) });
      this._scheduleRetry();
      return;
    }
    this._ws = ws;
    this._welcomed = false;
    ws.onopen = () => {
      if (ws !== this._ws) return;
      this._lastFrameAt = now2();
      const hello = { type: "hello", client_id: this.clientId, protocol: PROTOCOL_VERSION, user: this._userMessage() };
      if (this.token) hello.token = this.token;
      else hello.key = this.key;
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (event) => {
      if (ws !== this._ws) return;
      this._lastFrameAt = now2();
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      if (Array.isArray(data)) for (const msg of data) this._handle(msg);
      else this._handle(data);
      for (const doc of this.docs.values()) doc._afterFrame();
    };
    ws.onclose = (event) => {
      if (ws !== this._ws) return;
      this._detach();
      if (event.code === 1008) {
        this._wanted = false;
        this.emit("error", { code: "closed", message: event.reason || "the server closed the connection" });
        this._setStatus(STATUS.CLOSED);
        return;
      }
      this._scheduleRetry();
    };
    ws.onerror = () => {
    };
  }
  /** Forget the socket and tell the documents. */
  _detach() {
    const ws = this._ws;
    this._ws = null;
    this._welcomed = false;
    if (this._livenessTimer) clearInterval(this._livenessTimer);
    this._livenessTimer = null;
    if (ws) ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    for (const doc of this.docs.values()) doc._disconnected();
  }
  /** Drop the current socket (half-open, offline) and retry. */
  _drop(reason) {
    const ws = this._ws;
    this._detach();
    if (ws) {
      try {
        ws.close(4e3, reason);
      } catch {
      }
    }
    this._scheduleRetry();
  }
  _clearRetry() {
    if (this._retryTimer) clearTimeout(this._retryTimer);
    this._retryTimer = null;
  }
  _scheduleRetry() {
    if (!this._wanted || this._retryTimer) return;
    const o = this.reconnectOptions;
    let delay;
    if (this._serverDelayMs !== null) {
      delay = this._serverDelayMs + Math.random() * Math.max(100, this._serverDelayMs / 2);
      this._serverDelayMs = null;
    } else {
      const cap = Math.min(o.maxDelayMs, o.initialDelayMs * o.factor ** this._attempt);
      delay = cap / 2 + Math.random() * (cap / 2);
    }
    this._attempt++;
    const status = this._browserOffline || this._attempt > o.offlineAfter ? STATUS.OFFLINE : STATUS.RECONNECTING;
    this._setStatus(status, { retryInMs: Math.round(delay), force: true });
    this._retryTimer = setTimeout(() => {
      this._retryTimer = null;
      this._open();
    }, delay);
  }
  _handle(msg) {
    this.emit("message", msg);
    switch (msg.type) {
      case "welcome":
        this._welcomed = true;
        this._attempt = 0;
        this._browserOffline = false;
        this.session = msg.session;
        this.serverUser = msg.user;
        this.heartbeatS = Number.isFinite(msg.heartbeat_s) && msg.heartbeat_s > 0 ? msg.heartbeat_s : 30;
        this._setFeatures([]);
        this._startLiveness();
        this._setStatus(STATUS.CONNECTED);
        this.emit("welcome", msg);
        for (const doc of this.docs.values()) doc._join();
        return;
      case "features":
        this._setFeatures(Array.isArray(msg.features) ? msg.features : []);
        return;
      case "ping":
        this.send({ type: "pong", nonce: msg.nonce ?? 0 });
        return;
      case "reconnect":
        this._serverDelayMs = Math.max(0, msg.after_ms || 0);
        return;
      case "error":
        if (msg.doc && this.docs.has(msg.doc)) this.docs.get(msg.doc)._onError(msg);
        else this.emit("error", msg);
        return;
      default:
        if (msg.doc && this.docs.has(msg.doc)) this.docs.get(msg.doc)._onMessage(msg);
    }
  }
  _setFeatures(names) {
    this.features = new Set(names);
    for (const doc of this.docs.values()) doc.state.revive = this.features.has("revive");
  }
  _startLiveness() {
    if (this._livenessTimer) clearInterval(this._livenessTimer);
    const limitMs = silenceLimitMs(this.heartbeatS);
    this._livenessTimer = setInterval(() => {
      if (this._ws && now2() - this._lastFrameAt > limitMs) this._drop("no frame from the server");
    }, Math.max(1e3, Math.min(limitMs / 3, 5e3)));
  }
  _forget(id) {
    this.docs.delete(id);
  }
};
export {
  CounterHandle,
  CowriteClient,
  DocumentSession,
  Emitter,
  InvalidOperation,
  ListHandle,
  MapHandle,
  PROTOCOL_VERSION,
  RESTORE_EDIT_PREFIX,
  RegisterHandle,
  Rope,
  STATUS,
  TextHandle,
  ThinDocState,
  UndoManager,
  cpLength,
  cpSlice,
  cpToUtf16,
  isRestoreEdit,
  ot_exports as ot,
  utf16ToCp
};
