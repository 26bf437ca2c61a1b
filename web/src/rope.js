// An immutable rope for the text values of the JavaScript client: a balanced tree of string
// chunks (a B+tree), each chunk and subtree counting its CODE POINTS (the wire's unit, see ot.js)
// and its UTF-16 units (an editor's, e.g. CodeMirror's). Applying an op, converting positions
// between the two units, slicing and the lengths cost O(log n) tree steps plus a scan of at most
// one chunk per step, whatever the size of the text; `toString()` builds the whole string only
// when asked, once per rope (cached).
//
// Ropes are persistent: `apply` returns a new rope sharing every untouched chunk with the old
// one, which stays valid (the client keeps the server value and the local view as two ropes, and
// hands an editor binding the value before a change).
//
// Code points are counted like ot.js's cpLength: a surrogate pair is one, a lone surrogate is one.
// Chunks never split a surrogate pair. (Two lone surrogates that an edit brings together, a high
// one then a low one, pair up inside a chunk as they would in a JavaScript string; at a chunk
// boundary they stay two. Editors do not produce lone surrogates; the server treats them as two.)

import { InvalidOperation, check, cpLength, cpToUtf16, utf16ToCp } from "./ot.js";

let LEAF_MAX = 1024; // UTF-16 units per chunk at most (a longer one is split)
let LEAF_TARGET = 512; // chunk size when building from a string
let LEAF_MIN = 128; // a smaller chunk is merged with a neighbour when they fit in one
let FAN_MAX = 32; // children per branch at most
let FAN_MIN = 8;

/** For tests: small chunks and branches make deep trees out of short texts. Returns the old
 *  settings. Ropes built under other settings stay valid. */
export function ropeShape({ leafMax = 1024, leafTarget = 512, leafMin = 128, fanMax = 32, fanMin = 8 } = {}) {
  const old = { leafMax: LEAF_MAX, leafTarget: LEAF_TARGET, leafMin: LEAF_MIN, fanMax: FAN_MAX, fanMin: FAN_MIN };
  [LEAF_MAX, LEAF_TARGET, LEAF_MIN, FAN_MAX, FAN_MIN] = [leafMax, leafTarget, leafMin, fanMax, fanMin];
  return old;
}

function isHigh(c) {
  return c >= 0xd800 && c <= 0xdbff;
}
function isLow(c) {
  return c >= 0xdc00 && c <= 0xdfff;
}

/** 1 when `a` + `b` joins a high surrogate ending `a` with a low one starting `b`. */
function pairs(a, b) {
  return a.length && b.length && isHigh(a.charCodeAt(a.length - 1)) && isLow(b.charCodeAt(0)) ? 1 : 0;
}

class Leaf {
  constructor(s, cp) {
    this.s = s;
    this.cp = cp; // code points
    this.u = s.length; // UTF-16 units
  }
}

class Branch {
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
}

/** The UTF-16 index of code point `cp` of a chunk. */
function leafU(leaf, cp) {
  if (leaf.cp === leaf.u) return cp; // no surrogate pairs in this chunk
  return cpToUtf16(leaf.s, cp);
}

/** Chunks of `s` (at most LEAF_MAX units each, about LEAF_TARGET), no pair split. */
function chunk(s) {
  if (s.length <= LEAF_MAX) return [new Leaf(s, cpLength(s))];
  const count = Math.ceil(s.length / LEAF_TARGET);
  const size = Math.ceil(s.length / count);
  const out = [];
  let a = 0;
  while (a < s.length) {
    let b = Math.min(s.length, a + size);
    if (b < s.length && isLow(s.charCodeAt(b)) && isHigh(s.charCodeAt(b - 1))) b++;
    const piece = s.slice(a, b);
    out.push(new Leaf(piece, cpLength(piece)));
    a = b;
  }
  return out;
}

/** Group same-height nodes into branches of at most FAN_MAX (evenly). */
function group(nodes) {
  const count = Math.ceil(nodes.length / FAN_MAX);
  const size = Math.ceil(nodes.length / count);
  const out = [];
  for (let i = 0; i < nodes.length; i += size) out.push(new Branch(nodes.slice(i, i + size)));
  return out;
}

function build(nodes) {
  if (!nodes.length) return EMPTY_LEAF;
  while (nodes.length > 1) nodes = group(nodes);
  return nodes[0];
}

const EMPTY_LEAF = new Leaf("", 0);

/** `str` (code points: strCp) inserted at code point `cp` of `node`: one or more nodes of the
 *  same height. */
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

/** One node for two same-height neighbours, or null when they do not fit in one. */
function merge(a, b) {
  if (a instanceof Leaf) {
    if (a.u + b.u > LEAF_MAX) return null;
    return new Leaf(a.s + b.s, a.cp + b.cp - pairs(a.s, b.s));
  }
  if (a.kids.length + b.kids.length > FAN_MAX) return null;
  return new Branch(a.kids.concat(b.kids));
}

/** `node` without code points [from, to): a node of the same height, or null when empty. */
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
      // wholly deleted
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
  // keep the tree compact: a shrunken child joins a neighbour when both fit in one node
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

/** An immutable text: see the top of this file. */
export class Rope {
  constructor(node = EMPTY_LEAF, str = null) {
    this._root = node;
    this._str = str; // the whole text once built
  }

  /** The rope of string `s`. */
  static from(s) {
    if (isRope(s)) return s;
    if (typeof s !== "string") throw new TypeError("Rope.from takes a string");
    return new Rope(build(chunk(s)), s);
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
    return new Rope(root(insert(this._root, pos, text, cpLength(text))));
  }

  /** Code points [pos, pos + count) removed (a new rope). */
  delete(pos, count) {
    if (count <= 0) return this;
    if (pos < 0 || pos + count > this.length) throw new InvalidOperation(`delete ${count} at ${pos} runs past the end of the text`);
    const node = remove(this._root, pos, pos + count);
    return new Rope(node ? root([node]) : EMPTY_LEAF);
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
    return node === this._root ? this : new Rope(node);
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
}

// a rope made by another copy of this module (a bundle that includes it again) is a rope too
const BRAND = Symbol.for("cowrite.rope");
Rope.prototype[BRAND] = true;

/** True for a Rope (of any copy of this module). */
export function isRope(value) {
  return value !== null && typeof value === "object" && value[BRAND] === true;
}

Rope.EMPTY = new Rope(EMPTY_LEAF, "");

/** `value` as a string (a rope's text; anything else as it is). */
export function textOf(value) {
  return isRope(value) ? value.toString() : value;
}
