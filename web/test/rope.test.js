// The rope (src/rope.js) against a plain-string model: random inserts and deletes (astral
// characters among them), code point <-> UTF-16 conversions, slices and random ops applied with
// ot.apply as the reference. Seeded: a failure names its seed and step.
import test from "node:test";
import assert from "node:assert/strict";

import * as ot from "../src/ot.js";
import { Rope, ropeShape, textOf } from "../src/rope.js";
import { rng } from "./seeded.js";


// BMP letters, accents, CJK, newlines and astral characters (two UTF-16 units each)
const ALPHABET = ["a", "b", "c", " ", "é", "中", "\n", "😀", "👍", "🏽", "𝔘", "🇫", "\r"];

function text(rand, n) {
  let s = "";
  for (let i = 0; i < n; i++) s += ALPHABET[Math.floor(rand() * ALPHABET.length)];
  return s;
}

function int(rand, lo, hi) {
  return lo + Math.floor(rand() * (hi - lo + 1));
}

/** A random op over a text of `length` code points (sometimes unnormalized). */
function randomOp(rand, length) {
  const op = [];
  let pos = 0;
  while (pos < length && rand() < 0.8) {
    const r = rand();
    const n = int(rand, 1, Math.max(1, Math.min(length - pos, 40)));
    if (r < 0.45) {
      op.push(n);
      pos += n;
    } else if (r < 0.7) {
      op.push(-n);
      pos += n;
    } else op.push(text(rand, int(rand, 1, 30)));
  }
  if (rand() < 0.3) op.push(text(rand, int(rand, 1, 5)));
  return op;
}

function same(rope, model, where) {
  assert.equal(rope.length, ot.cpLength(model), `${where}: length`);
  assert.equal(rope.utf16Length, model.length, `${where}: UTF-16 length`);
}

function probe(rand, rope, model, where) {
  const n = ot.cpLength(model);
  for (let k = 0; k < 4; k++) {
    const cp = int(rand, 0, n + 1);
    assert.equal(rope.cpToUtf16(cp), ot.cpToUtf16(model, cp), `${where}: cpToUtf16(${cp})`);
    const u = int(rand, 0, model.length + 1);
    assert.equal(rope.utf16ToCp(u), ot.utf16ToCp(model, Math.min(u, model.length)), `${where}: utf16ToCp(${u})`);
    const a = int(rand, 0, n);
    const b = int(rand, a, Math.min(n, a + 80));
    assert.equal(rope.slice(a, b), ot.cpSlice(model, a, b), `${where}: slice(${a}, ${b})`);
  }
}

const SHAPES = [
  { leafMax: 6, leafTarget: 4, leafMin: 2, fanMax: 4, fanMin: 2 }, // deep trees from short texts
  { leafMax: 32, leafTarget: 16, leafMin: 4, fanMax: 5, fanMin: 2 },
  {}, // the real shape
];

for (const [s, shape] of SHAPES.entries()) {
  test(`rope = string model: random inserts, deletes, conversions and slices (shape ${s})`, () => {
    const old = ropeShape(shape);
    try {
      for (let seed = 1; seed <= 6; seed++) {
        const rand = rng(seed * 7919 + s);
        let model = text(rand, int(rand, 0, shape.leafMax ? 200 : 6000));
        let rope = Rope.from(model);
        rope.checkInvariants();
        for (let step = 0; step < 1500; step++) {
          const where = `shape ${s} seed ${seed} step ${step}`;
          const n = ot.cpLength(model);
          const r = rand();
          if (r < 0.45 || n === 0) {
            const pos = int(rand, 0, n);
            const ins = text(rand, rand() < 0.9 ? int(rand, 1, 3) : int(rand, 4, 400));
            rope = rope.insert(pos, ins);
            model = ot.apply(model, ot.fromSplice(pos, 0, ins));
          } else if (r < 0.85) {
            const pos = int(rand, 0, n - 1);
            const count = rand() < 0.85 ? 1 : int(rand, 1, n - pos);
            rope = rope.delete(pos, count);
            model = ot.apply(model, ot.fromSplice(pos, count, ""));
          } else {
            const op = randomOp(rand, n);
            const before = rope;
            const beforeText = model;
            rope = rope.apply(op);
            model = ot.apply(model, op);
            assert.equal(before.toString(), beforeText, `${where}: the old rope is unchanged`);
          }
          same(rope, model, where);
          if (step % 5 === 0) probe(rand, rope, model, where);
          if (step % 50 === 0) {
            rope.checkInvariants();
            assert.equal(rope.toString(), model, `${where}: text`);
          }
        }
        rope.checkInvariants();
        assert.equal(rope.toString(), model);
        assert.equal(JSON.stringify({ t: rope }), JSON.stringify({ t: model }));
      }
    } finally {
      ropeShape(old);
    }
  });
}

