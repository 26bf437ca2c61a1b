// The JavaScript client's whole per-message path as the server benchmark's scenario (b) drives it
// (1,000 clients on 100 documents, each typing a character a second; one Node generator process
// holds half of them): many CowriteClients in one process, each with one open document, fed the
// server's frames through their real WebSocket handler (JSON.parse, routing, ThinDocState,
// events, the batch sent back). What it reports: process CPU per received message, and the
// garbage collector's pauses (count, total, longest) with the heap in use at the end, because
// in one process serving hundreds of clients a GC pause delays every client at once (the tail
// of edit→visible).
//
//   node web/bench/client_path.mjs                 # the sources next to this file
//   node web/bench/client_path.mjs /tmp/old/src    # another copy of web/src (before/after runs)
//   DOCS=50 PER_DOC=10 EDITS=30000 node web/bench/client_path.mjs
//   WARM=55000 node web/bench/client_path.mjs      # measure once every cursor history is full
//
// The simulated server applies edits in order (no concurrency: every edit is made at the
// latest version, as at one keystroke a second): the author gets an `ack`, the others a
// `remote` with the same fields the real server sends (client_id, edit_id, vv). Seeded.
import path from "node:path";
import { PerformanceObserver } from "node:perf_hooks";
import { pathToFileURL, fileURLToPath } from "node:url";
import { rng } from "../test/seeded.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const src = path.resolve(process.argv[2] || path.join(here, "..", "src"));
const { CowriteClient } = await import(pathToFileURL(path.join(src, "client.js")).href);

const DOCS = Number(process.env.DOCS || 50);
const PER_DOC = Number(process.env.PER_DOC || 10);
const EDITS = Number(process.env.EDITS || 30000);
// edits before the measured ones (JIT warm-up): by default 20 per document; past
// historyVersions (1,000) per document, the clients' cursor histories are full (steady state)
const WARM = Number(process.env.WARM || DOCS * 20);


/** A WebSocket that hands what the client sends to `server`, and whose frames we deliver. */
class FakeSocket {
  constructor(url) {
    this.url = url;
    this.readyState = 1;
    this.onopen = this.onmessage = this.onclose = this.onerror = null;
    sockets.push(this);
  }
  send(data) {
    server.receive(this, JSON.parse(data));
  }
  close() {
    this.readyState = 3;
  }
}
const sockets = [];

const server = {
  docs: new Map(), // doc -> {version, members: [{socket, clientId, session}], vv}
  received: 0,
  sessions: 0,
  receive(socket, msg) {
    if (msg.type === "hello") {
      socket.clientId = msg.client_id;
      socket.session = `s${++this.sessions}`;
      deliver(socket, { type: "welcome", session: socket.session, user: { id: `k-${socket.session}`, name: msg.user?.name ?? "" }, heartbeat_s: 15 });
    } else if (msg.type === "join") {
      let d = this.docs.get(msg.doc);
      if (!d) this.docs.set(msg.doc, (d = { version: 0, members: [], vv: 0 }));
      d.members.push(socket);
      const presence = d.members.map((s) => ({ session: s.session, user: { id: `k-${s.session}`, name: "bench" } }));
      deliver(socket, { type: "joined", doc: msg.doc, mode: "thin", version: d.version, rights: ["admin", "chat", "read", "write"], snapshot: {}, roots: {}, state: {}, presence });
    } else if (msg.type === "edit") {
      const d = this.docs.get(msg.doc);
      d.version += 1;
      d.vv += 1;
      this.received += 1;
      const vv = { [`${3097549753922625750n + BigInt(d.members.indexOf(socket))}`]: d.vv }; // a 64-bit id, as the server
      const remote = JSON.stringify({ type: "remote", doc: msg.doc, version: d.version, ops: msg.ops, client_id: socket.clientId, edit_id: msg.edit_id, vv });
      for (const s of d.members) {
        if (s === socket) deliver(s, { type: "ack", doc: msg.doc, edit_id: msg.edit_id, version: d.version, vv });
        else queue.push([s, remote]); // one frame for every receiver, as the server does
      }
    }
    // presence, pong: nothing to answer
  },
};

let queue = [];
let delivered = 0;
function deliver(socket, msg) {
  queue.push([socket, JSON.stringify(msg)]);
}
/** The frames queued so far, each to its socket (what arrives meanwhile waits for the next). */
function drain() {
  const frames = queue;
  queue = [];
  for (const [socket, data] of frames) {
    delivered += 1;
    socket.onmessage({ data });
  }
  return frames.length;
}

const gc = { n: 0, ms: 0, max: 0, major: 0 };
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gc.n += 1;
    gc.ms += e.duration;
    gc.max = Math.max(gc.max, e.duration);
    if ((e.detail?.kind ?? e.kind) === 4) gc.major += 1;
  }
}).observe({ entryTypes: ["gc"] });

const clients = [];
for (let d = 0; d < DOCS; d++) {
  for (let k = 0; k < PER_DOC; k++) {
    // batchIntervalMs 0: here keystrokes come faster than 25 ms apart, in the benchmark a second
    // apart (the interval has always passed); the batch leaves in a microtask either way
    const client = new CowriteClient({ url: "ws://bench/ws", clientId: `bench-${d}-${k}`, user: { name: `bench ${k}` }, WebSocket: FakeSocket, batchIntervalMs: 0 });
    client.connect();
    sockets[sockets.length - 1].onopen();
    while (drain());
    const session = client.open(`doc-${d}`, { create: true });
    while (drain());
    clients.push({ client, session, text: session.text("body") });
  }
}
await Promise.all(clients.map((c) => c.session.ready));

const rand = rng(7);
const flush = async () => {
  await new Promise((resolve) => setImmediate(resolve)); // the batches leave in a microtask
  while (drain());
};
async function type(n) {
  // one keystroke per document per round, authors in turn (each at the latest version)
  for (let i = 0; i < n; ) {
    for (let d = 0; d < DOCS && i < n; d++, i++) {
      const c = clients[d * PER_DOC + Math.floor(rand() * PER_DOC)];
      c.text.insert(Math.floor(rand() * (c.text.length + 1)), "a");
    }
    await flush();
  }
}

await type(WARM); // warm up (JIT)
const d0 = delivered;
const r0 = server.received;
const gc0 = { ...gc };
const c0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
await type(EDITS);
const wall = Number(process.hrtime.bigint() - t0) / 1e6;
const cpu = process.cpuUsage(c0);
const msgs = delivered - d0;
const cpuMs = (cpu.user + cpu.system) / 1000;
for (let i = 0; i < clients.length; i++) {
  if (clients[i].session.value("text:body") !== clients[i - (i % PER_DOC)].session.value("text:body")) throw new Error("diverged");
}
console.log(
  JSON.stringify({
    src,
    clients: clients.length,
    warm_edits: WARM,
    edits: server.received - r0,
    messages: msgs,
    cpu_us_per_message: +((cpuMs * 1000) / msgs).toFixed(2),
    wall_us_per_message: +((wall * 1000) / msgs).toFixed(2),
    gc_pauses: gc.n - gc0.n,
    gc_major: gc.major - gc0.major,
    gc_ms: +(gc.ms - gc0.ms).toFixed(1),
    gc_max_ms: +gc.max.toFixed(1),
    gc_share: +((100 * (gc.ms - gc0.ms)) / wall).toFixed(1),
    heap_mb: +(process.memoryUsage().heapUsed / 1e6).toFixed(1),
  }),
);
process.exit(0);
