// CPU per local edit and per undo of the undo manager on a 200,000-character text (not a test:
// docs/protocol.md T11 reports its numbers). Each edit/undo is sent and acknowledged, as a
// client does. Run: node test/undo_bench.mjs [src dir, default ../src] [text length].
import { pathToFileURL } from "node:url";
import path from "node:path";

if (process.env.NODE_TEST_CONTEXT) process.exit(0); // `node --test test/` finds it: not a test
const src = path.resolve(process.argv[2] || new URL("../src", import.meta.url).pathname);
const LEN = Number(process.argv[3] || 200000);
const ot = await import(pathToFileURL(path.join(src, "ot.js")));
const { ThinDocState } = await import(pathToFileURL(path.join(src, "thin.js")));
const { UndoManager } = await import(pathToFileURL(path.join(src, "undo.js")));
const NODE = "text:body";

let seed = 7;
const rand = (n) => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed % n);
let clock = 0;
const state = new ThinDocState("d", "me", { editIdPrefix: "me" });
const undo = new UndoManager(state, NODE, { now: () => clock });
let text = "";
for (let i = 0; i < LEN; i++) text += String.fromCharCode(97 + (i % 26));
state.onJoined({ type: "joined", doc: "d", version: 0, rights: ["write"], snapshot: { [NODE]: { kind: "text", value: text } } });
let version = 0;
const roundTrip = () => {
  const msg = state.takeBatch();
  if (msg) state.onAck({ type: "ack", doc: "d", edit_id: msg.edit_id, version: ++version });
};
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000; // ms
};
const N = 2000;
// warm-up (JIT), then measured typing: one character a step at a random place
for (let i = 0; i < 200; i++) (clock += 1000), state.localEdit(NODE, ot.fromSplice(rand(LEN), 0, "x")), roundTrip();
let t0 = cpu();
let w0 = performance.now();
for (let i = 0; i < N; i++) {
  clock += 1000;
  state.localEdit(NODE, ot.fromSplice(rand(LEN), 0, "y"));
  roundTrip();
}
const edit = [(cpu() - t0) / N, (performance.now() - w0) / N];
const U = 200;
t0 = cpu();
w0 = performance.now();
for (let i = 0; i < U; i++) {
  clock += 1000;
  undo.undo();
  roundTrip();
}
const und = [(cpu() - t0) / U, (performance.now() - w0) / U];
console.log(JSON.stringify({ src, length: LEN, edit_cpu_ms: +edit[0].toFixed(4), edit_wall_ms: +edit[1].toFixed(4), undo_cpu_ms: +und[0].toFixed(4), undo_wall_ms: +und[1].toFixed(4) }));
