// What every part of the web page shares (app.js and its panels): who we are (kept in the
// browser's storage; with --secret, the token's claims), the server's URLs, REST calls, toasts,
// links, and `page`: the client and the open document, which app.js sets and the panels read.

import { initialIdentity, storage } from "./identity.js";
import { pageToken, tokenClaims } from "./access.js";
import { $, PALETTE, randomId } from "./ui.js";
import { KindCache } from "./kinds.js";

export const store = storage("localStorage");

export let clientId = store.get("clientId");
if (!clientId || !/^[A-Za-z0-9-]{8,64}$/.test(clientId)) {
  clientId = `web-${randomId(12)}`;
  store.set("clientId", clientId);
}
// without auth, the key (never sent to others) makes this browser the author of its chat messages
export let userKey = store.get("key");
if (!userKey || !/^[a-z0-9]{32}$/.test(userKey)) {
  userKey = randomId(32);
  store.set("key", userKey);
}
// a typed name is kept for the browser; a guest name and the color per tab (see identity.js)
export const tabStore = storage("sessionStorage");
export const me = initialIdentity(store, tabStore, PALETTE);
// with --secret the token is who we are: its name and color are shown (the server uses them)
export const accessToken = pageToken(location, tabStore, history);
export const claimed = tokenClaims(accessToken);
if (typeof claimed.name === "string" && claimed.name) Object.assign(me, { name: claimed.name, chosen: true });
if (/^#[0-9a-fA-F]{6}$/.test(claimed.color || "")) me.color = claimed.color;

export const base = new URL(".", location.href);
export const wsUrl = new URL("ws", base);
wsUrl.protocol = location.protocol === "https:" ? "wss:" : "ws:";

export const hocuspocusUrl = new URL("hocuspocus", wsUrl).href; // rich-text documents (rich.js)
export const kinds = new KindCache(store); // which editor each document needs (kinds.js)

/** The page's mutable state: app.js sets it, the panels read it (and the name and color). */
export const page = {
  /** The CowriteClient (app.js makes it). */
  client: null,
  /** The open text document: {id, session, view, ready, offs: [], chatEls, undo, keeper, ...}. */
  current: null,
  /** The open rich-text document (rich.js's handle), or null. */
  rich: null,
  /** Our name and color as shown to others. */
  name: me.name,
  color: me.color,
};

// ------------------------------------------------------------------------ REST

export async function api(path, { method = "GET", body } = {}) {
  // without auth the server takes our word for who we are, as on the WebSocket (a restore in the
  // history is then ours); with a secret it ignores these and reads the token
  const headers = { "x-cowrite-key": userKey, "x-cowrite-name": encodeURIComponent(page.name) };
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
export function toast(text) {
  const t = $("toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.hidden = true), 2600);
}

function shareLink(id) {
  return new URL(`#/d/${encodeURIComponent(id)}`, base).href;
}

export async function copyLink(id) {
  const link = shareLink(id);
  try {
    await navigator.clipboard.writeText(link);
    toast("Link copied to the clipboard");
  } catch {
    window.prompt("Copy this link:", link);
  }
}

export function relativeTime(ms) {
  const diff = Date.now() - ms;
  const min = Math.round(diff / 60000);
  if (min < 1) return "just now";
  if (min < 60) return `${min} min ago`;
  const h = Math.round(min / 60);
  if (h < 24) return `${h} h ago`;
  const d = new Date(ms);
  return d.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
}
