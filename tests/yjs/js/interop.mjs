// Interop with the real yjs / y-protocols / lib0 / @hocuspocus/common (see tests/yjs/test_interop_js.py).
//   node interop.mjs produce          -> JSON: frames and updates written by the JavaScript libraries
//   node interop.mjs consume < JSON   -> JSON: what those libraries read from frames cowrite wrote
import * as Y from "yjs";
import * as syncProtocol from "y-protocols/sync";
import * as awarenessProtocol from "y-protocols/awareness";
import * as authProtocol from "y-protocols/auth";
import * as encoding from "lib0/encoding";
import * as decoding from "lib0/decoding";
import { readAuthMessage, writeAuthentication } from "@hocuspocus/common";

const hex = (u8) => Buffer.from(u8).toString("hex");
const unhex = (s) => new Uint8Array(Buffer.from(s, "hex"));
const frame = (write) => {
  const enc = encoding.createEncoder();
  write(enc);
  return hex(encoding.toUint8Array(enc));
};

function readOut(doc) {
  return {
    text: doc.getText("text").toString(),
    delta: doc.getText("text").toDelta(),
    map: doc.getMap("map").toJSON(),
    array: doc.getArray("array").toJSON(),
    xml: doc.getXmlFragment("prosemirror").toString(),
  };
}

function produce() {
  const doc = new Y.Doc();
  doc.clientID = 1234;
  const updates = [];
  doc.on("update", (u) => updates.push(hex(u)));
  const text = doc.getText("text");
  text.insert(0, "Hello 😀 wörld, 中文");
  text.format(0, 5, { bold: true });
  text.delete(5, 1);
  text.insert(text.length, "!");
  const map = doc.getMap("map");
  map.set("title", "T");
  map.set("n", 42);
  map.set("flag", true);
  const inner = new Y.Map();
  map.set("inner", inner);
  inner.set("list", [1, "two", null, { deep: [3] }]);
  map.delete("flag");
  const array = doc.getArray("array");
  array.insert(0, [1, "a", { x: 1 }]);
  const sub = new Y.Array();
  array.push([sub]);
  sub.push(["nested"]);
  array.delete(0, 1);
  const frag = doc.getXmlFragment("prosemirror");
  const heading = new Y.XmlElement("heading");
  heading.setAttribute("level", "2");
  frag.insert(0, [heading]);
  heading.insert(0, [new Y.XmlText("Title <1>")]);
  const para = new Y.XmlElement("paragraph");
  frag.insert(1, [para]);
  const t = new Y.XmlText();
  para.insert(0, [t]);
  t.insert(0, "bold & plain");
  t.format(0, 4, { bold: true });

  const awareness = new awarenessProtocol.Awareness(doc);
  awareness.setLocalState({ user: { name: "Ann ☃", color: "#f00" }, cursor: null });
  const awarenessUpdate = awarenessProtocol.encodeAwarenessUpdate(awareness, [doc.clientID]);
  awareness.setLocalState(null);
  const awarenessRemoval = awarenessProtocol.encodeAwarenessUpdate(awareness, [doc.clientID]);
  awareness.destroy();

  const sv = Y.encodeStateVector(doc);
  const full = Y.encodeStateAsUpdate(doc);
  const name = "notes/é";
  const hp = (type, write) =>
    frame((enc) => {
      encoding.writeVarString(enc, name);
      encoding.writeVarUint(enc, type);
      write(enc);
    });
  const ywebsocket = [
    frame((enc) => { encoding.writeVarUint(enc, 0); syncProtocol.writeSyncStep1(enc, doc); }),
    frame((enc) => { encoding.writeVarUint(enc, 0); syncProtocol.writeSyncStep2(enc, doc, new Uint8Array([0])); }),
    ...updates.map((u) => frame((enc) => { encoding.writeVarUint(enc, 0); syncProtocol.writeUpdate(enc, unhex(u)); })),
    frame((enc) => { encoding.writeVarUint(enc, 1); encoding.writeVarUint8Array(enc, awarenessUpdate); }),
    frame((enc) => { encoding.writeVarUint(enc, 1); encoding.writeVarUint8Array(enc, awarenessRemoval); }),
    frame((enc) => { encoding.writeVarUint(enc, 3); }),
    frame((enc) => { encoding.writeVarUint(enc, 2); authProtocol.writePermissionDenied(enc, "read-only"); }),
  ];
  const hocuspocus = [
    hp(2, (enc) => { writeAuthentication(enc, "secret-token"); encoding.writeVarString(enc, "4.8.0"); }),
    hp(0, (enc) => syncProtocol.writeSyncStep1(enc, doc)),
    hp(0, (enc) => syncProtocol.writeSyncStep2(enc, doc, new Uint8Array([0]))),
    hp(0, (enc) => syncProtocol.writeUpdate(enc, unhex(updates[0]))),
    hp(1, (enc) => encoding.writeVarUint8Array(enc, awarenessUpdate)),
    hp(3, () => {}),
    hp(5, (enc) => encoding.writeVarString(enc, '{"ping":"☃"}')),
    hp(7, () => {}),
  ];
  return {
    name, updates, full: hex(full), sv: hex(sv), ywebsocket, hocuspocus,
    awareness: [hex(awarenessUpdate), hex(awarenessRemoval)], expected: readOut(doc),
  };
}

