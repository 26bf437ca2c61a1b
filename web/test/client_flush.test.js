// When batches leave (client.js _scheduleFlush): at once (a microtask, no timer hop) when nothing
// is in flight and the batch interval has passed; coalesced while one is in flight. A fake
// WebSocket stands in for the server.
import test from "node:test";
import assert from "node:assert/strict";

import { CowriteClient } from "../src/client.js";

class FakeSocket {
  static last = null;
  constructor(url) {
    this.url = url;
    this.readyState = 1;
    this.sent = [];
    FakeSocket.last = this;
    queueMicrotask(() => this.onopen && this.onopen());
  }
  send(data) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.readyState = 3;
  }
  receive(msg) {
    this.onmessage({ data: JSON.stringify(msg) });
  }
  edits() {
    return this.sent.filter((m) => m.type === "edit");
  }
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

async function joinedSession(batchIntervalMs, batchBurst = 1) {
  const client = new CowriteClient({ url: "ws://test/ws", WebSocket: FakeSocket, batchIntervalMs, batchBurst, clientId: "me" });
  client.connect();
  await tick();
  const ws = FakeSocket.last;
  ws.receive({ type: "welcome", session: "s1", server: "test", heartbeat_s: 3600 });
  const doc = client.open("d");
  ws.receive({ type: "joined", doc: "d", version: 1, rights: ["read", "write"], snapshot: { "text:body": { kind: "text", value: "hello" } } });
  await doc.ready;
  return { client, ws, doc };
}

test("a batch leaves without a timer when nothing is in flight; edits of one task make one batch", async () => {
  const { client, ws, doc } = await joinedSession(60_000); // a timer would never fire in this test
  try {
    doc.text("body").insert(5, " world");
    doc.text("body").insert(0, ">");
    assert.equal(ws.edits().length, 0, "not synchronously: the edits of this task are coalesced");
    await Promise.resolve();
    assert.equal(ws.edits().length, 1, "sent in a microtask");
    assert.deepEqual(ws.edits()[0].ops, [{ type: "seq", node: "text:body", edit: [">", 5, " world"] }]);

    // one in flight: further edits wait for its ack (then the interval, here a long one)
    doc.text("body").insert(0, "!");
    await tick();
    assert.equal(ws.edits().length, 1);
    ws.receive({ type: "ack", doc: "d", edit_id: ws.edits()[0].edit_id, version: 2 });
    await tick();
    assert.equal(ws.edits().length, 1, "the batch interval since the last batch has not passed");
    assert.equal(doc.value("text:body"), "!>hello world");
  } finally {
    client.close();
  }
});

test("after an ack the next batch leaves at once when the interval has passed", async () => {
  const { client, ws, doc } = await joinedSession(0);
  try {
    doc.text("body").insert(0, "a");
    await Promise.resolve();
    assert.equal(ws.edits().length, 1);
    doc.text("body").insert(0, "b");
    doc.text("body").insert(0, "c");
    await tick();
    assert.equal(ws.edits().length, 1, "coalesced while one is in flight");
    ws.receive({ type: "ack", doc: "d", edit_id: ws.edits()[0].edit_id, version: 2 });
    await Promise.resolve();
    assert.equal(ws.edits().length, 2, "sent in a microtask after the ack");
    assert.deepEqual(ws.edits()[1].ops, [{ type: "seq", node: "text:body", edit: ["cb"] }]);
    assert.equal(ws.edits()[1].version, 2);
    assert.equal(doc.text("body").length, 8);
  } finally {
    client.close();
  }
});

test("batches leave in bursts of up to batchBurst: after an ack at once, then at the interval's pace", async () => {
  const { client, ws, doc } = await joinedSession(60_000, 3); // a timer would never fire in this test
  try {
    const ackLast = () => {
      const last = ws.edits().at(-1);
      ws.receive({ type: "ack", doc: "d", edit_id: last.edit_id, version: last.version + 1 });
    };
    doc.text("body").insert(0, "a");
    await Promise.resolve();
    doc.text("body").insert(0, "b"); // typed while the first is in flight
    await tick();
    assert.equal(ws.edits().length, 1);
    ackLast();
    await Promise.resolve();
    assert.equal(ws.edits().length, 2, "the edit that waited for the ack leaves with it, no timer");
    ackLast();
    doc.text("body").insert(0, "c");
    await Promise.resolve();
    assert.equal(ws.edits().length, 3, "the third of the burst");
    ackLast();
    doc.text("body").insert(0, "d");
    await tick();
    assert.equal(ws.edits().length, 3, "the budget is spent: the fourth waits for the interval");
    assert.equal(doc.value("text:body"), "dcbahello");
  } finally {
    client.close();
  }
});

test("the default pace: 25 ms on average, bursts of 4", () => {
  const client = new CowriteClient({ url: "ws://test/ws", WebSocket: FakeSocket });
  assert.equal(client.batchIntervalMs, 25);
  assert.equal(client.batchBurst, 4);
  for (const [given, kept] of [[0, 1], [-3, 1], [2.7, 2], ["x", 1]]) {
    assert.equal(new CowriteClient({ url: "ws://test/ws", WebSocket: FakeSocket, batchBurst: given }).batchBurst, kept);
  }
});

test("a retry waits out its delay even when new edits come in", async () => {
  const { client, ws, doc } = await joinedSession(0);
  try {
    doc.text("body").insert(0, "a");
    await Promise.resolve();
    assert.equal(ws.edits().length, 1);
    const first = ws.edits()[0];
    ws.receive({ type: "error", doc: "d", code: "rate_limited", edit_id: first.edit_id, message: "slow down" });
    doc.text("body").insert(0, "b");
    await tick();
    assert.equal(ws.edits().length, 1, "not resent before the retry delay (250 ms)");
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(ws.edits().length, 2);
    assert.equal(ws.edits()[1].edit_id, first.edit_id, "the same batch, resent");
  } finally {
    client.close();
  }
});
