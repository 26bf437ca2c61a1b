// The cowrite web editor: a document list and a collaborative editor (CodeMirror 6) on top of
// the JavaScript client (client.js, loaded as a separate module); rich-text documents (kind
// "yjs") open in rich.js's Tiptap editor instead (its own bundle, loaded on first use). User data
// (names, chat, titles) only ever reaches the page through textContent / input values /
// validated colors: never HTML.
//
// Modules of the page: page.js (who we are, REST, toasts, the shared `page` state), home.js (the
// document list), people.js (the people list and our name), chat-panel.js (the chat),
// history-panel.js (version history); this one opens documents and routes.

import { Compartment, EditorState, Transaction } from "@codemirror/state";
import { EditorView, keymap, placeholder } from "@codemirror/view";
import { defaultKeymap } from "@codemirror/commands";
import { CowriteClient, cpLength, ot } from "./client.js";
import { OfflineStore, adoptOrphan, holdTab, keepUnsynced, recordKey } from "./persist.js";
import { $, randomId } from "./ui.js";
import { cursorField, cursorsFor, localOp, remoteAnn, remoteChanges, setCursors } from "./cm-text.js";
import { HistoryPanel } from "./history-panel.js";
import { UndoManager } from "./undo.js";
import { accessToken, api, clientId, copyLink, hocuspocusUrl, kinds, page, tabStore, toast, userKey, wsUrl } from "./page.js";
import { pendingTitles, showHome } from "./home.js";
import { avoidLookalikes, renderPeople } from "./people.js";
import { renderChat, renderChatMessage } from "./chat-panel.js";

const BODY = "text:body";
const TITLE = "register:title";

const client = (page.client = new CowriteClient({
  url: wsUrl.href,
  clientId,
  key: userKey,
  token: accessToken,
  user: { name: page.name, color: page.color },
}));

// ------------------------------------------------------------------------ top bar

const STATUS_TEXT = {
  idle: "Connecting…",
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  offline: "Offline",
  closed: "Disconnected",
};

function showConnection(status) {
  $("connection").dataset.status = status;
  $("connection-text").textContent = STATUS_TEXT[status] || status;
}

client.on("status", ({ status }) => {
  if (page.rich) return; // a rich-text document shows its own connection (rich.js)
  showConnection(status);
  // who is here is only known while connected
  document.body.classList.toggle("disconnected", status !== "connected");
  renderSaveState();
});

function renderSaveState() {
  if (page.rich) return; // rich.js renders it
  const box = $("save-state");
  const doc = page.current?.session;
  if (!doc || !(page.current.ready || doc.restored)) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  let state;
  let text;
  if (doc.synced) {
    state = "saved";
    text = "All changes saved";
  } else if (client.connected && doc.savingPending) {
    state = "unsaved";
    text = "Saving pending: the server cannot store changes right now; they are kept";
  } else if (client.connected) {
    state = "saving";
    text = "Saving…";
  } else {
    state = "unsaved";
    text = "Unsaved changes: they sync when you are back online";
  }
  box.dataset.state = state;
  box.textContent = text;
}

// ------------------------------------------------------------------------ document view

/** The page for a link that names no document: `title` and the reason (the server's words). */
function showMissing(title, text) {
  leaveDocument();
  $("doc-view").hidden = true;
  $("home-view").hidden = true;
  $("missing-view").hidden = false;
  $("missing-title").textContent = title;
  $("missing-text").textContent = text;
}

// an invalid document id is refused as a whole message (no `doc` to route it by)
client.on("error", (err) => {
  if (err.code === "bad_message" && page.current && !page.current.ready) {
    showMissing("Invalid document link", `This link does not name a document: ${err.message}`);
  }
});

// unacknowledged edits are kept in IndexedDB per tab (the tab id survives reloads): see persist.js
const offline = new OfflineStore();
let tabId = tabStore.get("tab");
if (!tabId || !/^[a-z0-9]{12}$/.test(tabId)) {
  tabId = randomId(12);
  tabStore.set("tab", tabId);
}
const offlineKey = (id) => recordKey(clientId, tabId, id);
holdTab(tabId);
let opening = 0; // bumped by every open and leave: an open still reading IndexedDB gives up

