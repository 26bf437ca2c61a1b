// The React hooks against a real server (run by tests/web/test_js_package.py with the server's
// ws:// URL; Node 20 needs --experimental-websocket). Two "apps" render with react-test-renderer:
// typing in one shows in the other, presence lists both, chat arrives, "synced" follows the
// acknowledgement, and unmounting leaves the document. Prints one JSON line of what it saw.
import React from "react";
import TestRenderer, { act } from "react-test-renderer";
import { useChat, useClient, useDocument, usePresence, useStatus, useText } from "@cowrite/client/react";

globalThis.IS_REACT_ACT_ENVIRONMENT = true;
const url = process.argv[2];
const docId = process.argv[3] || "react-doc";
const latest = {};
const renders = { a: 0, b: 0 };

function App({ name }) {
  const client = useClient({ url, user: { name } });
  const status = useStatus(client);
  const doc = useDocument(client, docId, { create: true });
  const [body, text] = useText(doc.session, "body");
  const people = usePresence(doc.session);
  const chat = useChat(doc.session);
  renders[name] += 1;
  latest[name] = { status, doc, body, text, people, chat };
  return React.createElement("p", null, `${name}: ${body}`);
}

async function until(check, what) {
  for (let i = 0; i < 500; i++) {
    if (check()) return;
    await act(async () => {
      await new Promise((r) => setTimeout(r, 20));
    });
  }
  throw new Error(`timed out: ${what} ${JSON.stringify({ a: latest.a && { status: latest.a.status, ready: latest.a.doc.ready, err: latest.a.doc.error, s: !!latest.a.doc.session } })}`);
}

let a;
let b;
await act(async () => {
  a = TestRenderer.create(React.createElement(App, { name: "a" }));
  b = TestRenderer.create(React.createElement(App, { name: "b" }));
});
await until(() => latest.a.doc.ready && latest.b.doc.ready, "both joined");
await act(async () => latest.a.text.insert(0, "hello from react 👋"));
await until(() => latest.b.body === "hello from react 👋", "b sees a's text");
await until(() => latest.a.doc.synced, "a's edit acknowledged");
await until(() => latest.a.people.length === 2 && latest.b.people.length === 2, "presence");
const names = latest.a.people.map((m) => m.user.name).sort();
await act(async () => latest.b.chat.send("hi a"));
await until(() => latest.a.chat.messages.some((m) => m.text === "hi a"), "chat");
const rendered = a.toJSON().children.join("");
const before = renders.b;
await act(async () => a.unmount());
await until(() => latest.b.people.length === 1, "a left");
console.log(JSON.stringify({
  statuses: [latest.a.status, latest.b.status],
  body: latest.b.body,
  names,
  chat: latest.a.chat.messages.map((m) => [m.author_name, m.text]),
  rendered,
  rerendered: renders.b > before,
}));
await act(async () => b.unmount());
