// The cowrite web editor: a document list and a collaborative editor (CodeMirror 6) on top of
// the JavaScript client (client.js, loaded as a separate module); rich-text documents (kind
// "yjs") open in rich.js's Tiptap editor instead (its own bundle, loaded on first use). User data
// (names, chat, titles) only ever reaches the page through textContent / input values /
// validated colors: never HTML.

import { Compartment, EditorState, Transaction } from "@codemirror/state";
import { EditorView, keymap, placeholder } from "@codemirror/view";
import { defaultKeymap } from "@codemirror/commands";
import { CowriteClient, cpLength, ot } from "./client.js";
import { initialIdentity, lookalikeFix, storage } from "./identity.js";
import { pageToken, tokenClaims } from "./access.js";
import { OfflineStore, adoptOrphan, holdTab, keepUnsynced, recordKey } from "./persist.js";
import { $, PALETTE, chatMessageItem, el, initials, randomId, renderPeopleList, safeColor } from "./ui.js";
import { cursorField, cursorsFor, localOp, remoteAnn, remoteChanges, setCursors } from "./cm-text.js";
import { KIND_LABEL, KindCache } from "./kinds.js";
import { HistoryPanel } from "./history-panel.js";
import { UndoManager } from "./undo.js";

const BODY = "text:body";
const TITLE = "register:title";

// ------------------------------------------------------------------------ identity

const store = storage("localStorage");

let clientId = store.get("clientId");
if (!clientId || !/^[A-Za-z0-9-]{8,64}$/.test(clientId)) {
  clientId = `web-${randomId(12)}`;
  store.set("clientId", clientId);
}
// without auth, the key (never sent to others) makes this browser the author of its chat messages
let userKey = store.get("key");
if (!userKey || !/^[a-z0-9]{32}$/.test(userKey)) {
  userKey = randomId(32);
  store.set("key", userKey);
}
// a typed name is kept for the browser; a guest name and the color per tab (see identity.js)
const tabStore = storage("sessionStorage");
const me = initialIdentity(store, tabStore, PALETTE);
// with --secret the token is who we are: its name and color are shown (the server uses them)
const accessToken = pageToken(location, tabStore, history);
const claimed = tokenClaims(accessToken);
if (typeof claimed.name === "string" && claimed.name) Object.assign(me, { name: claimed.name, chosen: true });
if (/^#[0-9a-fA-F]{6}$/.test(claimed.color || "")) me.color = claimed.color;
let myName = me.name;
let myColor = me.color;

const base = new URL(".", location.href);
const wsUrl = new URL("ws", base);
wsUrl.protocol = location.protocol === "https:" ? "wss:" : "ws:";

const hocuspocusUrl = new URL("hocuspocus", wsUrl).href; // rich-text documents (rich.js)
const kinds = new KindCache(store); // which editor each document needs (kinds.js)
let rich = null; // the open rich-text document (rich.js's handle), or null

const client = new CowriteClient({
  url: wsUrl.href,
  clientId,
  key: userKey,
  token: accessToken,
  user: { name: myName, color: myColor },
});

// ------------------------------------------------------------------------ REST

async function api(path, { method = "GET", body } = {}) {
  // without auth the server takes our word for who we are, as on the WebSocket (a restore in the
  // history is then ours); with a secret it ignores these and reads the token
  const headers = { "x-cowrite-key": userKey, "x-cowrite-name": encodeURIComponent(myName) };
  if (accessToken) headers.authorization = `Bearer ${accessToken}`;
  if (body) headers["content-type"] = "application/json";
  const res = await fetch(new URL(`api/${path}`, base), {
    method,
    headers,
    body: body ? JSON.stringify(body) : undefined,
  });
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const err = new Error(data?.error?.message || `HTTP ${res.status}`);
    err.code = data?.error?.code;
    err.status = res.status;
    throw err;
  }
  return data;
}

// ------------------------------------------------------------------------ toasts