function leaveDocument() {
  opening++;
  historyPanel.close({ focus: false });
  if (page.rich) {
    page.rich.destroy();
    page.rich = null;
    clearTimeout(richTitleTimer);
    showConnection(client.status);
    document.body.classList.toggle("disconnected", client.status !== "connected");
    renderSaveState();
  }
  if (!page.current) return;
  for (const off of page.current.offs) off();
  clearTimeout(page.current.checkTimer);
  clearTimeout(page.current.titleTimer);
  page.current.session.leave();
  page.current.view.destroy();
  $("chat-log").replaceChildren();
  $("people").replaceChildren();
  page.current = null;
  renderSaveState();
}

async function openDocument(id) {
  if (page.current?.id === id || page.rich?.id === id) return;
  leaveDocument();
  $("home-view").hidden = true;
  $("missing-view").hidden = true;
  $("doc-view").hidden = false;
  $("doc-loading").hidden = false;
  $("doc-loading").textContent = "Loading document…";
  $("doc-title").value = "";
  $("doc-title").placeholder = id;
  document.title = "cowrite";

  const token = ++opening;
  if (kinds.get(id) === "yjs") return openRichDocument(id, token);
  let saved = null;
  try {
    // this tab's own record (a reload), else one a closed tab left
    saved = (await offline.load(offlineKey(id))) ?? (await adoptOrphan(offline, { clientId, tabId, doc: id }));
  } catch {
    /* no IndexedDB (private mode...): nothing was kept, nothing will be */
  }
  if (token !== opening || page.current) return; // left (or opened another) meanwhile

  const session = client.open(id, { restore: saved });
  const editable = new Compartment();
  const doc = (page.current = { id, session, ready: false, offs: [], chatEls: new Map(), editable, checkTimer: null, titleTimer: null, view: null, keeper: null });
  // undo/redo of our own edits as the server applied them (undo.js: never duplicates text)
  doc.undo = new UndoManager(session.state, BODY, { apply: (op) => session.edit(BODY, op) });
  doc.offs.push(() => doc.undo.detach());
  if (offline._db) {
    doc.keeper = keepUnsynced(session, offline, offlineKey(id));
    doc.offs.push(doc.keeper.stop);
  }
  const canWriteNow = session.restored && session.rights.includes("write");

  const view = new EditorView({
    parent: $("editor"),
    state: EditorState.create({
      doc: session.value(BODY) || "", // a restored state's text (unacknowledged edits included)
      extensions: [
        EditorState.lineSeparator.of("\n"), // keep "\r" as a character: positions must match the server
        EditorView.clipboardInputFilter.of((text) => text.replace(/\r\n?/g, "\n")), // pasted Windows text
        keymap.of([
          { key: "Mod-z", run: () => undoStep(doc, "undo"), preventDefault: true },
          { key: "Mod-y", mac: "Mod-Shift-z", run: () => undoStep(doc, "redo"), preventDefault: true },
          { key: "Mod-Shift-z", run: () => undoStep(doc, "redo"), preventDefault: true },
          ...defaultKeymap,
        ]),
        EditorView.lineWrapping,
        placeholder("Start writing…"),
        cursorField,
        editable.of(canWriteNow ? [] : [EditorState.readOnly.of(true), EditorView.editable.of(false)]),
        EditorView.contentAttributes.of({ "aria-label": "Document text" }),
      ],
    }),
    dispatchTransactions(trs, v) {
      v.update(trs);
      if (page.current !== doc || !(doc.ready || session.restored)) return;
      let selection = false;
      for (const tr of trs) {
        if (tr.annotation(remoteAnn) !== undefined) continue;
        if (tr.selection && !tr.docChanged) doc.undo.close(); // a caret move ends an undo step
        if (tr.docChanged) {
          const op = localOp(tr.changes, tr.startState.doc, session.rope(BODY));
          if (op === null) {
            // a change that splits a surrogate pair: describe it as a diff of whole texts
            session.edit(BODY, ot.diff(tr.startState.doc.toString(), tr.state.doc.toString()));
          } else if (op.length) session.edit(BODY, op);
        }
        if (tr.docChanged || tr.selection) selection = true;
      }
      if (selection) sendCursor();
      scheduleCheck();
    },
  });
  doc.view = view;
  if (session.restored) {
    // edits kept from before a reload: show them (and let typing go on) before the server answers
    $("doc-loading").hidden = true;
    $("doc-title").readOnly = !canWriteNow;
    renderTitle("snapshot");
    renderSaveState();
  }

  const sendCursor = () => {
    const state = view.state;
    const sel = state.selection.main;
    const rope = session.rope(BODY); // O(log n) a position, when it matches the editor's text
    const cp =
      rope.utf16Length === state.doc.length
        ? (pos) => rope.utf16ToCp(pos)
        : (pos) => cpLength(state.doc.sliceString(0, pos));
    session.setCursor(BODY, cp(sel.anchor), cp(sel.head));
  };

  // the editor must always show exactly the model's text: check it when things are quiet
  const scheduleCheck = () => {
    clearTimeout(doc.checkTimer);
    doc.checkTimer = setTimeout(() => {
      if (page.current !== doc) return;
      const model = session.value(BODY) || "";
      const shown = view.state.doc.toString();
      if (model !== shown) {
        console.error("cowrite: the editor diverged from the document; reloading its text");
        view.dispatch({
          changes: { from: 0, to: view.state.doc.length, insert: model },
          annotations: [remoteAnn.of("repair"), Transaction.addToHistory.of(false), Transaction.remote.of(true)],
        });
      }
    }, 400);
  };

  const on = (type, fn) => doc.offs.push(session.on(type, fn));

  on("change", ({ changes, origin, clientId: author }) => {
    for (const change of changes) {
      if (change.node === TITLE) renderTitle(origin);
      if (change.node !== BODY || change.type !== "seq" || origin === "local") continue;
      const shown = change.before?.utf16Length === view.state.doc.length ? change.before : view.state.doc.toString();
      const spec = remoteChanges(change.edit, shown);
      view.dispatch({
        changes: spec,
        effects: setCursors.of(cursorsFor(session, session.rope(BODY))),
        annotations: [remoteAnn.of(author || origin), Transaction.addToHistory.of(false), Transaction.remote.of(true)],
      });
    }
    if (changes.some((c) => c.node === BODY)) scheduleCheck();
    if (origin !== "local") historyPanel.documentChanged();
    renderSaveState();
  });

  on("joined", ({ rejoin }) => {
    if (!doc.ready) {
      doc.ready = true;
      $("doc-loading").hidden = true;
      const canWrite = session.rights.includes("write");
      view.dispatch({ effects: editable.reconfigure(canWrite ? [] : [EditorState.readOnly.of(true), EditorView.editable.of(false)]) });
      $("doc-title").readOnly = !canWrite;
      const wanted = pendingTitles.get(id);
      pendingTitles.delete(id);
      if (wanted && canWrite && !session.value(TITLE)) session.register("title").set(wanted);
      renderTitle("snapshot");
      if (!session.value(TITLE)) {
        // no live title yet: show the one the document was created with
        api(`documents/${encodeURIComponent(id)}`)
          .then((info) => {
            if (page.current === doc && info?.title) {
              $("doc-title").placeholder = info.title;
              if (!session.value(TITLE)) document.title = `${info.title} · cowrite`;
            }
          })
          .catch(() => {});
      }
      if (!rejoin) view.focus();
    }
    renderPeople();
    renderChat();
    renderSaveState();
    scheduleCheck();
  });

  on("sync", renderSaveState);
  on("ack", renderSaveState);
  on("saving", renderSaveState);
  on("presence", () => {
    avoidLookalikes(session.members.values(), client.session);
    renderPeople();
    view.dispatch({ effects: setCursors.of(cursorsFor(session, session.rope(BODY))) });
  });
  on("chat", ({ message }) => renderChatMessage(message, true));
  on("chat_page", () => renderChat());
  const forget = () => {
    // the document is gone: its kept edits have nowhere to go
    doc.keeper?.stop();
    if (offline._db) offline.put(offlineKey(id), null).catch(() => {});
  };
  on("deleted", () => {
    forget();
    toast("This document was deleted");
    location.hash = "#/";
  });
  // a bug somewhere (the client resyncs by itself): an error, so the browser tests fail on one
  on("diverged", (d) => console.error(`cowrite: ${d.node} differed from the server at version ${d.version}; resyncing`));
  on("error", (err) => {
    if (err.code === "bad_message" && !doc.ready && /not a document of this protocol/.test(err.message)) {
      openIfRich(id); // a document of another kind (never listed in this browser)
    } else if (err.code === "unknown_document" && !doc.ready) {
      forget();
      showMissing("Document not found", `There is no document “${id}”. It may have been deleted, or the link is wrong.`);
    } else if (err.code === "forbidden") {
      toast(`Not allowed: ${err.message}`);
    } else if (err.code !== "rate_limited" && err.code !== "unknown_node") {
      console.warn("cowrite:", err.code, err.message);
    }
  });
  if (document.hidden) session.setActive(false);
}

