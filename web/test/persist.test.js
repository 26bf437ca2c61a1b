// Saving and restoring a thin client's unacknowledged edits (src/persist.js): what comes back is
// the same state, and a pending batch that may have gone out comes back as that very batch (same
// edit_id), so the server recognises it instead of applying it twice. Run: node --test test/
import assert from "node:assert/strict";
import { test } from "node:test";
import { exportThin, importThin } from "../src/persist.js";
import { ThinDocState } from "../src/thin.js";

function joined(clientId = "c1") {
  const s = new ThinDocState("d", clientId, { editIdPrefix: "p" });
  s.onJoined({ type: "joined", doc: "d", version: 3, epoch: "", rights: ["read", "write"], state: { 7: 5 }, snapshot: { "text:body": { kind: "text", value: "abc" }, "map:m": { kind: "map", value: { k: 1 } } } });
  return s;
}

const cloned = (value) => structuredClone(value); // what IndexedDB does

test("a state with a batch in flight and pending edits comes back as it was", () => {
  const a = joined();
  a.localEdit("text:body", [3, "d"]);
  const batch = a.takeBatch();
  a.localEdit("text:body", [4, "e"]);
  a.localDelete("map:m", "k");
  const b = new ThinDocState("d", "c1");
  assert.equal(importThin(b, cloned(exportThin(a))), true);
  assert.equal(b.value("text:body"), "abcde");
  assert.deepEqual(b.value("map:m"), {});
  assert.equal(b.version, 3);
  assert.equal(b.joined, false);
  b.checkInvariants();
  const join = b.joinMessage();
  assert.deepEqual([join.version, join.inflight, join.state], [3, batch.edit_id, { 7: 5 }]);
  b.onJoined({ type: "joined", doc: "d", version: 3, epoch: "", rights: ["read", "write"] });
  assert.deepEqual(b.takeBatch(), batch); // the same batch, the same edit_id
  b.onAck({ type: "ack", doc: "d", edit_id: batch.edit_id, version: 4 });
  const next = b.takeBatch();
  assert.deepEqual(next.ops, [
    { type: "seq", node: "text:body", edit: [4, "e"] },
    { type: "del", node: "map:m", key: "k" },
  ]);
  assert.notEqual(next.edit_id, batch.edit_id);
});

test("pending edits come back as the batch they may have been sent as", () => {
  const a = joined();
  a.localEdit("text:body", [0, "x"]);
  const saved = cloned(exportThin(a)); // written before the batch went out
  const sent = a.takeBatch();
  const b = new ThinDocState("d", "c1");
  assert.equal(importThin(b, saved), true);
  assert.equal(b.joinMessage().inflight, sent.edit_id);
  b.onJoined({ type: "joined", doc: "d", version: 3, epoch: "", rights: ["write"] });
  // the server applied it: the catch-up names it, and it counts as our ack
  const changes = b.onRemote({ type: "remote", doc: "d", version: 4, ops: sent.ops, client_id: "c1", edit_id: sent.edit_id });
  assert.deepEqual(changes, []);
  assert.equal(b.synced, true);
  assert.equal(b.value("text:body"), "xabc");
});

test("nothing is restored for another client, another document or nothing unacknowledged", () => {
  const a = joined();
  assert.equal(importThin(new ThinDocState("d", "c1"), cloned(exportThin(a))), false); // synced
  a.localEdit("text:body", [0, "x"]);
  const saved = cloned(exportThin(a));
  assert.equal(importThin(new ThinDocState("d", "other"), saved), false);
  assert.equal(importThin(new ThinDocState("e", "c1"), saved), false);
  assert.equal(importThin(new ThinDocState("d", "c1"), { ...saved, format: 99 }), false);
  assert.equal(importThin(new ThinDocState("d", "c1"), null), false);
});