let toastTimer = null;
function toast(text) {
  const t = $("toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.hidden = true), 2600);
}

function shareLink(id) {
  return new URL(`#/d/${encodeURIComponent(id)}`, base).href;
}

async function copyLink(id) {
  const link = shareLink(id);
  try {
    await navigator.clipboard.writeText(link);
    toast("Link copied to the clipboard");
  } catch {
    window.prompt("Copy this link:", link);
  }
}

function relativeTime(ms) {
  const diff = Date.now() - ms;
  const min = Math.round(diff / 60000);
  if (min < 1) return "just now";
  if (min < 60) return `${min} min ago`;
  const h = Math.round(min / 60);
  if (h < 24) return `${h} h ago`;
  const d = new Date(ms);
  return d.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
}

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
  if (rich) return; // a rich-text document shows its own connection (rich.js)
  showConnection(status);
  // who is here is only known while connected
  document.body.classList.toggle("disconnected", status !== "connected");
  renderSaveState();
});

function renderSaveState() {
  if (rich) return; // rich.js renders it
  const box = $("save-state");
  const doc = current?.session;
  if (!doc || !(current.ready || doc.restored)) {
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

const nameInput = $("my-name");
nameInput.value = myName;
nameInput.readOnly = Boolean(accessToken && claimed.name); // the token names us
$("my-swatch").style.background = myColor;
let nameTimer = null;
nameInput.addEventListener("input", () => {
  clearTimeout(nameTimer);
  nameTimer = setTimeout(applyName, 400);
});
nameInput.addEventListener("change", applyName);
function applyName() {
  clearTimeout(nameTimer);
  const name = nameInput.value.trim().slice(0, 60);
  if (!name || name === myName) return;
  myName = name;
  me.chosen = true;
  store.set("name", name);
  client.setUser({ name });
  if (current) renderPeople();
  rich?.setUser({ name });
}

// ------------------------------------------------------------------------ home view

async function showHome() {
  leaveDocument();
  document.title = "cowrite";
  $("home-view").hidden = false;
  $("doc-view").hidden = true;
  $("missing-view").hidden = true;
  await loadList();
}

// the list pages through the server's (by id, i.e. roughly alphabetical); a search asks the server
const LIST_PAGE = 100;
let listState = { query: "", next: null, token: 0 };

async function loadList() {
  const query = $("doc-search").value.trim();
  const token = ++listState.token; // a newer search or reload makes this one moot
  listState = { query, next: null, token };
  $("doc-list").replaceChildren();
  await loadMore(token);
}

/** Append the next documents; a search may need several requests to fill a page (each reads a
 *  bounded slice of the documents on the server). */
async function loadMore(token = listState.token) {
  const list = $("doc-list");
  $("home-error").hidden = true;
  $("doc-more").disabled = true;
  let added = 0;
  try {
    for (let requests = 0; requests < 20; requests++) {
      const params = new URLSearchParams({ limit: String(LIST_PAGE) });
      if (listState.next) params.set("after", listState.next);
      if (listState.query) params.set("q", listState.query);
      const page = await api(`documents?${params}`);
      if (token !== listState.token) return;
      list.append(...page.documents.map(docItem));
      added += page.documents.length;
      listState.next = page.next;
      if (!page.next || added >= LIST_PAGE) break;
    }
  } catch (err) {
    if (token !== listState.token) return;
    $("home-error").textContent = `Could not load the documents: ${err.message}`;
    $("home-error").hidden = false;
  }
  const empty = list.children.length === 0;
  $("doc-list-empty").hidden = !empty;
  $("doc-list-empty").textContent = listState.query ? `No document matches “${listState.query}”.` : "No documents yet. Create the first one above.";
  $("doc-more").hidden = !listState.next;
  $("doc-more").disabled = false;
}

let searchTimer = null;
$("doc-search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(loadList, 250);
});
$("doc-more").addEventListener("click", () => loadMore());

function docItem(info) {
  const title = info.title || info.id;
  const kind = info.kind === "yjs" ? "yjs" : "crdt";
  kinds.remember(info.id, kind);
  const tools = el("div", { class: "doc-tools" });
  const li = el(
    "li",
    { class: "doc-item", "data-doc": info.id },
    el("span", { class: `doc-icon kind-${kind}`, "aria-hidden": "true", text: initials(title).slice(0, 1) }),
    el(
      "div",
      { class: "doc-main" },
      el("a", { class: "doc-link", href: `#/d/${encodeURIComponent(info.id)}`, text: title }),
      el("div", { class: "doc-meta" }, el("span", { class: `doc-kind kind-${kind}`, text: KIND_LABEL[kind] }), ` · Edited ${relativeTime(info.updated_ms)} · ${info.id}`),
    ),
    tools,
  );
  const normalTools = () => {
    tools.replaceChildren(
      el("button", { type: "button", class: "btn small", "aria-label": `Copy link to ${title}`, text: "Copy link", onclick: () => copyLink(info.id) }),
      el("button", { type: "button", class: "btn small danger", "aria-label": `Delete ${title}`, text: "Delete", onclick: confirmTools }),
    );
  };
  const confirmTools = () => {
    const yes = el("button", {
      type: "button",
      class: "btn small danger solid",
      "aria-label": `Confirm: delete ${title}`,
      text: "Delete for everyone",
      onclick: async () => {
        yes.disabled = true;
        try {
          await api(`documents/${encodeURIComponent(info.id)}`, { method: "DELETE" });
          toast(`Deleted “${title}”`);
        } catch (err) {
          toast(`Could not delete: ${err.message}`);
        }
        await loadList();
      },
    });
    const no = el("button", { type: "button", class: "btn small", text: "Cancel", onclick: () => (normalTools(), tools.querySelector(".danger")?.focus()) });
    tools.replaceChildren(yes, no);
    yes.focus();
  };
  normalTools();
  return li;
}

function slugify(title) {
  const slug = title
    .normalize("NFKD")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 40)
    .replace(/-+$/, "");
  return `${slug || "doc"}-${randomId(5)}`;
}

