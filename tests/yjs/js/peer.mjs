// A real HocuspocusProvider 4.8 or y-websocket WebsocketProvider over a fake in-memory WebSocket,
// driven line by line from Python (tests/yjs/test_provider_js.py): each stdin line is a JSON
// command, each stdout line the frames the provider sent meanwhile and its state. No network,
// no timers are relied upon.
//   node peer.mjs hocuspocus|ywebsocket <documentName> <token>
import * as Y from "yjs";
import { HocuspocusProvider, HocuspocusProviderWebsocket } from "@hocuspocus/provider";
import { WebsocketProvider } from "y-websocket";
import readline from "node:readline";

const [dialect, name, token] = process.argv.slice(2);
const hex = (u8) => Buffer.from(u8).toString("hex");
let sent = [];

class FakeSocket extends EventTarget {
  static last = null;
  constructor(url) {
    super();
    this.url = url;
    this.readyState = 0;
    FakeSocket.last = this;
  }
  get OPEN() { return 1; }
  send(data) { sent.push(hex(new Uint8Array(data))); }
  close() { this.readyState = 3; }
  fire(type, event) {
    this.dispatchEvent(event); // HocuspocusProvider listens with addEventListener,
    this[`on${type}`]?.(event); // y-websocket with on* properties
  }
  open() { this.readyState = 1; this.fire("open", new Event("open")); }
  deliver(h) {
    const u8 = new Uint8Array(Buffer.from(h, "hex"));
    this.fire("message", new MessageEvent("message", { data: u8.buffer }));
  }
}

const doc = new Y.Doc();
const status = { denied: null, scope: null };
let provider;
let socket = null;
if (dialect === "hocuspocus") {
  socket = new HocuspocusProviderWebsocket({ url: "ws://test/hocuspocus", WebSocketPolyfill: FakeSocket });
  provider = new HocuspocusProvider({ websocketProvider: socket, name, token, document: doc });
  provider.attach();
  provider.on("authenticationFailed", ({ reason }) => { status.denied = reason; });
  provider.on("authenticated", ({ scope }) => { status.scope = scope; });
} else {
  provider = new WebsocketProvider("ws://test/yjs", name, doc, {
    WebSocketPolyfill: FakeSocket, params: { token }, disableBc: true,
  });
  const warn = console.warn;
  console.warn = (msg, ...rest) => {
    if (String(msg).startsWith("Permission denied")) status.denied = String(msg).split("\n")[1];
    else warn(msg, ...rest);
  };
}

const settle = async () => { for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r)); };

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  const cmd = JSON.parse(line);
  if (cmd.cmd === "exit") break;
  await settle();
  if (cmd.cmd === "open") FakeSocket.last.open();
  if (cmd.cmd === "deliver") for (const f of cmd.frames) FakeSocket.last.deliver(f);
  if (cmd.cmd === "type") doc.getText("text").insert(doc.getText("text").length, cmd.text);
  if (cmd.cmd === "awareness") provider.awareness.setLocalStateField("user", cmd.user);
  await settle();
  const out = {
    sent, text: doc.getText("text").toString(), synced: provider.synced, url: FakeSocket.last?.url,
    unsynced: provider.unsyncedChanges ?? null, authenticated: provider.isAuthenticated ?? null, ...status,
    awareness: Object.fromEntries(provider.awareness.getStates()),
  };
  sent = [];
  process.stdout.write(JSON.stringify(out) + "\n");
}
provider.destroy();
socket?.destroy();
process.exit(0);