test("rope apply fails like ot.apply (same error, rope unchanged)", () => {
  const rand = rng(99);
  const old = ropeShape(SHAPES[0]);
  try {
    for (let i = 0; i < 500; i++) {
      const model = text(rand, int(rand, 0, 30));
      const rope = Rope.from(model);
      const op = randomOp(rand, ot.cpLength(model) + int(rand, 1, 5));
      let want = null;
      let got = null;
      try {
        ot.apply(model, op);
      } catch (e) {
        want = e;
      }
      try {
        rope.apply(op);
      } catch (e) {
        got = e;
      }
      if (!want) continue;
      assert.ok(got instanceof ot.InvalidOperation, `${JSON.stringify(op)} on ${JSON.stringify(model)}`);
      assert.equal(got.message, want.message);
      assert.equal(rope.toString(), model);
    }
    assert.throws(() => Rope.from("abc").apply([1, ["x"]]), ot.InvalidOperation);
    assert.throws(() => Rope.from("abc").apply([1, "x", ["y"]]), ot.InvalidOperation);
    assert.throws(() => Rope.from("abc").apply([4]), ot.InvalidOperation);
    assert.throws(() => Rope.from("abc").delete(2, 2), ot.InvalidOperation);
    assert.throws(() => Rope.from("abc").insert(4, "x"), ot.InvalidOperation);
  } finally {
    ropeShape(old);
  }
});

test("rope: large texts, pastes and whole-text deletes keep the tree balanced", () => {
  const rand = rng(5);
  let model = text(rand, 300_000);
  let rope = Rope.from(model);
  rope.checkInvariants();
  const paste = text(rand, 150_000);
  rope = rope.insert(1234, paste);
  model = ot.apply(model, [1234, paste]);
  rope.checkInvariants();
  assert.equal(rope.toString(), model);
  rope = rope.delete(10, ot.cpLength(model) - 20);
  model = ot.cpSlice(model, 0, 10) + ot.cpSlice(model, ot.cpLength(model) - 10);
  rope.checkInvariants();
  assert.equal(rope.toString(), model);
  rope = rope.delete(0, rope.length);
  assert.equal(rope.toString(), "");
  assert.equal(rope.length, 0);
  assert.equal(rope.cpToUtf16(3), 0);
  rope = rope.insert(0, "😀x");
  assert.equal(rope.cpToUtf16(1), 2);
  assert.equal(rope.utf16ToCp(1), 1); // inside the pair: counted as passed
  rope.checkInvariants();
});

test("rope: lone surrogates count one code point each, as in ot.js", () => {
  const model = "a\ud83d b \ude00c😀";
  const rope = Rope.from(model);
  same(rope, model, "lone");
  for (let cp = 0; cp <= rope.length; cp++) assert.equal(rope.cpToUtf16(cp), ot.cpToUtf16(model, cp));
  const edited = rope.apply([1, -1, "\ud83d"]);
  assert.equal(edited.toString(), ot.apply(model, [1, -1, "\ud83d"]));
});

test("textOf and equals", () => {
  const rope = Rope.from("héllo 😀");
  assert.equal(textOf(rope), "héllo 😀");
  assert.equal(textOf("x"), "x");
  assert.deepEqual(textOf([1]), [1]);
  assert.ok(rope.equals("héllo 😀"));
  assert.ok(rope.equals(Rope.from("héllo 😀")));
  assert.ok(rope.insert(1, "x").delete(1, 1).equals(rope));
  assert.ok(!rope.equals("héllo 😁"));
  assert.ok(!rope.equals(Rope.from("héllo")));
  assert.equal(Rope.EMPTY.length, 0);
  assert.equal(`${rope}`, "héllo 😀");
});
