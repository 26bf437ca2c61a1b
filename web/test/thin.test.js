// The thin client (src/thin.js) against a model of the server's thin-client protocol: random
// schedules of typing, message delivery, lost connections (with messages lost in flight),
// rejoins from a version (catch-up) or from a snapshot (history exceeded). Run: node --test test/
import assert from "node:assert/strict";
import { test } from "node:test";
import { textChecksum } from "../src/checksum.js";
import * as ot from "../src/ot.js";
import { ThinDocState } from "../src/thin.js";

const NODE = "text:body";
const ALPHABET = ["a", "b", "c", "é", "中", "😀", "👍🏽", "🇫🇷", "\n", "𝔘"];

function rng(seed) {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
  return { next, int: (n) => Math.floor(next() * n), pick: (a) => a[Math.floor(next() * a.length)] };
}

/** The server side of docs/protocol.md for one text node (what cowrite.rooms.room does). */
class ModelServer {
  constructor(capacity) {
    this.text = "";
    this.version = 0;
    this.capacity = capacity;
    this.log = new Map(); // version -> {op, clientId, editId}
    this.seen = new Map(); // clientId\0editId -> version
  }
  get oldest() {
    return Math.max(0, this.version - this.capacity);
  }
  join(clientId, msg) {
    const out = [];
    if (msg.version !== undefined && msg.version >= this.oldest && msg.version <= this.version) {
      out.push({ type: "joined", doc: "d", version: msg.version, rights: ["write"] });
      for (let v = msg.version + 1; v <= this.version; v++) {
        const e = this.log.get(v);
        out.push({ type: "remote", doc: "d", version: v, ops: [{ type: "seq", node: NODE, edit: e.op }], client_id: e.clientId, edit_id: e.editId });
      }
    } else {
      out.push({ type: "joined", doc: "d", version: this.version, rights: ["write"], snapshot: { [NODE]: { kind: "text", value: this.text } }, roots: { body: NODE } });
    }
    return out;
  }
  edit(clientId, msg) {
    const key = `${clientId}\u0000${msg.edit_id}`;
    if (this.seen.has(key)) return { reply: [{ type: "ack", doc: "d", edit_id: msg.edit_id, version: this.seen.get(key) }], broadcast: [] };
    if (msg.version < this.oldest) {
      return { reply: [{ type: "error", code: "stale_version", message: "old", doc: "d", edit_id: msg.edit_id }, { type: "resync", doc: "d", reason: "old" }], broadcast: [] };
    }
    let op = msg.ops[0].edit;
    for (let v = msg.version + 1; v <= this.version; v++) op = ot.transform(op, this.log.get(v).op, "left");
    this.text = ot.apply(this.text, op);
    this.version++;
    this.log.set(this.version, { op, clientId, editId: msg.edit_id });
    this.log.delete(this.version - this.capacity - 1);
    this.seen.set(key, this.version);
    const check = { type: "checksum", doc: "d", version: this.version, sums: { [NODE]: textChecksum(this.text) } };
    return {
      reply: [{ type: "ack", doc: "d", edit_id: msg.edit_id, version: this.version }, check],
      broadcast: [{ type: "remote", doc: "d", version: this.version, ops: [{ type: "seq", node: NODE, edit: op }], client_id: clientId, edit_id: msg.edit_id }, check],
    };
  }
}

class Peer {
  constructor(id) {
    this.id = id;
    this.state = new ThinDocState("d", id, { historyVersions: 50 });
    this.inbox = []; // server -> client, in order
    this.outbox = []; // client -> server, in order
    this.connected = false;
    this.typed = [];
  }
  text() {
    return this.state.value(NODE);
  }
}

