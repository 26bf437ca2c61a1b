// The undo manager (src/undo.js) against a model server: random typing (every character a
// unique token), remote edits, restores to random earlier versions, lost connections, random
// deliveries, then random undo/redo. Nothing may ever hold a token twice, and all converge.
// Run: node --test test/. Knobs: UNDO_SEEDS=n (seeds 1..n, default 300), UNDO_EXTRA=s1,s2 (more
// seeds), TRACE=seed (print that schedule; TRACEPEER=c0 its messages), IDCHECK=1 (identities
// must stay on their characters).
import assert from "node:assert/strict";
import { test } from "node:test";
import * as ot from "../src/ot.js";
import { ThinDocState } from "../src/thin.js";
import { UndoManager } from "../src/undo.js";
import * as uo from "../src/undo_ops.js";
import { addRun, batchOp, deleteInserted, deletes, droppedInserts, lostDeletes, recordDeleted, runIndices } from "../src/undo_revive.js";

const NODE = "text:body";

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

/** docs/protocol.md's server for one text node, with REST restore (server/restore.py: the
 *  difference to an old value applied as a server edit named "restore-…"). */
class ModelServer {
  constructor(capacity) {
    this.text = "";
    this.version = 0;
    this.capacity = capacity;
    this.texts = [""]; // version -> text
    this.log = new Map();
    this.seen = new Map();
    this.restores = 0;
    this.races = 0;
    this.revived = new Set();
    this.revive = !process.env.NOREVIVE; // NOREVIVE=1: a server without revivals (as before)
  }
  get oldest() {
    return Math.max(0, this.version - this.capacity);
  }
  join(msg) {
    if (msg.version !== undefined && msg.version >= this.oldest && msg.version <= this.version) {
      const out = [{ type: "joined", doc: "d", version: msg.version, rights: ["write"] }];
      for (let v = msg.version + 1; v <= this.version; v++) out.push(this.remote(v));
      return out;
    }
    return [{ type: "joined", doc: "d", version: this.version, rights: ["write"], snapshot: { [NODE]: { kind: "text", value: this.text } } }];
  }
  remote(v) {
    const e = this.log.get(v);
    return { type: "remote", doc: "d", version: v, ops: [{ type: "seq", node: NODE, edit: e.op }], client_id: e.clientId, edit_id: e.editId };
  }
  _apply(op, clientId, editId) {
    const had = dupes(this.text).length;
    this.text = ot.apply(this.text, op);
    if (dupes(this.text).length) this.races++;
    if (process.env.RACES && dupes(this.text).length > had) console.log("RACE", this.seed, this.version + 1, clientId, editId, JSON.stringify(this.lastRevive || null), JSON.stringify(op));
    if (this.trace) console.log("APPLY", this.version + 1, clientId, editId, JSON.stringify(op), JSON.stringify(this.text), dupes(this.text).join(""));
    this.version++;
    this.texts.push(this.text);
    this.log.set(this.version, { op, clientId, editId });
    this.log.delete(this.version - this.capacity - 1);
    return this.remote(this.version);
  }
  edit(clientId, msg) {
    const key = `${clientId}\u0000${msg.edit_id}`;
    if (this.seen.has(key)) return { reply: [{ type: "ack", doc: "d", edit_id: msg.edit_id, version: this.seen.get(key) }], broadcast: [] };
    if (msg.version < this.oldest) {
      return { reply: [{ type: "error", code: "stale_version", message: "old", doc: "d", edit_id: msg.edit_id }, { type: "resync", doc: "d", reason: "old" }], broadcast: [] };
    }
    let op = msg.ops[0].edit;
    for (let v = msg.version + 1; v <= this.version; v++) op = ot.transform(op, this.log.get(v).op, "left");
    const others = [];
    for (let v = msg.version + 1; v <= this.version; v++) others.push(this.log.get(v).op);
    const dropped = this.revive ? this._judge(clientId, msg, others) : [];
    this.lastRevive = [msg.revive || null, dropped];
    if (dropped.length) op = ot.compose(op, deleteInserted(op, runIndices(dropped, NODE)));
    const remote = this._apply(op, clientId, msg.edit_id);
    this.seen.set(key, this.version);
    const ack = { type: "ack", doc: "d", edit_id: msg.edit_id, version: this.version };
    if (dropped.length) ack.dropped = dropped;
    return { reply: [ack], broadcast: [remote] };
  }
  /** docs/protocol.md T11 "Revivals" (the Room: rooms/revivals.py): an inserted code point that
   *  brings back a character a batch of the sender deleted is dropped when a restore came
   *  after the version the edit was made at (its sender had not seen it), when that character
   *  was brought back already, or when the edit revives what it deletes itself and someone
   *  deleted that first. */
  _judge(clientId, msg, others) {
    const dropped = [];
    const leave = new Set();
    for (const w of msg.withdraw || []) for (let j = 0; j < w.n; j++) leave.add(w.at + j);
    let restored = false;
    for (let v = msg.version + 1; v <= this.version; v++) restored ||= this.log.get(v).editId.startsWith("restore-");
    let lost = null;
    for (const run of msg.revive || []) {
      if (run.edit === msg.edit_id) {
        lost ??= lostDeletes(msg.ops[0].edit, others);
        for (let j = 0; j < run.n; j++) if (restored || lost.has(run.of + j)) leave.add(run.at + j);
        continue;
      }
      if (!this.seen.has(`${clientId}\u0000${run.edit}`)) continue; // not known: inserted
      for (let j = 0; j < run.n; j++) {
        const name = `${clientId}\u0000${run.edit}\u0000${run.node}\u0000${run.of + j}`;
        if (leave.has(run.at + j)) continue;
        if (restored || this.revived.has(name)) leave.add(run.at + j);
        else this.revived.add(name);
      }
    }
    for (const k of [...leave].sort((a, b) => a - b)) addRun(dropped, NODE, k);
    return dropped;
  }
  restore(version) {
    const op = ot.diff(this.text, this.texts[version]);
    if (!op.length) return null;
    return this._apply(op, "server", `restore-${++this.restores}-0`);
  }
}

