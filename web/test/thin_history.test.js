// The cursor history (thin_history.js): kept as op shapes in a ring of 32-bit words, it must
// place every position exactly as ot.transformPosition through the kept ops would.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as ot from "../src/ot.js";
import { CursorHistory } from "../src/thin_history.js";
import { ThinDocState } from "../src/thin.js";
import { rng } from "./seeded.js";


const PIECES = ["a", "xy", "😀", "é😀z", ""];

/** A random op, not always normalized: neighbours of one kind, empty components, a delete
 *  before an insert, list inserts. */
function randomOp(rand) {
  const op = [];
  const n = 1 + Math.floor(rand() * 6);
  for (let j = 0; j < n; j++) {
    const kind = Math.floor(rand() * 4);
    if (kind === 0) op.push(Math.floor(rand() * 5));
    else if (kind === 1) op.push(PIECES[Math.floor(rand() * PIECES.length)]);
    else if (kind === 2) op.push(-1 - Math.floor(rand() * 4));
    else op.push(Array.from({ length: Math.floor(rand() * 3) }, (_, i) => i));
  }
  return op;
}

/** What the history replaced: every version's ops kept as they are. */
class Reference {
  constructor(max, from) {
    this.max = max;
    this.from = from;
    this.entries = [];
  }
  push(version, seqOps) {
    const last = this.from + this.entries.length;
    if (version !== last + 1) {
      this.from = version - 1;
      this.entries = [];
    }
    this.entries.push([version, seqOps]);
    if (this.entries.length > this.max) {
      this.entries.shift();
      this.from += 1;
    }
  }
  transform(node, version, anchor, head) {
    if (version < this.from || version > this.from + this.entries.length) return null;
    for (const [v, seqOps] of this.entries) {
      if (v <= version) continue;
      for (const [n, op] of seqOps) {
        if (n !== node) continue;
        anchor = ot.transformPosition(anchor, op);
        head = ot.transformPosition(head, op);
      }
    }
    return [anchor, head];
  }
}

test("every kept version places positions as transformPosition through the kept ops", () => {
  for (let seed = 1; seed <= 60; seed++) {
    const rand = rng(seed);
    const max = 1 + Math.floor(rand() * 9);
    const history = new CursorHistory(max, 5);
    const ref = new Reference(max, 5);
    let version = 5;
    for (let step = 0; step < 80; step++) {
      if (rand() < 0.04) {
        version += Math.floor(rand() * 3); // a rejoin: the history starts again
        history.reset(version);
        ref.from = version;
        ref.entries = [];
        continue;
      }
      version += rand() < 0.03 ? 2 : 1; // a gap, which must not happen, starts it again too
      const seqOps = [];
      const pairs = Math.floor(rand() * 4);
      for (let p = 0; p < pairs; p++) seqOps.push([rand() < 0.5 ? "text:a" : "text:b", randomOp(rand)]);
      history.push(version, seqOps);
      ref.push(version, seqOps);
      assert.equal(history.start, ref.from);
      assert.equal(history.last, version);
      assert.equal(history.length, ref.entries.length);
      for (let at = history.start - 1; at <= version + 1; at++) {
        for (const node of ["text:a", "text:b", "text:c"]) {
          const anchor = Math.floor(rand() * 12);
          const head = Math.floor(rand() * 12);
          assert.deepEqual(history.transform(node, at, anchor, head), ref.transform(node, at, anchor, head), `seed ${seed} step ${step} at ${at}`);
        }
      }
    }
  }
});

test("the rings grow for big ops and keep what wrapped around", () => {
  const history = new CursorHistory(6, 0);
  const ref = new Reference(6, 0);
  const rand = rng(99);
  for (let v = 1; v <= 40; v++) {
    // every so often an op of many groups (a replace-all of scattered places)
    const op = [];
    const groups = v % 7 === 0 ? 200 : 1;
    for (let g = 0; g < groups; g++) op.push(1 + Math.floor(rand() * 3), "ab", -1);
    history.push(v, [["text:a", op]]);
    ref.push(v, [["text:a", op]]);
    for (let at = history.start; at <= v; at++) {
      for (const pos of [0, 1, 5, 50, 700]) {
        assert.deepEqual(history.transform("text:a", at, pos, pos + 3), ref.transform("text:a", at, pos, pos + 3));
      }
    }
  }
});

test("the shapes kept: (retain, insert, delete) in code points, one record per version", () => {
  const history = new CursorHistory(3, 0);
  history.push(1, [["text:a", [2, "😀x", -3, 4, -1]]]);
  history.push(2, []);
  history.push(3, [
    ["list:l", [[1, 2]]],
    ["text:a", [-2, "q"]],
  ]);
  history.push(4, [["text:a", [1, "", 0, 2, "z"]]]);
  assert.deepEqual(history.entries(), [
    [2, []],
    [3, [["list:l", [[0, 2, 0]]], ["text:a", [[0, 0, 2], [0, 1, 0]]]]],
    [4, [["text:a", [[3, 1, 0]]]]],
  ]);
  assert.equal(history.start, 1);
  assert.equal(history.transform("text:a", 0, 3, 3), null); // older than what is kept
  assert.equal(history.transform("text:a", 5, 3, 3), null); // not reached
});

test("a cursor whose version is not an integer is clamped, never transformed or thrown at", () => {
  const state = new ThinDocState("d", "me", { historyVersions: 4 });
  state.onJoined({ type: "joined", doc: "d", mode: "thin", version: 1, snapshot: { "text:body": { kind: "text", value: "abcdef" } } });
  state.onRemote({ type: "remote", doc: "d", version: 2, ops: [{ type: "seq", node: "text:body", edit: ["XY"] }], client_id: "x", edit_id: "x-1" });
  assert.deepEqual(state.cursorToLocal({ node: "text:body", anchor: 1, head: 1, version: 1 }), [3, 3]);
  for (const version of [1.5, "1", NaN, -1, 99, {}]) {
    assert.deepEqual(state.cursorToLocal({ node: "text:body", anchor: 1, head: 20, version }), [1, 8]);
  }
});

test("a cursor older than the kept versions is clamped; historyVersions bounds what is kept", () => {
  const state = new ThinDocState("d", "me", { historyVersions: 2 });
  state.onJoined({ type: "joined", doc: "d", mode: "thin", version: 1, snapshot: { "text:body": { kind: "text", value: "abc" } } });
  for (let v = 2; v <= 5; v++) state.onRemote({ type: "remote", doc: "d", version: v, ops: [{ type: "seq", node: "text:body", edit: ["-"] }], client_id: "x", edit_id: `x-${v}` });
  assert.equal(state.history.length, 2);
  assert.deepEqual(state.cursorToLocal({ node: "text:body", anchor: 1, head: 1, version: 3 }), [3, 3]);
  assert.deepEqual(state.cursorToLocal({ node: "text:body", anchor: 1, head: 1, version: 2 }), [1, 1]);
});