function simulate(seed, { steps = 400, capacity = 1000, insertOnly = false } = {}) {
  const r = rng(seed);
  const server = new ModelServer(capacity);
  const peers = [0, 1, 2].map((i) => new Peer(`c${i}`));
  let token = 0;
  let checks = 0;

  const connect = (p) => {
    p.connected = true;
    p.outbox.push(p.state.joinMessage());
  };
  const deliverToServer = (p) => {
    const msg = p.outbox.shift();
    if (msg.type === "join") p.inbox.push(...server.join(p.id, msg));
    else if (msg.type === "edit") {
      const { reply, broadcast } = server.edit(p.id, msg);
      p.inbox.push(...reply);
      for (const q of peers) if (q !== p && q.connected && q.state.joined !== undefined) q.inbox.push(...broadcast.filter(() => q.connected));
    }
  };
  const deliverToClient = (p) => {
    const msg = p.inbox.shift();
    if (msg.type === "joined") p.state.onJoined(msg);
    else if (msg.type === "remote") p.state.onRemote(msg);
    else if (msg.type === "ack") p.state.onAck(msg);
    else if (msg.type === "error") p.state.onError(msg);
    else if (msg.type === "resync") p.state.onResync();
    else if (msg.type === "checksum") {
      if (p.state.version === msg.version && p.state.joined) checks++;
      assert.deepEqual(p.state.onChecksum(msg), [], `${p.id} failed a checksum (seed ${seed})`);
    }
    p.state.checkInvariants();
    if (p.state.rejoinNeeded) p.outbox.push(p.state.joinMessage());
  };
  const send = (p) => {
    const batch = p.state.takeBatch();
    if (batch) p.outbox.push(batch);
  };
  const type = (p) => {
    const text = p.text();
    const len = ot.cpLength(text);
    const pos = r.int(len + 1);
    if (!insertOnly && len && r.next() < 0.35) {
      p.state.localEdit(NODE, ot.fromSplice(pos > 0 ? pos - 1 : 0, Math.min(1 + r.int(3), len - Math.max(0, pos - 1)), ""));
    } else {
      // a unique marker per keystroke (for the "nothing lost, nothing doubled" check)
      const mark = insertOnly ? String.fromCodePoint(0xe000 + token++) : "";
      if (mark) p.typed.push(mark);
      p.state.localEdit(NODE, ot.fromSplice(pos, 0, mark + r.pick(ALPHABET)));
    }
    p.state.checkInvariants();
  };
  const drop = (p) => {
    // the connection dies: some of what was sent may still reach the server, replies are lost
    const reach = r.int(p.outbox.length + 1);
    for (let i = 0; i < reach; i++) deliverToServer(p);
    p.outbox = [];
    p.inbox = [];
    p.connected = false;
    p.state.onDisconnect();
  };

  for (const p of peers) connect(p);
  for (let i = 0; i < steps; i++) {
    const p = r.pick(peers);
    const x = r.next();
    if (x < 0.3) type(p);
    else if (x < 0.45) {
      if (p.connected) send(p);
    } else if (x < 0.65) {
      if (p.connected && p.outbox.length) deliverToServer(p);
    } else if (x < 0.93) {
      if (p.connected && p.inbox.length) deliverToClient(p);
    } else if (x < 0.97) {
      if (p.connected) drop(p);
    } else if (!p.connected) connect(p);
  }
  // heal: everyone connects and the network drains
  for (const p of peers) if (!p.connected) connect(p);
  for (let round = 0; round < 10000; round++) {
    let busy = false;
    for (const p of peers) {
      send(p);
      while (p.outbox.length) {
        deliverToServer(p);
        busy = true;
      }
      while (p.inbox.length) {
        deliverToClient(p);
        busy = true;
      }
    }
    if (!busy && peers.every((p) => p.state.synced && p.state.joined)) break;
  }
  assert.ok(checks > 0, `no checksum was verified (seed ${seed})`);
  for (const p of peers) {
    assert.ok(p.state.synced, `${p.id} still has unacknowledged edits`);
    assert.equal(p.text(), server.text, `${p.id} diverged (seed ${seed})`);
  }
  if (insertOnly) {
    const typed = peers.flatMap((p) => p.typed).sort();
    const have = Array.from(server.text.matchAll(/[\ue000-\uf8ff]/gu), (m) => m[0]).sort();
    assert.deepEqual(have, typed, `lost or doubled keystrokes (seed ${seed})`);
  }
  return server;
}

test("random schedules converge", () => {
  for (let seed = 1; seed <= 150; seed++) simulate(seed);
});

test("nothing typed is lost or doubled, across lost connections", () => {
  for (let seed = 1; seed <= 150; seed++) simulate(seed, { insertOnly: true });
});

test("rejoins past the server's history merge from a snapshot", () => {
  for (let seed = 1; seed <= 150; seed++) simulate(seed, { capacity: 3, insertOnly: true });
  for (let seed = 151; seed <= 250; seed++) simulate(seed, { capacity: 2 });
});