class Peer {
  constructor(id, now) {
    this.id = id;
    this.state = new ThinDocState("d", id, { historyVersions: 50 });
    this.undo = new UndoManager(this.state, NODE, { now });
    this.inbox = [];
    this.outbox = [];
    this.connected = false;
  }
  text() {
    return this.state.value(NODE);
  }
}

function dupes(text) {
  const seen = new Set();
  const out = [];
  for (const ch of text) {
    if (seen.has(ch)) out.push(ch);
    seen.add(ch);
  }
  return out;
}

function simulate(seed, { steps = 300, capacity = 1000, drops = true } = {}) {
  const r = rng(seed);
  let clock = 0;
  const now = () => clock;
  const server = new ModelServer(capacity);
  const peers = [0, 1, 2].map((i) => new Peer(`c${i}`, now));
  let token = 0;
  const fresh = (n) => {
    let s = "";
    for (let i = 0; i < n; i++) s += String.fromCodePoint(0x4e00 + token++);
    return s;
  };
  const compensations = () => peers.reduce((n, p) => n + p.undo.compensations, 0);
  const trace = process.env.TRACE === String(seed);
  server.trace = trace;
  server.seed = seed;
  const check = (where) => {
    if (process.env.IDCHECK) idcheck(where);
    if (trace) console.log(where, JSON.stringify(server.text), peers.map((p) => `${p.id}${p.connected ? "" : "(off)"}:${JSON.stringify(p.text())} u${p.undo.undoStack.length}r${p.undo.redoStack.length}`).join(" "));
    // the thin client itself shows our in-flight batch twice between a snapshot holding it and
    // the ack that drops it (T8): with a short history, only the end state is checked
    if (capacity < 1000 && where !== "end") return;
    // an undo/redo sent before its client saw a restore or a concurrent delete of the text it
    // brings back: the server applies it (a duplicate) until that client's correction lands
    if ((server.races || compensations()) && where !== "end" && !process.env.STRICT) return;
    if (trace && where === "end" && dupes(server.text).length) for (const p of peers) dump(p);
    assert.deepEqual(dupes(server.text), [], `server holds a token twice after ${where} (seed ${seed})`);
    for (const p of peers) {
      if (trace && dupes(p.text()).length) dump(p);
      assert.deepEqual(dupes(p.text()), [], `${p.id} holds a token twice after ${where} (seed ${seed})`);
    }
  };
  const dump = (p) => {
    {
      {
        console.log(p.id, "edits", p.state._edits, "inflight", JSON.stringify(p.state.inflight && [...p.state.inflight.ops.values()].map((s) => s.payload)), "pending", JSON.stringify([...p.state.pending.values()].map((s) => s.payload)));
        for (const rec of p.undo.log) console.log("  ", rec.kind, rec.own ? "own" : "", rec.gen, rec.restore ? "RESTORE" : "", rec.version, JSON.stringify(rec.op), rec.source ? "src" : "");
      }
    }
  };
  const idcheck = (where) => {
    for (const q of peers) {
      const ids = q.undo._ids;
      if (!ids) continue;
      const text = Array.from(q.text());
      if (ids.length !== text.length) continue;
      q.seen ??= new Map();
      for (let k = 0; k < ids.length; k++) {
        const was = q.seen.get(ids[k]);
        if (was !== undefined && was !== text[k] && !q.reported) {
          q.reported = true;
          console.log("IDMISMATCH", where, q.id, ids[k], was, text[k]);
        }
        q.seen.set(ids[k], text[k]);
      }
    }
  };
  const connect = (p) => {
    p.connected = true;
    p.outbox.push(p.state.joinMessage());
  };
  const broadcast = (msgs, except = null) => {
    for (const q of peers) if (q !== except && q.connected) q.inbox.push(...msgs);
  };
  const deliverToServer = (p) => {
    const msg = p.outbox.shift();
    if (trace && p.id === process.env.TRACEPEER) console.log("OUT", p.id, JSON.stringify(msg).slice(0, 300));
    if (msg.type === "join") p.inbox.push(...server.join(msg));
    else if (msg.type === "edit") {
      const { reply, broadcast: out } = server.edit(p.id, msg);
      p.inbox.push(...reply);
      broadcast(out, p);
    }
  };
  const deliverToClient = (p) => {
    const msg = p.inbox.shift();
    if (trace && p.id === process.env.TRACEPEER) console.log("MSG", p.id, JSON.stringify(msg).slice(0, 300), "I", JSON.stringify(p.state.inflight && [...p.state.inflight.ops.values()].map((s) => s.payload)), "P", JSON.stringify([...p.state.pending.values()].map((s) => s.payload)), "log", p.undo.log.length);
    if (msg.type === "joined") p.state.onJoined(msg);
    else if (msg.type === "remote") p.state.onRemote(msg);
    else if (msg.type === "ack") p.state.onAck(msg);
    else if (msg.type === "error") p.state.onError(msg);
    else if (msg.type === "resync") p.state.onResync();
    p.state.checkInvariants();
    if (p.state.rejoinNeeded) p.outbox.push(p.state.joinMessage());
  };
  const send = (p) => {
    const batch = p.state.takeBatch();
    if (batch) p.outbox.push(batch);
  };
  const type = (p) => {
    const len = ot.cpLength(p.text());
    const pos = r.int(len + 1);
    const x = r.next();
    if (len && x < 0.3) p.state.localEdit(NODE, ot.fromSplice(Math.min(pos, len - 1), 1 + r.int(Math.min(4, len - Math.min(pos, len - 1))), ""));
    else if (len && x < 0.4) p.state.localEdit(NODE, ot.fromSplice(0, len, "")); // select all, delete
    else if (len && x < 0.5) p.state.localEdit(NODE, ot.fromSplice(Math.min(pos, len - 1), 1, fresh(1 + r.int(3))));
    else p.state.localEdit(NODE, ot.fromSplice(pos, 0, fresh(1 + r.int(3))));
  };
  const drop = (p) => {
    const reach = r.int(p.outbox.length + 1);
    for (let i = 0; i < reach; i++) deliverToServer(p);
    p.outbox = [];
    p.inbox = [];
    p.connected = false;
    p.state.onDisconnect();
  };

  for (const p of peers) connect(p);
  for (let i = 0; i < steps; i++) {
    clock += r.int(800);
    const p = r.pick(peers);
    const x = r.next();
    let what;
    if (x < 0.22) (what = "typing"), type(p);
    else if (x < 0.32) (what = "undo"), p.undo.undo();
    else if (x < 0.38) (what = "redo"), p.undo.redo();
    else if (x < 0.48) (what = "send"), p.connected && send(p);
    else if (x < 0.63) (what = "server delivery"), p.connected && p.outbox.length && deliverToServer(p);
    else if (x < 0.9) (what = "client delivery"), p.connected && p.inbox.length && deliverToClient(p);
    else if (x < 0.94) {
      what = "restore";
      // a restore brings back what that version held, also a race's transient duplicate
      // (docs/protocol.md, T11): restore the last version at or before it that held none
      let version = r.int(server.version + 1);
      while (version > 0 && dupes(server.texts[version]).length) version--;
      const msg = server.restore(version);
      if (msg) broadcast([msg]);
    } else if (x < 0.97) (what = "drop"), drops && p.connected && drop(p);
    else (what = "connect"), !p.connected && connect(p);
    p.state.checkInvariants();
    check(`${what} ${p.id}`);
  }
  for (const p of peers) if (!p.connected) connect(p);
  for (let round = 0; round < 10000; round++) {
    let busy = false;
    for (const p of peers) {
      send(p);
      while (p.outbox.length) (busy = true), deliverToServer(p), check("healing");
      while (p.inbox.length) (busy = true), deliverToClient(p), check("healing");
    }
    if (!busy && peers.every((p) => p.state.synced && p.state.joined)) break;
  }
  for (const p of peers) {
    assert.ok(p.state.synced, `${p.id} still has unacknowledged edits (seed ${seed})`);
    assert.equal(p.text(), server.text, `${p.id} diverged (seed ${seed})`);
  }
  check("end");
  return { server, peers, compensations: compensations(), races: server.races };
}

