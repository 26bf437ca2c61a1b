// The shared undo vectors (tests/vectors/undo/*.json, recorded from the real server Room by
// tests/vectors/undo_generate.py with the Python SDK's UndoManager; schema in
// tests/vectors/README.md) against the JavaScript client: ThinDocState + UndoManager (undo.js)
// must show, send and change exactly what the Python client did. Run: node --test test/
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { ThinDocState } from "../src/thin.js";
import { UndoManager } from "../src/undo.js";

const DIR = new URL("../../tests/vectors/undo/", import.meta.url);
const FILES = readdirSync(DIR).filter((f) => f.endsWith(".json")).sort();

function plain(value) {
  return JSON.parse(JSON.stringify(value));
}

for (const file of FILES) {
  test(`undo vector ${file}`, () => {
    const vector = JSON.parse(readFileSync(new URL(file, DIR), "utf8"));
    const { doc, client_id: clientId, edit_id_prefix: prefix, node } = vector.client;
    const state = new ThinDocState(doc, clientId, { editIdPrefix: prefix });
    let clock = 0;
    const undo = new UndoManager(state, node, { now: () => (clock += 1000) }); // never one step
    vector.steps.forEach((step, i) => {
      const got = {};
      switch (step.event) {
        case "join":
          state.joinMessage({ create: true });
          break;
        case "local":
          state.localEdit(node, step.op);
          break;
        case "send":
          got.sends = state.takeBatch();
          break;
        case "undo":
        case "redo": {
          const change = step.event === "undo" ? undo.undo() : undo.redo();
          got.change = change ? change.edit : null;
          break;
        }
        case "disconnect":
          state.onDisconnect();
          break;
        case "receive": {
          const msg = structuredClone(step.message);
          let changes = [];
          if (msg.type === "joined") changes = state.onJoined(msg);
          else if (msg.type === "remote") changes = state.onRemote(msg);
          else if (msg.type === "ack") changes = state.onAck(msg);
          else if (msg.type === "error") changes = state.onError(msg).changes;
          else if (msg.type === "resync") state.onResync();
          got.changes = changes;
          break;
        }
        default:
          throw new Error(`unknown event ${step.event}`);
      }
      state.checkInvariants();
      got.text = state.value(node);
      assert.deepEqual(plain(got), step.expect, `${file} step ${i} (${step.event})`);
    });
    assert.equal(state.value(node), vector.final.text);
  });
}
