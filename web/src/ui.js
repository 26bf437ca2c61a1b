// Small DOM helpers and the people / chat panel items shared by the text page (app.js) and the
// rich-text page (rich.js). User data (names, chat, colors) only ever reaches the page through
// textContent or validated colors: never HTML.

// collaborator colors: white text on each has a contrast of at least 4.5:1
export const PALETTE = ["#dc2626", "#c2410c", "#b45309", "#15803d", "#0f766e", "#0b6bcb", "#4f46e5", "#7c3aed", "#c026d3", "#be185d"];

export const $ = (id) => document.getElementById(id);

export const el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  node.append(...children);
  return node;
};

export function randomId(n = 6) {
  const bytes = new Uint8Array(n);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => "abcdefghijklmnopqrstuvwxyz0123456789"[b % 36]).join("");
}

function hashString(s) {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** A color safe to put in a style: #rgb / #rrggbb from the user, or one picked from `seed`. */
export function safeColor(color, seed) {
  if (typeof color === "string" && /^#(?:[0-9a-fA-F]{3}){1,2}$/.test(color)) return color;
  return PALETTE[hashString(String(seed)) % PALETTE.length];
}

export function withAlpha(hex, alpha) {
  let h = hex.slice(1);
  if (h.length === 3) h = [...h].map((c) => c + c).join("");
  const n = parseInt(h, 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

export function initials(name) {
  const parts = String(name || "?").trim().split(/\s+/).filter(Boolean);
  const first = parts.length ? Array.from(parts[0])[0] : "?";
  const second = parts.length > 1 ? Array.from(parts[parts.length - 1])[0] : "";
  return (first + second).toUpperCase();
}

/** A link target we accept: http(s) and mailto; a bare "example.com" becomes https. */
export function normalizeHref(raw) {
  const text = String(raw || "").trim();
  if (!text) return null;
  const withScheme = /^[a-z][a-z0-9+.-]*:/i.test(text) ? text : `https://${text}`;
  try {
    const url = new URL(withScheme);
    return ["http:", "https:", "mailto:"].includes(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}

/** One row of the People panel: {key, name, color, active, self}. */
export function personItem(p) {
  const avatar = el("span", { class: "avatar", "aria-hidden": "true", text: initials(p.name) });
  avatar.style.background = p.color;
  const name = el("span", { class: "person-name", text: p.name });
  if (p.self) name.append(el("span", { class: "person-you", text: " (you)" }));
  return el(
    "li",
    { class: p.active ? "person" : "person idle", "data-session": p.key },
    avatar,
    name,
    el("span", { class: "person-status", text: p.active ? "active" : "idle" }),
  );
}

/** The People panel: ourselves first, then the others by name. */
export function renderPeopleList(people) {
  $("people-count").textContent = `· ${people.length}`;
  $("people").replaceChildren(...people.map(personItem));
}

/** A chat message's list item (without tools): author, time, text. Returns [li, head]. */
export function chatMessageItem(message) {
  const time = new Date(message.created_ms);
  const head = el(
    "div",
    { class: "chat-head" },
    el("span", { class: "chat-author", text: message.author_name || "Anonymous" }),
    el("time", {
      class: "chat-time",
      datetime: time.toISOString(),
      title: time.toLocaleString(),
      text: time.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) + (message.edited_ms && !message.deleted ? " · edited" : ""),
    }),
  );
  const li = el("li", { class: message.deleted ? "chat-msg deleted" : "chat-msg", "data-id": String(message.id) }, head);
  li._message = message;
  // textContent, never innerHTML: a message is shown exactly as typed
  li.append(el("p", { class: "chat-text", text: message.deleted ? "Message deleted" : message.text }));
  return [li, head];
}