$("create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("new-title");
  const title = input.value.trim();
  if (!title) return;
  const id = slugify(title);
  const kind = new FormData($("create-form")).get("kind") === "yjs" ? "yjs" : "crdt";
  const button = event.submitter || $("create-form").querySelector("button[type=submit]");
  button.disabled = true;
  try {
    await api("documents", { method: "POST", body: kind === "yjs" ? { id, title, kind } : { id, title } });
    input.value = "";
    kinds.remember(id, kind);
    pendingTitles.set(id, title);
    location.hash = `#/d/${encodeURIComponent(id)}`;
  } catch (err) {
    $("home-error").textContent = `Could not create the document: ${err.message}`;
    $("home-error").hidden = false;
  } finally {
    button.disabled = false;
  }
});

const pendingTitles = new Map();

// ------------------------------------------------------------------------ document view

let current = null; // {id, session, view, ready, offs: [], ...}

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
  if (err.code === "bad_message" && current && !current.ready) {
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
  if (rich) {
    rich.destroy();
    rich = null;
    clearTimeout(richTitleTimer);
    showConnection(client.status);
    document.body.classList.toggle("disconnected", client.status !== "connected");
    renderSaveState();
  }
  if (!current) return;
  for (const off of current.offs) off();
  clearTimeout(current.checkTimer);
  clearTimeout(current.titleTimer);
  current.session.leave();
  current.view.destroy();
  $("chat-log").replaceChildren();
  $("people").replaceChildren();
  current = null;
  renderSaveState();
}

async function openDocument(id) {
  if (current?.id === id || rich?.id === id) return;
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
  if (token !== opening || current) return; // left (or opened another) meanwhile

  const session = client.open(id, { restore: saved });
  const editable = new Compartment();
  const doc = (current = { id, session, ready: false, offs: [], chatEls: new Map(), editable, checkTimer: null, titleTimer: null, view: null, keeper: null });
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
      if (current !== doc || !(doc.ready || session.restored)) return;
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
      if (current !== doc) return;
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
            if (current === doc && info?.title) {
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
  if (current?.id !== id || current.ready) return;
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
  if (token !== opening || current || rich) return;
  $("doc-title").readOnly = false;
  rich = mod.openRich({
    id,
    url: hocuspocusUrl,
    token: accessToken || "cowrite-web", // a server without --secret accepts any
    user: { name: myName, color: myColor },
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
    if (rich?.id !== id || !title || document.activeElement === $("doc-title")) return;
    $("doc-title").value = title;
    document.title = `${title} · cowrite`;
  };
  showTitle(wanted);
  rich
    .serverSynced()
    .then(() => api(`documents/${encodeURIComponent(id)}`))
    .then((info) => showTitle(info?.title))
    .catch(() => {});
}

function renderTitle(origin) {
  const doc = current;
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
  if (rich) {
    const { id } = rich;
    const title = $("doc-title").value;
    document.title = `${title || id} · cowrite`;
    clearTimeout(richTitleTimer);
    richTitleTimer = setTimeout(() => {
      api(`documents/${encodeURIComponent(id)}`, { method: "PATCH", body: { title: title.trim() || id } }).catch(() => {});
    }, 800);
    return;
  }
  const doc = current;
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
    if (rich) rich.focus();
    else current?.view.focus();
  }
});

