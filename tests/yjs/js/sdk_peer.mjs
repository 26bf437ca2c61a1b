// A real HocuspocusProvider 4.8 over a real WebSocket (node's built-in one: run with
// `node --experimental-websocket` on node 20) against a running `cowrite serve`, driven line by
// line from Python (tests/client/test_yjs_client.py): each stdin line is a JSON command, each
// stdout line the answer.
//   node --experimental-websocket sdk_peer.mjs <url> <documentName> <token>
// Commands: {"cmd":"edit","seed":n,"count":k} random edits of Text "text", Map "map" and the
// XmlFragment "default" (paragraphs); {"cmd":"saved"} waits until the provider is synced and has
// no unsynced changes (SyncStatus back to zero); {"cmd":"state"}; {"cmd":"exit"}.
import * as Y from "yjs";
import { HocuspocusProvider } from "@hocuspocus/provider";
import readline from "node:readline";

const [url, name, token] = process.argv.slice(2);
const doc = new Y.Doc();
const status = { denied: null, scope: null };
const provider = new HocuspocusProvider({
  url, name, token, document: doc, WebSocketPolyfill: globalThis.WebSocket,
});
provider.on("authenticationFailed", ({ reason }) => { status.denied = reason; });
provider.on("authenticated", ({ scope }) => { status.scope = scope; });

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function edit(seed, count) {
  const rnd = mulberry32(seed);
  const text = doc.getText("text");
  const map = doc.getMap("map");
  const fragment = doc.getXmlFragment("default");
  for (let i = 0; i < count; i++) {
    const r = rnd();
    if (r < 0.4) {
      text.insert(Math.floor(rnd() * (text.length + 1)), `js${seed}.${i} `);
    } else if (r < 0.5 && text.length > 0) {
      const at = Math.floor(rnd() * text.length);
      text.delete(at, Math.min(3, text.length - at));
    } else if (r < 0.75) {
      map.set(`k${Math.floor(rnd() * 5)}`, `js${seed}.${i}`);
    } else {
      const p = new Y.XmlElement("paragraph");
      p.insert(0, [new Y.XmlText(`js${seed}.${i}`)]);
      fragment.insert(Math.floor(rnd() * (fragment.length + 1)), [p]);
    }
  }
}

const state = () => ({
  text: doc.getText("text").toString(),
  map: doc.getMap("map").toJSON(),
  xml: doc.getXmlFragment("default").toString(),
  synced: provider.synced,
  unsynced: provider.unsyncedChanges,
  ...status,
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  const cmd = JSON.parse(line);
  if (cmd.cmd === "exit") break;
  if (cmd.cmd === "edit") edit(cmd.seed, cmd.count);
  if (cmd.cmd === "saved") {
    while (!(provider.synced && provider.unsyncedChanges === 0) && !status.denied) await sleep(10);
  }
  process.stdout.write(JSON.stringify(state()) + "\n");
}
provider.destroy();
process.exit(0);