test("code points on the wire, UTF-16 in JavaScript", () => {
  assert.equal(ot.cpLength("a😀b"), 3);
  assert.equal(ot.apply("a😀b", [1, -1, "🇫🇷"]), "a🇫🇷b");
  assert.equal(ot.cpToUtf16("😀😀x", 2), 4);
  assert.equal(ot.utf16ToCp("😀😀x", 4), 2);
  assert.deepEqual(ot.diff("x😀y", "x😁y"), [1, "😁", -1]);
  assert.deepEqual(ot.transform([1, "A"], [1, "B"], "left"), [1, "A"]);
  assert.deepEqual(ot.transform([1, "A"], [1, "B"], "right"), [2, "A"]);
});

test("a rejoin answered with the exact changes since our state rebases our edits over them", () => {
  const s = new ThinDocState("d", "me");
  s.onJoined({ type: "joined", doc: "d", version: 3, epoch: "A", rights: ["write"], state: { 7: 3 }, snapshot: { [NODE]: { kind: "text", value: "ab ab" } }, roots: { body: NODE } });
  s.onRemote({ type: "remote", doc: "d", version: 4, ops: [{ type: "seq", node: NODE, edit: [5, "!"] }], vv: { 7: 4 } });
  assert.deepEqual(s.vv, { 7: 4 });
  s.localEdit(NODE, [3, "X"]); // "ab Xab!": unsent
  const join = s.joinMessage();
  assert.equal(join.epoch, "A");
  assert.deepEqual(join.state, { 7: 4 });
  // another instance (epoch B): since that state someone typed "ab" at the start
  s.onJoined({ type: "joined", doc: "d", version: 10, epoch: "B", rights: ["write"], state: { 7: 4, 9: 2 }, ops: [{ type: "seq", node: NODE, edit: ["ab"] }] });
  assert.equal(s.value(NODE), "abab Xab!");
  assert.equal(s.version, 10);
  assert.deepEqual(s.vv, { 7: 4, 9: 2 });
  const batch = s.takeBatch();
  assert.equal(batch.version, 10);
  assert.deepEqual(batch.ops[0].edit, [5, "X"]);
});

test("a rejoin by state whose in-flight batch was applied counts it acknowledged first", () => {
  const s = new ThinDocState("d", "me");
  s.onJoined({ type: "joined", doc: "d", version: 1, rights: ["write"], state: { 7: 1 }, snapshot: { [NODE]: { kind: "text", value: "The middle." } }, roots: { body: NODE } });
  s.localEdit(NODE, [11, " [in flight]"]);
  const sent = s.takeBatch();
  s.onDisconnect(); // the ack is lost
  s.localEdit(NODE, [23, " [offline]"]);
  const join = s.joinMessage();
  assert.equal(join.inflight, sent.edit_id);
  s.onJoined({ type: "joined", doc: "d", version: 9, rights: ["write"], state: { 7: 9 }, acked: sent.edit_id, ops: [{ type: "seq", node: NODE, edit: ["[ada] "] }] });
  assert.equal(s.inflight, null);
  assert.equal(s.value(NODE), "[ada] The middle. [in flight] [offline]");
  assert.deepEqual(s.takeBatch().ops[0].edit, [29, " [offline]"]);
});

test("a rejoin by state whose batch stands beside a deleted element: the stretch comes whole", () => {
  // "bc" typed after "a"; the server applied it after "a" was replaced by another "a" and cannot
  // say on which side of the deleted "a" our copy has it: it replaces that stretch whole
  const s = new ThinDocState("d", "me");
  s.onJoined({ type: "joined", doc: "d", version: 1, rights: ["write"], state: { 7: 1 }, snapshot: { [NODE]: { kind: "text", value: "a" } }, roots: { body: NODE } });
  s.localEdit(NODE, [1, "bc"]);
  const sent = s.takeBatch();
  s.onDisconnect(); // the ack is lost
  s.localEdit(NODE, [3, "d"]);
  s.onJoined({ type: "joined", doc: "d", version: 3, rights: ["write"], state: { 7: 3, 8: 2 }, acked: sent.edit_id, ops: [{ type: "seq", node: NODE, edit: ["abc", -3] }] });
  assert.equal(s.inflight, null);
  assert.equal(s.value(NODE), "abcd");
  assert.deepEqual(s.takeBatch().ops[0].edit, [3, "d"]);
});
