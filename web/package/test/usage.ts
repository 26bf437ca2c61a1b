// Compiled (not run) by `npm run typecheck`: the documented uses of the package type-check
// against dist/*.d.ts, and misuses do not (each @ts-expect-error must be an error).
import { CowriteClient, STATUS, UndoManager, cpLength, type Change, type Member } from "@cowrite/client";
import { useChat, useClient, useDocument, usePresence, useText } from "@cowrite/client/react";

const client = new CowriteClient({ url: "ws://127.0.0.1:8000/ws", user: { name: "Ada" } });
client.connect();
const doc = client.open("notes", { create: true });
doc.text("body").insert(0, "Hello");
doc.register("title").set("Notes");
doc.map("settings").set("theme", { dark: true });
doc.counter("views").add();
const off = doc.on("change", ({ changes, origin }) => {
  const first: Change | undefined = changes[0];
  if (origin === "remote" && first?.type === "seq") console.log(first.edit, first.before?.cpToUtf16(3));
});
off();
client.on("status", ({ status }) => status === STATUS.CONNECTED);
const members: Member[] = [...doc.members.values()];
const n: number = cpLength("😀") + members.length + doc.rope("text:body").utf16Length;
void doc.whenSynced().then(() => n);

const undo = new UndoManager(doc.state, "text:body", { apply: (op) => doc.edit("text:body", op) });
const undone = undo.undo();
if (undone && undo.canRedo) console.log(undone.edit, undo.redo()?.before?.length);
undo.adoptRestore(12, 1);
// @ts-expect-error a node id is a string
new UndoManager(doc.state, 3);

// @ts-expect-error positions are numbers
doc.text("body").insert("0", "x");
// @ts-expect-error no such event
doc.on("no-such-event-name-typed", (d: { x: number }) => d.x.toFixed());

export function Editor(): string {
  const c = useClient({ url: "ws://127.0.0.1:8000/ws" });
  const state = useDocument(c, "notes", { create: true });
  const [body, text] = useText(state.session, "body");
  const people = usePresence(state.session);
  const chat = useChat(state.session);
  text?.insert(body.length, "!");
  chat.send(`${people.length} here, saved: ${state.synced}`);
  return body;
}
