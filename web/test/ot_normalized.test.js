// ot.normalized: normalize(op) without a copy when op is already normal (src/ot.js). Run:
// node --test test/
import assert from "node:assert/strict";
import { test } from "node:test";
import * as ot from "../src/ot.js";

function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1103515245 + 12345) >>> 0;
    return s / 4294967296;
  };
}

test("normalized(op) equals normalize(op), and is op itself exactly when op is normal", () => {
  const rand = rng(3);
  for (let n = 0; n < 5000; n++) {
    const op = [];
    const len = Math.floor(rand() * 6);
    const list = rand() < 0.2;
    for (let i = 0; i < len; i++) {
      const r = rand();
      if (r < 0.3) op.push(Math.floor(rand() * 4)); // retains, some of them zero
      else if (r < 0.55) op.push(-Math.floor(rand() * 3)); // deletes (-0 too)
      else if (list) op.push(rand() < 0.2 ? [] : [1, 2].slice(0, 1 + Math.floor(rand() * 2)));
      else op.push(["", "a", "bc", "😀"][Math.floor(rand() * 4)]);
    }
    const want = ot.normalize(op);
    const got = ot.normalized(op);
    assert.deepEqual(got, want, JSON.stringify(op));
    assert.equal(got === op, JSON.stringify(op) === JSON.stringify(want) && !op.some((c) => Object.is(c, -0)), JSON.stringify(op));
    assert.equal(ot.normalized(want), want); // normal: not copied
  }
});

test("normalized refuses what normalize refuses", () => {
  for (const bad of [null, "abc", [1.5], [{}], ["a", [1]], [true]]) {
    assert.throws(() => ot.normalized(bad), ot.InvalidOperation);
    assert.throws(() => ot.normalize(bad), ot.InvalidOperation);
  }
});