// ------------------------------------------------------------------ rich-text documents

let richTitleTimer = null;

/** The server refused to open `id` as a text document: if REST says it is a rich-text one, open
 *  it as such (and remember); otherwise say what the server said. */
async function openIfRich(id) {
  let info = null;
  try {
    info = await api(`documents/${encodeURIComponent(id)}`);
  } catch {
    /* gone meanwhile */
  }
  if (page.current?.id !== id || page.current.ready) return;
  if (info?.kind === "yjs") {
    kinds.remember(id, "yjs");
    leaveDocument();
    openDocument(id);
  } else showMissing("This document cannot be opened here", `The server says: ${id} is not a text document.`);
}

/** A rich-text document: Tiptap over Hocuspocus (rich.js, its own bundle, loaded on first use). */
async function openRichDocument(id, token) {
  let mod;
  try {
    mod = await import("./rich.js");
  } catch (err) {
    if (token === opening) showMissing("The rich-text editor did not load", `Reload the page to try again (${err.message}).`);
    return;
  }
  if (token !== opening || page.current || page.rich) return;
  $("doc-title").readOnly = false;
  page.rich = mod.openRich({
    id,
    url: hocuspocusUrl,
    token: accessToken || "cowrite-web", // a server without --secret accepts any
    user: { name: page.name, color: page.color },
    status: showConnection,
    toast,
    presence: avoidLookalikes,
    denied(reason) {
      if (/not a Yjs document/i.test(reason)) {
        // it is a text document after all (an old remembered kind): open it as one
        kinds.remember(id, "crdt");
        leaveDocument();
        openDocument(id);
      } else toast(`Not allowed: ${reason}`);
    },
  });
  const wanted = pendingTitles.get(id);
  pendingTitles.delete(id);
  const showTitle = (title) => {
    if (page.rich?.id !== id || !title || document.activeElement === $("doc-title")) return;
    $("doc-title").value = title;
    document.title = `${title} · cowrite`;
  };
  showTitle(wanted);
  page.rich
    .serverSynced()
    .then(() => api(`documents/${encodeURIComponent(id)}`))
    .then((info) => showTitle(info?.title))
    .catch(() => {});
}

