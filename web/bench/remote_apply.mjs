// Applying remote keystrokes to a large document through the JavaScript client's state
// (ThinDocState.onRemote), plus the position conversion an editor binding needs (code points ->
// UTF-16, as app.js's remoteChanges does). Issue 12's target: under 0.1 ms per keystroke on a
// 2 M-character document.
//
//   node web/bench/remote_apply.mjs                 # the sources next to this file
//   node web/bench/remote_apply.mjs /tmp/old/src    # another copy of web/src (before/after runs)
//   CHARS=2000000 EDITS=1000 node web/bench/remote_apply.mjs
//
// The document: CHARS code points of ASCII words with an emoji (two UTF-16 units) about every 100
// characters. Each edit is one remote keystroke (insert one character, or 1 in 5 a backspace) at
// a uniformly random position, from another client, one version at a time. Seeded: every run
// makes the same edits.
import path from "node:path";
import { pathToFileURL, fileURLToPath } from "node:url";
import { rng } from "../test/seeded.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const src = path.resolve(process.argv[2] || path.join(here, "..", "src"));
const { ThinDocState } = await import(pathToFileURL(path.join(src, "thin.js")).href);
const ot = await import(pathToFileURL(path.join(src, "ot.js")).href);

const CHARS = Number(process.env.CHARS || 2_000_000);
const EDITS = Number(process.env.EDITS || 1000);
const NODE = "text:body";


function documentText(n, rand) {
  const parts = [];
  let cps = 0;
  while (cps < n) {
    if (rand() < 0.01) parts.push("😀");
    else parts.push(rand() < 0.17 ? " " : String.fromCharCode(97 + Math.floor(rand() * 26)));
    cps++;
  }
  return parts.join("");
}

function run() {
  const rand = rng(12);
  const text = documentText(CHARS, rand);
  const state = new ThinDocState("bench", "me", { editIdPrefix: "me" });
  state.joinMessage();
  state.onJoined({ type: "joined", doc: "bench", version: 1, rights: ["read", "write"], snapshot: { [NODE]: { kind: "text", value: text } } });
  let length = ot.cpLength(text);
  const edits = [];
  for (let i = 0; i < EDITS; i++) {
    if (rand() < 0.2 && length > 1) {
      const pos = 1 + Math.floor(rand() * (length - 1));
      edits.push([pos - 1, -1]);
      length--;
    } else {
      const pos = Math.floor(rand() * (length + 1));
      edits.push([pos, String.fromCharCode(97 + Math.floor(rand() * 26))]);
      length++;
    }
  }
  // warm up (the first apply may convert the snapshot; JIT): one edit, then measure the rest
  let version = 1;
  const remote = (edit) => state.onRemote({ type: "remote", doc: "bench", version: ++version, client_id: "other", edit_id: `o-${version}`, ops: [{ type: "seq", node: NODE, edit: edit[0] ? [edit[0], edit[1]] : [edit[1]] }] });
  remote([0, "x"]);
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (const edit of edits) remote(edit);
  const t1 = process.hrtime.bigint();
  const c1 = process.cpuUsage(c0);
  // what an editor binding adds per change: the op's position in UTF-16 units
  let sink = 0;
  const t2 = process.hrtime.bigint();
  for (const [pos] of edits) {
    if (typeof state.rope === "function") sink += state.rope(NODE).cpToUtf16(pos);
    else sink += ot.cpToUtf16(state.value(NODE), pos);
  }
  const t3 = process.hrtime.bigint();
  const final = state.value(NODE);
  if (ot.cpLength(final) !== length + 1) throw new Error(`length ${ot.cpLength(final)} != ${length + 1}`);
  return { apply: Number(t1 - t0) / 1000 / EDITS, cpu: (c1.user + c1.system) / EDITS, convert: Number(t3 - t2) / 1000 / EDITS, sink };
}

console.log(`ThinDocState from ${src}: ${EDITS} remote keystrokes on a ${CHARS.toLocaleString("en")}-code-point document`);
for (let round = 1; round <= Number(process.env.ROUNDS || 3); round++) {
  const { apply, cpu, convert } = run();
  console.log(`  run ${round}: apply ${apply.toFixed(2)} µs/keystroke wall, ${cpu.toFixed(2)} µs CPU (onRemote: server + local value); cp->UTF-16 position ${convert.toFixed(2)} µs`);
}
