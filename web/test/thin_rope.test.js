// Text values of the thin client are ropes once edited (src/rope.js), and everything that reads
// them as strings still does: value(), checksums, persist.js exports. Run: node --test test/
import assert from "node:assert/strict";
import { test } from "node:test";
import { textChecksum } from "../src/checksum.js";
import { exportThin, importThin } from "../src/persist.js";
import { Rope } from "../src/rope.js";
import { ThinDocState } from "../src/thin.js";

const NODE = "text:body";

function joined(text) {
  const state = new ThinDocState("d", "me", { editIdPrefix: "p" });
  state.joinMessage();
  state.onJoined({ type: "joined", doc: "d", version: 1, rights: ["read", "write"], state: { 1: 1 }, snapshot: { [NODE]: { kind: "text", value: text } } });
  return state;
}

const remote = (version, edit) => ({ type: "remote", doc: "d", version, client_id: "other", edit_id: `o${version}`, ops: [{ type: "seq", node: NODE, edit }] });

test("remote edits keep ropes; changes carry the text before them (not enumerable)", () => {
  const state = joined("héllo 😀 world");
  state.localEdit(NODE, [0, ">"]);
  const [change] = state.onRemote(remote(2, [7, "!"]));
  assert.deepEqual(change, { type: "seq", node: NODE, edit: [8, "!"] }); // rebased over ">"
  assert.deepEqual(Object.keys(change), ["type", "node", "edit"]);
  assert.ok(change.before instanceof Rope);
  assert.equal(change.before.toString(), ">héllo 😀 world");
  assert.equal(change.before.cpToUtf16(8), 9); // after the emoji: two UTF-16 units
  assert.ok(state.server.get(NODE) instanceof Rope);
  assert.ok(state.local.get(NODE) instanceof Rope);
  assert.equal(state.value(NODE), ">héllo 😀! world");
  assert.equal(typeof state.value(NODE), "string");
  assert.equal(state.rope(NODE), state.local.get(NODE));
  assert.equal(state.rope(NODE).length, 15);
  assert.deepEqual(state.cursorToLocal({ node: NODE, anchor: 100, head: 2, version: 2 }), [15, 3]);
  state.checkInvariants();
});

test("checksums and exports read ropes as strings", () => {
  const state = joined("abc 😀");
  state.onRemote(remote(2, [5, "d"]));
  assert.deepEqual(state.onChecksum({ type: "checksum", doc: "d", version: 2, sums: { [NODE]: textChecksum("abc 😀d") } }), []);
  state.localEdit(NODE, [6, "e"]);
  const saved = structuredClone(exportThin(state));
  assert.deepEqual(saved.server, [[NODE, "abc 😀d"]]);
  assert.deepEqual(saved.local, [[NODE, "abc 😀de"]]);
  const back = new ThinDocState("d", "me");
  assert.equal(importThin(back, saved), true);
  assert.equal(back.value(NODE), "abc 😀de");
  back.checkInvariants();
  assert.deepEqual(state.onChecksum({ type: "checksum", doc: "d", version: 2, sums: { [NODE]: textChecksum("something else") } }), [NODE]);
});

test("a rejected batch is undone from the rope (invert reads the deleted text)", () => {
  const state = joined("one 😀 two three");
  state.onRemote(remote(2, [0, "0 "])); // the server copy is a rope now
  state.localEdit(NODE, [6, -2, "X"]);
  const batch = state.takeBatch();
  state.localEdit(NODE, [0, "!"]);
  const { action, changes } = state.onError({ type: "error", doc: "d", code: "forbidden", edit_id: batch.edit_id });
  assert.equal(action, "rejected");
  assert.equal(state.value(NODE), "!0 one 😀 two three");
  assert.deepEqual(changes.map((c) => c.edit), [[7, "😀 ", -1]]);
  assert.equal(changes[0].before.toString(), "!0 one Xtwo three");
  state.checkInvariants();
});