function renderTitle(origin) {
  const doc = page.current;
  if (!doc) return;
  const input = $("doc-title");
  const value = doc.session.value(TITLE);
  const title = typeof value === "string" ? value : "";
  if (origin !== "local" && input.value !== title) {
    const focused = document.activeElement === input;
    const caret = input.selectionStart;
    input.value = title;
    if (focused && caret !== null) input.setSelectionRange(Math.min(caret, title.length), Math.min(caret, title.length));
  }
  document.title = `${title || doc.id} · cowrite`;
}

$("doc-title").addEventListener("input", () => {
  if (page.rich) {
    const { id } = page.rich;
    const title = $("doc-title").value;
    document.title = `${title || id} · cowrite`;
    clearTimeout(richTitleTimer);
    richTitleTimer = setTimeout(() => {
      api(`documents/${encodeURIComponent(id)}`, { method: "PATCH", body: { title: title.trim() || id } }).catch(() => {});
    }, 800);
    return;
  }
  const doc = page.current;
  if (!doc || !doc.ready) return;
  const title = $("doc-title").value;
  doc.session.register("title").set(title);
  document.title = `${title || doc.id} · cowrite`;
  // keep the document list's title in step (debounced)
  clearTimeout(doc.titleTimer);
  doc.titleTimer = setTimeout(() => {
    api(`documents/${encodeURIComponent(doc.id)}`, { method: "PATCH", body: { title: title.trim() || doc.id } }).catch(() => {});
  }, 800);
});
$("doc-title").addEventListener("keydown", (event) => {
  if (event.key === "Enter") {
    event.preventDefault();
    if (page.rich) page.rich.focus();
    else page.current?.view.focus();
  }
});