// Replicas always converge, and no schedule ends with a token twice or a dropped undo log
// (docs/protocol.md, T11). UNDO_SEEDS=n runs seeds 1..n instead (locally: 2,000 and more).
function sweep(seeds, options, extra = []) {
  const twice = [];
  const dropped = [];
  let compensated = 0;
  let races = 0;
  let all = [...Array.from({ length: seeds }, (_, i) => i + 1), ...extra.filter((s) => s > seeds)];
  if (process.env.UNDO_ONLY) all = process.env.UNDO_ONLY.split(",").map(Number); // just these seeds
  for (const seed of all) {
    try {
      const run = simulate(seed, options);
      compensated += run.compensations;
      races += run.races;
      if (run.peers.some((p) => p.undo.failures)) dropped.push(seed);
    } catch (err) {
      if (!/token twice after end/.test(String(err.message))) {
        err.message += ` (seed ${seed})`;
        throw err;
      }
      twice.push(seed);
    }
  }
  console.log(`${all.length} schedules: compensating deletes ${compensated}; transient duplicates on the server ${races}; a token twice at the end: [${twice}]; a dropped undo log: [${dropped}]`);
  assert.deepEqual(twice, [], `a token twice at the end in ${twice.length} schedules`);
  assert.deepEqual(dropped, [], `a dropped undo log in ${dropped.length} schedules`);
}

