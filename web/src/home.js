// The home view of the web page: the document list (paged, searched on the server), creating a
// document (a text or a rich-text one) and deleting one. Opening goes through the address
// (`#/d/<id>`, app.js's routing).

import { $, el, initials, randomId } from "./ui.js";
import { KIND_LABEL } from "./kinds.js";
import { api, copyLink, kinds, relativeTime, toast } from "./page.js";

/** Show the document list (after `leave()`: closes the open document). */
export async function showHome(leave) {
  leave();
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

/** Titles of documents just created here, for their first open (app.js). */
export const pendingTitles = new Map();
