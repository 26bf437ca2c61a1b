// The shared thin-client test vectors (tests/vectors/thin/*.json, recorded from the real server
// Room; schema in tests/vectors/README.md) against the JavaScript client's core, ThinDocState.
// The Python SDK runs the same files (tests/client/test_thin_vectors.py). Run: node --test test/
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import { ThinDocState } from "../src/thin.js";

// COWRITE_VECTORS=<folder>: run other vectors (tests/vectors/differential.py writes fresh ones).
const OTHER = process.env.COWRITE_VECTORS;
const DIR = OTHER ? pathToFileURL(OTHER.replace(/\/?$/, "/")) : new URL("../../tests/vectors/thin/", import.meta.url);
const FILES = readdirSync(DIR).filter((f) => f.endsWith(".json")).sort();

/** Wire JSON with `"key": null` left out (the vectors' spelling of a register write). */
function clean(value) {
  if (Array.isArray(value)) return value.map(clean);
  if (value !== null && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = clean(v);
    if (out.type === "set" && out.key === null) delete out.key;
    return out;
  }
  return value;
}

/** Carry out one event; what the client then shows and sends, spelled like `expect`. */
function runStep(state, step) {
  const got = {};
  switch (step.event) {
    case "join": {
      const msg = state.joinMessage({ create: true });
      got.sends = {
        type: "join",
        doc: msg.doc,
        mode: msg.mode ?? "thin",
        version: msg.version ?? null,
        epoch: msg.epoch ?? "",
        state: msg.state ?? null,
        inflight: msg.inflight ?? null,
      };
      break;
    }
    case "send":
      got.sends = clean(state.takeBatch());
      break;
    case "local": {
      const op = step.op;
      if (op.type === "seq") state.localEdit(op.node, op.edit);
      else if (op.type === "set") state.localSet(op.node, op.key ?? null, op.value);
      else if (op.type === "del") state.localDelete(op.node, op.key);
      else state.localAdd(op.node, op.amount);
      break;
    }
    case "receive": {
      const msg = structuredClone(step.message);
      let changes = [];
      if (msg.type === "joined") changes = state.onJoined(msg);
      else if (msg.type === "remote") changes = state.onRemote(msg);
      else if (msg.type === "ack") changes = state.onAck(msg);
      else if (msg.type === "error") changes = state.onError(msg).changes;
      else if (msg.type === "resync") state.onResync();
      got.changes = clean(changes);
      break;
    }
    case "disconnect":
      state.onDisconnect();
      break;
    case "cursor_to_local":
      got.cursor = state.cursorToLocal(structuredClone(step.cursor));
      break;
    case "cursor_to_server":
      got.cursor = state.cursorToServer(step.node, step.anchor, step.head);
      break;
    default:
      throw new Error(`unknown event ${step.event}`);
  }
  state.checkInvariants();
  got.shows = Object.fromEntries([...state.local.keys()].sort().map((node) => [node, state.value(node)]));
  got.version = state.version;
  got.synced = state.synced;
  got.rejoin = state.rejoinNeeded;
  return got;
}

test("there are shared vectors", () => {
  assert.ok(FILES.length >= 20, `only ${FILES.length} vectors in ${DIR}`);
});

for (const file of FILES) {
  test(`vector ${file}`, () => {
    const vector = JSON.parse(readFileSync(new URL(file, DIR), "utf8"));
    const { doc, client_id: clientId, edit_id_prefix: editIdPrefix } = vector.client;
    const state = new ThinDocState(doc, clientId, { editIdPrefix });
    vector.steps.forEach((step, i) => {
      const got = runStep(state, step);
      assert.deepEqual(got, step.expect, `${file} step ${i} (${step.event})`);
    });
    assert.ok(state.synced);
    assert.equal(state.version, vector.final.version);
    for (const [node, value] of Object.entries(vector.final.document)) {
      assert.deepEqual(state.value(node), value);
    }
  });
}