test("a rope from another copy of rope.js (the page's bundle has its own) is still a rope", async () => {
  const other = await import("../src/rope.js?another-copy");
  assert.notEqual(other.Rope, Rope);
  const foreign = other.Rope.from("abc 😀");
  const state = joined("abc 😀");
  state.local.set(NODE, foreign);
  assert.equal(state.value(NODE), "abc 😀");
  assert.equal(state.rope(NODE), foreign);
  assert.deepEqual(exportThin(state).local, [[NODE, "abc 😀"]]);
  state.localEdit(NODE, [5, "!"]);
  assert.equal(state.value(NODE), "abc 😀!");
  state.checkInvariants();
});

test("after an ack with nothing pending the texts share one rope, and remotes apply to it once", () => {
  const state = joined("hello");
  state.onRemote(remote(2, [5, "!"]));
  assert.notEqual(state.local.get(NODE), state.server.get(NODE)); // never shared yet: two ropes
  state.localEdit(NODE, [0, ">"]);
  state.takeBatch();
  state.localEdit(NODE, [1, "."]); // pending when the first is acknowledged: not shared
  state.onAck({ type: "ack", doc: "d", edit_id: "p-1", version: 3 });
  assert.notEqual(state.local.get(NODE), state.server.get(NODE));
  assert.equal(state.server.get(NODE).toString(), ">hello!");
  state.checkInvariants();
  state.takeBatch();
  state.onAck({ type: "ack", doc: "d", edit_id: "p-2", version: 4 }); // nothing pending: shared
  assert.equal(state.local.get(NODE), state.server.get(NODE));
  const [change] = state.onRemote(remote(5, [7, "?"]));
  assert.deepEqual(change, { type: "seq", node: NODE, edit: [7, "?"] });
  assert.equal(change.before.toString(), ">.hello!");
  assert.equal(state.local.get(NODE), state.server.get(NODE)); // still one rope
  assert.equal(state.value(NODE), ">.hello?!");
  // our edit in flight: the remote is rebased over it, the texts part
  state.localEdit(NODE, [0, "#"]);
  state.takeBatch();
  state.onRemote(remote(6, [9, "~"]));
  assert.notEqual(state.local.get(NODE), state.server.get(NODE));
  assert.equal(state.value(NODE), "#>.hello?!~");
  state.checkInvariants();
});

test("a server copy that is not the local rope is never shared: a garbled one stays out of the view", () => {
  const state = joined("hello");
  state.localEdit(NODE, [5, "!"]);
  state.takeBatch();
  state.onAck({ type: "ack", doc: "d", edit_id: "p-1", version: 2 });
  assert.equal(state.local.get(NODE), state.server.get(NODE));
  state.server.set(NODE, "hellX!"); // a bug garbled our copy of the server's text
  const [change] = state.onRemote(remote(3, [0, ">"]));
  assert.deepEqual(change, { type: "seq", node: NODE, edit: [">"] });
  assert.equal(state.value(NODE), ">hello!"); // the view is intact...
  assert.equal(state.server.get(NODE).toString(), ">hellX!"); // ...the checksum will tell
});

test("the history keeps each version's op shapes, and remote cursors are carried through it", () => {
  const state = joined("abcdef");
  state.onRemote(remote(2, [1, "XY"]));
  state.onRemote(remote(3, [-1]));
  assert.deepEqual(state.history.entries(), [
    [2, [[NODE, [[1, 2, 0]]]]],
    [3, [[NODE, [[0, 0, 1]]]]],
  ]);
  // a cursor at 4 as of version 1: +2 (inserted before it), -1 (deleted before it)
  assert.deepEqual(state.cursorToLocal({ node: NODE, anchor: 4, head: 0, version: 1 }), [5, 0]);
  assert.deepEqual(state.cursorToLocal({ node: NODE, anchor: 4, head: 4, version: 2 }), [3, 3]);
});