// Seeds that once ended with a token twice or a dropped undo log (before identities), kept as
// regressions beyond the first 300.
// 1936, 3433, 4895, 11208: a transient duplicate on the server before names were found for a
// batch laid out otherwise and for re-inserts without one (RACES=1 prints any).
// 8324 (snapshot rejoins): one, before a batch's re-insert was named while its records, rebased over
// a snapshot's diff, deleted more than the batch. 24882: STRICT=1 (a token twice in one client's text).
const REGRESSIONS = [398, 435, 516, 608, 644, 663, 770, 851, 950, 965, 988, 1015, 1203, 1320, 1497, 1581, 1832, 1919, 1929, 1936, 3433, 4895, 4944, 5287, 8324, 11208, 18871, 24882, 24907, 29917];
const SEEDS = Number(process.env.UNDO_SEEDS || 300);
if (process.env.UNDO_EXTRA) REGRESSIONS.push(...process.env.UNDO_EXTRA.split(",").map(Number)); // UNDO_SEEDS=0 UNDO_EXTRA=4944

test("undo/redo with remote edits and restores: replicas converge, never a token twice", () => {
  sweep(SEEDS, {}, REGRESSIONS);
});

test("the same across rejoins from a snapshot (history exceeded)", () => {
  sweep(SEEDS, { capacity: 3 }, REGRESSIONS);
});

