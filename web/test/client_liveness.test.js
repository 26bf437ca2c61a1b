// The client's watchdog (client.js _startLiveness): the server pings every heartbeat_s (from the
// welcome); a link silent for one heartbeat and a half (at least 10 s more) is taken for dead
// (half-open) and reopened. Mocked clocks: no test waits in real time.
import test from "node:test";
import assert from "node:assert/strict";

import { CowriteClient } from "../src/client.js";

class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.readyState = 1;
    this.sent = [];
    this.closedWith = null;
    FakeSocket.all.push(this);
    queueMicrotask(() => this.onopen && this.onopen());
  }
  send(data) {
    this.sent.push(JSON.parse(data));
  }
  close(code, reason) {
    this.readyState = 3;
    this.closedWith = { code, reason };
  }
  receive(msg) {
    this.onmessage({ data: JSON.stringify(msg) });
  }
}

async function connected(t, heartbeat) {
  t.mock.timers.enable({ apis: ["setInterval", "setTimeout", "Date"], now: 1_000_000 });
  FakeSocket.all = [];
  const client = new CowriteClient({ url: "ws://test/ws", WebSocket: FakeSocket, clientId: "me" });
  const statuses = [];
  client.on("status", (e) => statuses.push(e.status));
  client.connect();
  await Promise.resolve(); // onopen (a microtask): sends hello
  const ws = FakeSocket.all[0];
  ws.receive({ type: "welcome", session: "s1", user: { id: "u", name: "U", color: "#000" }, heartbeat_s: heartbeat });
  t.after(() => client.close());
  return { client, ws, statuses };
}

test("pings every 30 s keep the link; each is answered with a pong", async (t) => {
  const { client, ws } = await connected(t, 30);
  assert.equal(client.heartbeatS, 30);
  for (let i = 0; i < 5; i++) {
    t.mock.timers.tick(30_000);
    ws.receive({ type: "ping", nonce: 0 });
  }
  t.mock.timers.tick(40_000); // a late ping (server busy) is tolerated
  ws.receive({ type: "ping", nonce: 0 });
  assert.equal(ws.closedWith, null);
  assert.equal(FakeSocket.all.length, 1);
  assert.equal(client.connected, true);
  assert.equal(ws.sent.filter((m) => m.type === "pong").length, 6);
});

test("a server silent for 45 s (heartbeat 30) is dropped and the client reconnects", async (t) => {
  const { client, ws, statuses } = await connected(t, 30);
  t.mock.timers.tick(30_000);
  ws.receive({ type: "ping", nonce: 0 });
  t.mock.timers.tick(45_000); // exactly the limit: not yet
  assert.equal(ws.closedWith, null);
  t.mock.timers.tick(5_000); // the next check
  assert.deepEqual(ws.closedWith, { code: 4000, reason: "no frame from the server" });
  assert.equal(client.connected, false);
  assert.equal(statuses.at(-1), "reconnecting");
  t.mock.timers.tick(1_000); // the first retry waits at most initialDelayMs (300 ms)
  assert.equal(FakeSocket.all.length, 2);
});

test("a shorter heartbeat (15 s) gives a shorter limit: 25 s", async (t) => {
  const { ws } = await connected(t, 15);
  t.mock.timers.tick(25_000);
  assert.equal(ws.closedWith, null);
  t.mock.timers.tick(5_000);
  assert.notEqual(ws.closedWith, null);
});

for (const garbage of [null, "30", -1, 0, Number.NaN]) {
  test(`a welcome with heartbeat_s ${JSON.stringify(garbage)} counts as 30 s`, async (t) => {
    const { client, ws } = await connected(t, garbage);
    assert.equal(client.heartbeatS, 30);
    t.mock.timers.tick(45_000);
    assert.equal(ws.closedWith, null);
    t.mock.timers.tick(5_000);
    assert.notEqual(ws.closedWith, null);
  });
}