/** Undo (or redo) our last step of the open text document (undo.js) and show it; false when
 *  there was nothing to do (a key binding then lets the next one try, as CodeMirror's did). */
function undoStep(doc, which) {
  const view = doc.view;
  if (!view || current !== doc || !(doc.ready || doc.session.restored) || view.state.readOnly) return false;
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
  const doc = current;
  if (!doc) throw new Error("no text document is open");
  const out = await api(`documents/${encodeURIComponent(doc.id)}/restore`, { method: "POST", body: { version } });
  if (current === doc && out?.edits) doc.undo.adoptRestore(out.version, out.edits);
  return out;
}

$("undo-btn").addEventListener("click", () => {
  if (rich) return rich.undo();
  if (!current) return;
  undoStep(current, "undo");
  current.view.focus();
});
$("redo-btn").addEventListener("click", () => {
  if (rich) return rich.redo();
  if (!current) return;
  undoStep(current, "redo");
  current.view.focus();
});
$("share-btn").addEventListener("click", () => (rich || current) && copyLink((rich || current).id));

// ------------------------------------------------------------------------ version history

// the panel (history-panel.js) replaces the editor and sidebar while it is open
const historyPanel = new HistoryPanel({
  root: $("history"),
  button: $("history-btn"),
  api,
  toast,
  onClose: () => current?.view.requestMeasure(),
  // a restore made here is one undo step of ours (undo.js adoptRestore)
  onRestored: (id, out) => current?.id === id && out?.edits && current.undo.adoptRestore(out.version, out.edits),
});
$("history-btn").addEventListener("click", () => (rich || current) && historyPanel.toggle((rich || current).id, { rich: Boolean(rich) }));

// ------------------------------------------------------------------------ people

/** Two people in a document must not look alike (identity.js): change our guest name or color. */
function avoidLookalikes(members, mySession) {
  if (mySession === null || mySession === undefined) return;
  const fix = lookalikeFix(members, mySession, { name: myName, color: myColor, chosen: me.chosen }, PALETTE);
  if (fix.name) {
    myName = nameInput.value = fix.name;
    tabStore.set("guestName", fix.name);
  }
  if (fix.color) {
    myColor = fix.color;
    tabStore.set("color", fix.color);
    $("my-swatch").style.background = fix.color;
  }
  if (fix.name || fix.color) {
    client.setUser(fix);
    rich?.setUser(fix);
  }
}

function renderPeople() {
  const doc = current;
  if (!doc) return;
  const people = [{ key: "self", name: myName, color: myColor, active: !document.hidden, self: true }];
  const others = [...doc.session.members.values()].filter((m) => !m.self);
  others.sort((a, b) => String(a.user.name).localeCompare(String(b.user.name)) || a.session.localeCompare(b.session));
  for (const m of others) {
    people.push({ key: m.session, name: m.user.name || "Anonymous", color: safeColor(m.user.color, m.session), active: m.active, self: false });
  }
  renderPeopleList(people);
}

document.addEventListener("visibilitychange", () => {
  rich?.setActive(!document.hidden);
  if (!current) return;
  current.session.setActive(!document.hidden);
  renderPeople();
});

// ------------------------------------------------------------------------ chat

function isMine(message) {
  const me = client.serverUser?.id || client.clientId;
  return message.author_id === me;
}

function renderChat() {
  const doc = current;
  if (!doc) return;
  for (const message of doc.session.chatMessages()) renderChatMessage(message, false);
  $("chat-more").hidden = !doc.session.chatHasMore;
  $("chat-empty").hidden = doc.session.chat.size > 0;
}