test("undo then redo round-trips local edits exactly when nothing remote happens", () => {
  for (let seed = 1; seed <= 200; seed++) {
    const r = rng(seed);
    let clock = 0;
    const state = new ThinDocState("d", "c", {});
    const undo = new UndoManager(state, NODE, { now: () => clock });
    const texts = [state.value(NODE)];
    let token = 0;
    for (let i = 0; i < 20; i++) {
      clock += 1000; // each edit its own step
      const len = ot.cpLength(state.value(NODE));
      const pos = r.int(len + 1);
      const at = Math.min(pos, len - 1);
      if (len && r.next() < 0.4) state.localEdit(NODE, ot.fromSplice(at, 1 + r.int(Math.min(3, len - at)), r.next() < 0.5 ? "" : String.fromCodePoint(0x4e00 + token++)));
      else state.localEdit(NODE, ot.fromSplice(pos, 0, String.fromCodePoint(0x4e00 + token++) + "x"));
      texts.push(state.value(NODE));
    }
    const k = 1 + r.int(20);
    for (let i = 0; i < k; i++) assert.ok(undo.undo(), `nothing to undo (seed ${seed})`);
    assert.equal(state.value(NODE), texts[texts.length - 1 - k], `undo ${k} (seed ${seed})`);
    for (let i = 0; i < k; i++) assert.ok(undo.redo());
    assert.equal(state.value(NODE), texts[texts.length - 1], `redo ${k} (seed ${seed})`);
    while (undo.undo());
    assert.equal(state.value(NODE), "", `undo all (seed ${seed})`);
  }
});

test("typing within groupMs is one undo step", () => {
  let clock = 0;
  const state = new ThinDocState("d", "c", {});
  const undo = new UndoManager(state, NODE, { now: () => clock });
  for (const ch of "hello") {
    clock += 100;
    state.localEdit(NODE, ot.fromSplice(ot.cpLength(state.value(NODE)), 0, ch));
  }
  clock += 2000;
  state.localEdit(NODE, ot.fromSplice(5, 0, " world"));
  undo.undo();
  assert.equal(state.value(NODE), "hello");
  undo.undo();
  assert.equal(state.value(NODE), "");
  assert.equal(undo.undo(), null);
  undo.redo();
  undo.redo();
  assert.equal(state.value(NODE), "hello world");
});

test("select all, delete, restore, undo: nothing is duplicated", () => {
  const server = new ModelServer(1000);
  const a = new Peer("a", () => 0);
  const sync = () => {
    for (let i = 0; i < 20; i++) {
      const batch = a.state.takeBatch();
      if (batch) a.outbox.push(batch);
      while (a.outbox.length) {
        const msg = a.outbox.shift();
        if (msg.type === "join") a.inbox.push(...server.join(msg));
        else a.inbox.push(...server.edit(a.id, msg).reply);
      }
      while (a.inbox.length) {
        const msg = a.inbox.shift();
        if (msg.type === "joined") a.state.onJoined(msg);
        else if (msg.type === "remote") a.state.onRemote(msg);
        else if (msg.type === "ack") a.state.onAck(msg);
      }
    }
  };
  a.outbox.push(a.state.joinMessage());
  sync();
  a.state.localEdit(NODE, ot.fromSplice(0, 0, "hello world"));
  sync();
  const old = server.version;
  a.state.localEdit(NODE, ot.fromSplice(0, 11, ""));
  sync();
  a.state.onRemote(server.restore(old));
  assert.equal(a.text(), "hello world");
  a.undo.undo(); // the delete is not undone (the restore brought the text back): nothing happens
  sync();
  assert.equal(server.text, "hello world");
  assert.equal(a.text(), "hello world");
  // the restore adopted as ours is one undo step
  a.state.localEdit(NODE, ot.fromSplice(0, 11, ""));
  sync();
  const msg = server.restore(old);
  a.state.onRemote(msg);
  a.undo.adoptRestore(msg.version, 1);
  assert.equal(a.text(), "hello world");
  a.undo.undo();
  sync();
  assert.equal(server.text, "");
  a.undo.redo();
  sync();
  assert.equal(server.text, "hello world");
});

