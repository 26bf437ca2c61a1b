// A small React app on @cowrite/client/react: a shared text, who is here, and a chat.
// Build: cd web/package && npm ci && npm run build && npm run example  -> example/dist/
// Serve example/dist next to a cowrite server (or open it with ?server=ws://host:port/ws).
import React, { useState } from "react";
import { createRoot } from "react-dom/client";
import { useChat, useClient, useDocument, usePresence, useStatus, useText } from "@cowrite/client/react";

const params = new URLSearchParams(location.search);
const url = params.get("server") || `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;

function Notes({ name }) {
  const client = useClient({ url, user: { name } });
  const status = useStatus(client);
  const doc = useDocument(client, params.get("doc") || "react-notes", { create: true });
  const [body, text] = useText(doc.session, "body");
  const people = usePresence(doc.session);
  const chat = useChat(doc.session);
  const [draft, setDraft] = useState("");
  return (
    <main>
      <header>
        <strong>{status}</strong> · {doc.synced ? "All changes saved" : "Saving…"}
      </header>
      <textarea
        aria-label="Notes"
        value={body}
        disabled={!doc.ready}
        onChange={(e) => text?.setValue(e.target.value)}
      />
      <aside>
        <h2>People</h2>
        <ul>{people.map((m) => <li key={m.session} style={{ color: m.user.color }}>{m.user.name}{m.self ? " (you)" : ""}</li>)}</ul>
        <h2>Chat</h2>
        <ol>{chat.messages.map((m) => <li key={m.id}><b>{m.author_name}</b> {m.text}</li>)}</ol>
        <form onSubmit={(e) => { e.preventDefault(); if (draft) chat.send(draft); setDraft(""); }}>
          <input aria-label="Message" value={draft} onChange={(e) => setDraft(e.target.value)} />
        </form>
      </aside>
    </main>
  );
}

createRoot(document.getElementById("root")).render(<Notes name={params.get("name") || "Guest"} />);
