// The chat of the open text document (the sidebar of the web page): its messages in id order,
// editing and deleting our own, sending, older pages; a rich-text document's chat goes through
// rich.js. User text only ever reaches the page as text (ui.js).

import { $, chatMessageItem, el } from "./ui.js";
import { page, toast } from "./page.js";

function isMine(message) {
  const me = page.client.serverUser?.id || page.client.clientId;
  return message.author_id === me;
}

export function renderChat() {
  const doc = page.current;
  if (!doc) return;
  for (const message of doc.session.chatMessages()) renderChatMessage(message, false);
  $("chat-more").hidden = !doc.session.chatHasMore;
  $("chat-empty").hidden = doc.session.chat.size > 0;
}

export function renderChatMessage(message, live) {
  const doc = page.current;
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
          onclick: () => page.current?.session.deleteChat(message.id),
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
    if (save && text && text !== message.text) page.current?.session.editChat(message.id, text);
    renderChatMessage(li._message, false);
    page.current?.chatEls.get(message.id)?.querySelector("button")?.focus();
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
  if (page.rich) {
    if (page.rich.sendChat(text)) input.value = "";
    return;
  }
  if (!page.current) return;
  page.current.session.sendChat(text);
  input.value = "";
});
$("chat-input").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("chat-form").requestSubmit();
  }
});
$("chat-more").addEventListener("click", async () => {
  const doc = page.current;
  if (!doc) return;
  const oldest = doc.session.chatMessages()[0];
  try {
    await doc.session.chatHistory({ before: oldest ? oldest.id : null, limit: 50 });
  } catch {
    toast("Not connected");
  }
});
