// Which editor a document needs: "crdt" (text, CodeMirror over the cowrite protocol) or "yjs"
// (rich text, Tiptap over Hocuspocus). The server says (REST `kind`, in the list and on create);
// this browser remembers what it was told, so that a document opens in the right editor at once,
// offline too. A document never seen here opens as text; the server refuses the join of a Yjs
// document ("not a document of this protocol") and the page then asks REST and switches.

const KEY = "kinds";
const MAX = 500; // remembered documents (the oldest are forgotten first)

export const KIND_LABEL = { crdt: "Text", yjs: "Rich text" };

export class KindCache {
  /** `store`: {get(key), set(key, value)} (identity.js's storage). */
  constructor(store) {
    this.store = store;
  }

  _all() {
    try {
      const value = JSON.parse(this.store.get(KEY) || "{}");
      return value && typeof value === "object" && !Array.isArray(value) ? value : {};
    } catch {
      return {};
    }
  }

  get(id) {
    const kind = this._all()[id];
    return kind === "yjs" || kind === "crdt" ? kind : null;
  }

  remember(id, kind) {
    if (kind !== "yjs" && kind !== "crdt") return;
    const all = this._all();
    if (all[id] === kind) return;
    delete all[id];
    all[id] = kind; // insertion order: the newest last
    const ids = Object.keys(all);
    for (const old of ids.slice(0, Math.max(0, ids.length - MAX))) delete all[old];
    this.store.set(KEY, JSON.stringify(all));
  }
}