test("an adopted restore undone and redone, then our own replace undone as typed", () => {
  const server = new ModelServer(1000);
  let clock = 0;
  const a = new Peer("a", () => (clock += 1000));
  const sync = () => {
    for (let i = 0; i < 10; i++) {
      const batch = a.state.takeBatch();
      if (batch) a.outbox.push(batch);
      while (a.outbox.length) {
        const msg = a.outbox.shift();
        a.inbox.push(...(msg.type === "join" ? server.join(msg) : server.edit(a.id, msg).reply));
      }
      while (a.inbox.length) {
        const msg = a.inbox.shift();
        if (msg.type === "joined") a.state.onJoined(msg);
        else if (msg.type === "ack") a.state.onAck(msg);
      }
    }
  };
  a.outbox.push(a.state.joinMessage());
  sync();
  a.state.localEdit(NODE, ["first draft"]);
  sync();
  const draft = server.version;
  a.state.localEdit(NODE, ot.fromSplice(0, 11, "second"));
  sync();
  const msg = server.restore(draft);
  a.state.onRemote(msg);
  a.undo.adoptRestore(msg.version, 1);
  const steps = [["undo", "second"], ["redo", "first draft"], ["undo", "second"], ["undo", "first draft"], ["undo", ""]];
  for (const [step, want] of steps) {
    a.undo[step]();
    sync();
    assert.equal(server.text, want, step);
    assert.equal(a.text(), want, step);
  }
});

test("two clients delete the same text concurrently: only one undo brings it back", () => {
  const server = new ModelServer(1000);
  let clock = 0;
  const peers = [new Peer("a", () => (clock += 1000)), new Peer("b", () => (clock += 1000))];
  const pump = () => {
    for (let i = 0; i < 20; i++) {
      for (const p of peers) {
        const batch = p.state.takeBatch();
        if (batch) p.outbox.push(batch);
        while (p.outbox.length) {
          const msg = p.outbox.shift();
          if (msg.type === "join") p.inbox.push(...server.join(msg));
          else {
            const { reply, broadcast } = server.edit(p.id, msg);
            p.inbox.push(...reply);
            for (const q of peers) if (q !== p) q.inbox.push(...broadcast);
          }
        }
      }
      for (const p of peers) {
        while (p.inbox.length) {
          const msg = p.inbox.shift();
          if (msg.type === "joined") p.state.onJoined(msg);
          else if (msg.type === "remote") p.state.onRemote(msg);
          else if (msg.type === "ack") p.state.onAck(msg);
        }
      }
    }
  };
  for (const p of peers) p.outbox.push(p.state.joinMessage());
  pump();
  peers[0].state.localEdit(NODE, ot.fromSplice(0, 0, "abcdef"));
  pump();
  for (const p of peers) p.state.localEdit(NODE, ot.fromSplice(1, 3, "")); // both delete "bcd"
  pump();
  assert.equal(server.text, "aef");
  for (const p of peers) p.undo.undo();
  pump();
  assert.equal(server.text, "abcdef");
  for (const p of peers) assert.equal(p.text(), "abcdef");
});