/** Undo (or redo) our last step of the open text document (undo.js) and show it; false when
 *  there was nothing to do (a key binding then lets the next one try, as CodeMirror's did). */
function undoStep(doc, which) {
  const view = doc.view;
  if (!view || page.current !== doc || !(doc.ready || doc.session.restored) || view.state.readOnly) return false;
  const change = which === "undo" ? doc.undo.undo() : doc.undo.redo();
  if (!change) return false;
  const shown = change.before?.utf16Length === view.state.doc.length ? change.before : view.state.doc.toString();
  const changes = view.state.changes(remoteChanges(change.edit, shown));
  let caret = null;
  changes.iterChangedRanges((_fromA, _toA, _fromB, toB) => (caret = toB));
  view.dispatch({
    changes,
    selection: caret === null ? undefined : { anchor: caret },
    scrollIntoView: true,
    annotations: [remoteAnn.of(which), Transaction.userEvent.of(which)], // applied already (undo.js)
  }); // dispatchTransactions schedules the editor-vs-model check
  return true;
}

/** Restore `version` of the open text document through REST (live for everyone); here it is
 *  one undo step (undo.js adoptRestore). Resolves to the REST answer {restored, version, edits}. */
async function restoreVersion(version) {
  const doc = page.current;
  if (!doc) throw new Error("no text document is open");
  const out = await api(`documents/${encodeURIComponent(doc.id)}/restore`, { method: "POST", body: { version } });
  if (page.current === doc && out?.edits) doc.undo.adoptRestore(out.version, out.edits);
  return out;
}

$("undo-btn").addEventListener("click", () => {
  if (page.rich) return page.rich.undo();
  if (!page.current) return;
  undoStep(page.current, "undo");
  page.current.view.focus();
});
$("redo-btn").addEventListener("click", () => {
  if (page.rich) return page.rich.redo();
  if (!page.current) return;
  undoStep(page.current, "redo");
  page.current.view.focus();
});
$("share-btn").addEventListener("click", () => (page.rich || page.current) && copyLink((page.rich || page.current).id));

// ------------------------------------------------------------------------ version history

// the panel (history-panel.js) replaces the editor and sidebar while it is open
const historyPanel = new HistoryPanel({
  root: $("history"),
  button: $("history-btn"),
  api,
  toast,
  onClose: () => page.current?.view.requestMeasure(),
  // a restore made here is one undo step of ours (undo.js adoptRestore)
  onRestored: (id, out) => page.current?.id === id && out?.edits && page.current.undo.adoptRestore(out.version, out.edits),
});
$("history-btn").addEventListener("click", () => (page.rich || page.current) && historyPanel.toggle((page.rich || page.current).id, { rich: Boolean(page.rich) }));

// ------------------------------------------------------------------------ routing

function route() {
  const match = /^#\/d\/(.+)$/.exec(location.hash);
  if (match) {
    let id;
    try {
      id = decodeURIComponent(match[1]);
    } catch {
      id = match[1];
    }
    openDocument(id);
  } else {
    showHome(leaveDocument);
  }
}

window.addEventListener("hashchange", route);
window.addEventListener("beforeunload", (event) => {
  // unacknowledged edits are kept in IndexedDB (when it works) and resent after the reload
  if (page.current && !page.current.session.synced && !page.current.keeper) {
    event.preventDefault();
    event.returnValue = "";
  }
});

// a handle for debugging and for the end-to-end tests
window.cowriteApp = {
  client,
  get session() {
    return page.current?.session ?? null;
  },
  get view() {
    return page.current?.view ?? null;
  },
  /** The open rich-text document (rich.js's handle: editor, provider, ydoc, persisted()...). */
  get rich() {
    return page.rich;
  },
  /** Restore a version of the open text document (REST), as one undo step here. */
  restore: restoreVersion,
  /** Resolves once the unacknowledged edits made so far are written to IndexedDB. */
  persisted() {
    return page.current?.keeper ? page.current.keeper.flushed() : Promise.resolve();
  },
};

client.connect();
route();