function consume(input) {
  const out = { ywebsocket: [], hocuspocus: [] };
  const doc = new Y.Doc();
  const awareness = new awarenessProtocol.Awareness(doc);
  awareness.setLocalState(null);
  const handle = (decoder, type, report) => {
    switch (type) {
      case 0:
      case 4: {  // SyncReply: read as Sync by the Hocuspocus server (the 4.8 provider never gets one)
        const reply = encoding.createEncoder();
        report.sync = syncProtocol.readSyncMessage(decoder, reply, doc, "server");
        report.replyBytes = encoding.length(reply);
        break;
      }
      case 1:
        awarenessProtocol.applyAwarenessUpdate(awareness, decoding.readVarUint8Array(decoder), "server");
        break;
      case 3:
        break;
      default:
        throw new Error(`type ${type}`);
    }
  };
  for (const f of input.ywebsocket) {
    const decoder = decoding.createDecoder(unhex(f));
    const type = decoding.readVarUint(decoder);
    const report = { type };
    if (type === 2) {
      authProtocol.readAuthMessage(decoder, doc, (_d, reason) => { report.denied = reason; });
    } else {
      handle(decoder, type, report);
    }
    report.rest = decoding.hasContent(decoder);
    out.ywebsocket.push(report);
  }
  for (const f of input.hocuspocus) {
    const data = unhex(f);
    if (data.length === 1) { out.hocuspocus.push({ ping: data[0] === 9 }); continue; }
    const decoder = decoding.createDecoder(data);
    const report = { address: decoding.readVarString(decoder) };
    const type = (report.type = decoding.readVarUint(decoder));
    if (type === 2) {
      readAuthMessage(decoder, () => { report.tokenRequested = true; },
        (reason) => { report.denied = reason; }, (scope) => { report.scope = scope; });
    } else if (type === 5) {
      report.stateless = decoding.readVarString(decoder);
    } else if (type === 7) {
      report.close = decoding.readVarString(decoder);
    } else if (type === 8) {
      report.saved = decoding.readVarInt(decoder) === 1; // as HocuspocusProvider reads it
    } else {
      handle(decoder, type, report);
    }
    report.rest = decoding.hasContent(decoder);
    out.hocuspocus.push(report);
  }
  out.doc = readOut(doc);
  out.awareness = Object.fromEntries(awareness.getStates());
  out.sv = hex(Y.encodeStateVector(doc));
  awareness.destroy(); // its renewal timer would keep node running
  return out;
}

const mode = process.argv[2];
if (mode === "produce") {
  process.stdout.write(JSON.stringify(produce()));
} else {
  let data = "";
  process.stdin.on("data", (c) => (data += c));
  process.stdin.on("end", () => process.stdout.write(JSON.stringify(consume(JSON.parse(data)))));
}