test("invertible ops: compose, transform and invert agree with ot.js", () => {
  const r = rng(7);
  const randomOp = (text) => {
    const len = ot.cpLength(text);
    const pos = r.int(len + 1);
    const del = r.int(len - pos + 1);
    return ot.fromSplice(pos, del, r.next() < 0.7 ? String.fromCodePoint(0x4e00 + r.int(100)) + "😀" : "");
  };
  for (let i = 0; i < 500; i++) {
    const base = Array.from({ length: r.int(8) }, () => r.pick(["a", "b", "😀", "é"])).join("");
    const a = randomOp(base);
    const b = randomOp(base);
    const ra = uo.fromPlain(a, base);
    assert.deepEqual(uo.toPlain(ra), a);
    assert.equal(ot.apply(ot.apply(base, a), uo.toPlain(uo.invert(ra))), base);
    for (const side of ["left", "right"]) {
      const t = uo.transform(ra, b, side);
      assert.deepEqual(uo.toPlain(t), ot.transform(a, b, side));
      assert.deepEqual(t, uo.fromPlain(ot.transform(a, b, side), ot.apply(base, b)));
    }
    const after = ot.apply(base, a);
    const c = randomOp(after);
    const rc = uo.fromPlain(c, after);
    assert.deepEqual(uo.toPlain(uo.compose(ra, rc)), ot.compose(a, c));
    assert.deepEqual(uo.compose(ra, rc), uo.fromPlain(ot.compose(a, c), base));
    // identities: carried through invert and compose, and placing an op on the text it was made
    // on (retarget) changes nothing
    let next = 1;
    const ids0 = Array.from(Array.from(base), () => next++);
    const ia = uo.fromPlain(a, base, (x, y) => ids0.slice(x, y), () => next++);
    const ids1 = uo.applyIds(ids0, ia);
    const ic = uo.fromPlain(c, after, (x, y) => ids1.slice(x, y), () => next++);
    assert.deepEqual(uo.invert(uo.invert(ia)), ia);
    assert.deepEqual(uo.applyIds(ids0, uo.compose(ia, ic)), uo.applyIds(ids1, ic));
    assert.deepEqual(uo.applyIds(uo.applyIds(ids1, ic), uo.invert(uo.compose(ia, ic))), ids0);
    assert.deepEqual(uo.retarget(ia, Array.from(base), ids0), ia);
  }
});

test("relayout: the same change of the same characters in another layout, by identity", () => {
  const r = rng(11);
  for (let i = 0; i < 300; i++) {
    const base = Array.from({ length: 1 + r.int(9) }, () => r.pick(["a", "b", "😀"])).join("");
    const len = ot.cpLength(base);
    const pos = r.int(len + 1);
    const op = ot.fromSplice(pos, r.int(len - pos + 1), r.next() < 0.7 ? "xy" : "");
    let next = 1;
    const ids = Array.from({ length: len }, () => next++);
    const rich = uo.fromPlain(op, base, (x, y) => ids.slice(x, y), () => next++);
    assert.deepEqual(uo.relayout(rich, ids, ids), rich); // the same layout: unchanged
    // another order of the same identities: the same identities deleted and kept, each insert
    // right after the character it follows in the text
    const to = ids.slice().sort(() => r.next() - 0.5);
    const moved = uo.relayout(rich, ids, to);
    const after = uo.applyIds(to, moved);
    assert.deepEqual([...after].sort((x, y) => x - y), [...uo.applyIds(ids, rich)].sort((x, y) => x - y));
    for (const c of rich) {
      if (typeof c !== "object" || !c.i || pos === 0) continue;
      assert.equal(after[after.indexOf(c.ids[0]) - 1], ids[pos - 1]);
    }
    // a layout without one of those identities: null (the caller falls back to the text's)
    if (pos > 0 && uo.insertedIds(rich).length) assert.equal(uo.relayout(rich, ids, to.filter((id) => id !== ids[pos - 1])), null);
  }
});

test("withoutEchoes: a re-insert someone else made at that place is not made twice", () => {
  const op = [2, { i: ["a", "b"], ids: [7, 8] }, { d: ["c"], ids: [3] }];
  // the same code points at the same position: dropped (in order); the delete stays
  assert.deepEqual(uo.withoutEchoes(op, [2, "xa"]), [2, { i: ["b"], ids: [8] }, { d: ["c"], ids: [3] }]);
  assert.deepEqual(uo.withoutEchoes(op, [2, "ba"]), [2, { i: ["b"], ids: [8] }, { d: ["c"], ids: [3] }]);
  // elsewhere, or other code points: unchanged
  assert.deepEqual(uo.withoutEchoes(op, [1, "ab"]), op);
  assert.deepEqual(uo.withoutEchoes(op, [2, "zz", -1]), op);
  assert.deepEqual(uo.withoutEchoes(op, [-1]), op);
});

