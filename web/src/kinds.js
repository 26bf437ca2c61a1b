// Which editor a document needs: "crdt" (text, CodeMirror over the cowrite protocol) or "yjs"
// (rich text, Tiptap over Hocuspocus). The server says (REST `kind`); this browser remembers what
// it was told, so that a document opens in the right editor while offline, and after a reload.

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

  /** The kind of `id`: remembered, else asked of the server (`api`); "crdt" when neither knows
   *  (a document that does not exist is then reported by the text editor, as before). */
  async lookup(id, api) {
    const known = this.get(id);
    if (known) return known;
    try {
      const info = await api(`documents/${encodeURIComponent(id)}`);
      const kind = info?.kind === "yjs" ? "yjs" : "crdt";
      this.remember(id, kind);
      return kind;
    } catch {
      return "crdt";
    }
  }
}