function renderChatMessage(message, live) {
  const doc = current;
  if (!doc) return;
  const log = $("chat-log");
  const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  let li = doc.chatEls.get(message.id);
  if (li && li.classList.contains("editing")) {
    li.dataset.pending = "1"; // redrawn when the edit closes
    li._message = message;
    return;
  }
  const fresh = buildChatMessage(message);
  if (li) li.replaceWith(fresh);
  else {
    // keep the log ordered by id
    const after = [...doc.chatEls.entries()].filter(([id]) => id > message.id).sort((a, b) => a[0] - b[0])[0];
    if (after) log.insertBefore(fresh, after[1]);
    else log.append(fresh);
  }
  doc.chatEls.set(message.id, fresh);
  $("chat-empty").hidden = true;
  if (live && (nearBottom || isMine(message))) log.scrollTop = log.scrollHeight;
}

function buildChatMessage(message) {
  const mine = isMine(message);
  const [li, head] = chatMessageItem(message);
  if (mine && !message.deleted) {
    head.append(
      el(
        "span",
        { class: "chat-tools" },
        el("button", { type: "button", class: "btn ghost", "aria-label": "Edit your message", text: "Edit", onclick: () => startChatEdit(li) }),
        el("button", {
          type: "button",
          class: "btn ghost danger",
          "aria-label": "Delete your message",
          text: "Delete",
          onclick: () => current?.session.deleteChat(message.id),
        }),
      ),
    );
  }
  return li;
}

function startChatEdit(li) {
  const message = li._message;
  li.classList.add("editing");
  const area = el("textarea", { "aria-label": "Edit message", maxlength: "10000" });
  area.value = message.text;
  const finish = (save) => {
    const text = area.value.trim();
    li.classList.remove("editing");
    if (save && text && text !== message.text) current?.session.editChat(message.id, text);
    renderChatMessage(li._message, false);
    current?.chatEls.get(message.id)?.querySelector("button")?.focus();
  };
  area.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      finish(true);
    } else if (event.key === "Escape") finish(false);
  });
  const form = el(
    "div",
    { class: "chat-edit" },
    area,
    el(
      "div",
      { class: "chat-edit-actions" },
      el("button", { type: "button", class: "btn small", text: "Cancel", onclick: () => finish(false) }),
      el("button", { type: "button", class: "btn small primary", text: "Save", onclick: () => finish(true) }),
    ),
  );
  li.querySelector(".chat-text").replaceWith(form);
  area.focus();
}

$("chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("chat-input");
  const text = input.value;
  if (!text.trim()) return;
  if (rich) {
    if (rich.sendChat(text)) input.value = "";
    return;
  }
  if (!current) return;
  current.session.sendChat(text);
  input.value = "";
});
$("chat-input").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("chat-form").requestSubmit();
  }
});
$("chat-more").addEventListener("click", async () => {
  const doc = current;
  if (!doc) return;
  const oldest = doc.session.chatMessages()[0];
  try {
    await doc.session.chatHistory({ before: oldest ? oldest.id : null, limit: 50 });
  } catch {
    toast("Not connected");
  }
});

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
    showHome();
  }
}

window.addEventListener("hashchange", route);
window.addEventListener("beforeunload", (event) => {
  // unacknowledged edits are kept in IndexedDB (when it works) and resent after the reload
  if (current && !current.session.synced && !current.keeper) {
    event.preventDefault();
    event.returnValue = "";
  }
});

// a handle for debugging and for the end-to-end tests
window.cowriteApp = {
  client,
  get session() {
    return current?.session ?? null;
  },
  get view() {
    return current?.view ?? null;
  },
  /** The open rich-text document (rich.js's handle: editor, provider, ydoc, persisted()...). */
  get rich() {
    return rich;
  },
  /** Restore a version of the open text document (REST), as one undo step here. */
  restore: restoreVersion,
  /** Resolves once the unacknowledged edits made so far are written to IndexedDB. */
  persisted() {
    return current?.keeper ? current.keeper.flushed() : Promise.resolve();
  },
};

client.connect();
route();