test("garbage restore answers adopt nothing", () => {
  const state = new ThinDocState("d", "c", {});
  const undo = new UndoManager(state, NODE, {});
  state.localEdit(NODE, ["abc"]);
  for (const [v, n] of [["7", 1], [7, 0], [null, null], [3.5, 1], [7, -2]]) undo.adoptRestore(v, n);
  assert.equal(undo.undoStack.length, 1);
  undo.undo();
  assert.equal(state.value(NODE), "");
});

test("revivals: an ack's dropped code points leave the local text; a catch-up of our batch alike", () => {
  for (const viaCatchUp of [false, true]) {
    const state = new ThinDocState("d", "me", { editIdPrefix: "me" });
    const undo = new UndoManager(state, NODE, { now: () => 0 });
    state.onJoined({ type: "joined", doc: "d", version: 0, rights: ["write"], snapshot: { [NODE]: { kind: "text", value: "ac" } } });
    state.localEdit(NODE, [1, "bX"]);
    const batch = state.takeBatch();
    assert.equal(batch.revive, undefined); // nothing brought back: no names
    state.localEdit(NODE, [4, "!"]);
    if (viaCatchUp) {
      state.onDisconnect();
      state.onJoined({ type: "joined", doc: "d", version: 0, rights: ["write"] });
      state.onRemote({ type: "remote", doc: "d", version: 1, ops: [{ type: "seq", node: NODE, edit: [1, "X"] }], client_id: "me", edit_id: batch.edit_id });
    } else {
      const changes = state.onAck({ type: "ack", doc: "d", edit_id: batch.edit_id, version: 1, dropped: [{ node: NODE, at: 0, n: 1 }, { node: NODE, at: -1, n: 5 }, { node: "x", at: 1, n: 1 }] });
      assert.deepEqual(changes.map((c) => c.edit), [[1, -1]]);
    }
    assert.equal(state.value(NODE), "aXc!");
    state.checkInvariants();
    assert.equal(undo.failures, 0);
  }
  assert.equal(droppedInserts([2, "ab"], [1, "ab"]), null);
  assert.deepEqual([...droppedInserts(["abc", -1], ["b", -1])], [0, 2]);
  assert.deepEqual([...lostDeletes([1, -2, 2, -1], [["xy", 5, -1]])], [2]);
});

// A batch whose records the log laid out otherwise than the text (a tie) still names what it
// deletes, by code point in the order the batch's op deletes them (seed 4895 once raced).
test("batchOp finds the characters of a batch laid out otherwise", () => {
  const rec = (op) => ({ own: true, gen: 2, kind: "edit", op });
  const log = [
    rec([{ d: ["专", "丒"], ids: [5, 4] }, 9, { d: ["丏", "丟"], ids: [3, 7] }]),
    rec([8, { i: ["两", "严"], ids: [12, 13] }, { d: ["与"], ids: [11] }]),
    rec([8, { i: ["与"], ids: [11] }, { d: ["两", "严"], ids: [12, 13] }]),
    rec([8, { i: ["丩", "个"], ids: [19, 20] }, { d: ["与"], ids: [11] }]),
  ];
  const payload = [-4, 8, "丩个", -1];
  const base = "专丒丏丟丅丆东丝丞両丢不与";
  assert.equal(batchOp(log, 2, payload, deletes), null); // not the payload as composed
  const c = batchOp(log, 2, payload, deletes, base);
  assert.deepEqual(uo.toPlain(c), payload);
  const named = new Map();
  recordDeleted(c, "e-2", named);
  assert.deepEqual([...named], [[5, { edit: "e-2", of: 0 }], [4, { edit: "e-2", of: 1 }], [3, { edit: "e-2", of: 2 }], [7, { edit: "e-2", of: 3 }], [11, { edit: "e-2", of: 4 }]]);
  // other characters than the payload's: no names
  assert.equal(batchOp(log, 2, [-4, 8, "丩x", -1], deletes, base), null);
  assert.equal(batchOp(log, 2, payload, deletes, "专丒丏丟丅丆东丝丞両丢不z"), null);
});
