// Unacknowledged edits survive a reload.
//
// While a document has edits the server has not acknowledged, its thin-client state (the server
// copy and version it was made against, the in-flight batch with its edit_id, the pending edits,
// the edit-id counter) is kept in IndexedDB; once everything is acknowledged the record is
// removed. After a reload the record is put back into a fresh ThinDocState before the document is
// joined, so the ordinary rejoin path does the rest: `join {version, epoch, state, inflight}`, the
// catch-up recognises an in-flight batch the server already applied (client_id + edit_id), and
// anything else is resent with the same edit_id, which the server applies at most once.
//
// Records are per client id, tab and document (a tab id kept in sessionStorage survives reloads),
// so two open tabs of one browser never restore each other's edits. Each tab holds a Web Lock
// while it lives (`holdTab`); the record of a tab that is gone (closed with unacknowledged edits)
// is taken over by the next tab that opens the document (`adoptOrphan`).

import { DELETED } from "./thin.js";
import { textOf } from "./rope.js";

const FORMAT = 1;
const DELETED_MARK = { $cowriteDeleted: true };

function slotsOut(ops) {
  return [...ops].map(([k, slot]) => [k, slot.payload === DELETED ? { ...slot, payload: DELETED_MARK } : { ...slot }]);
}

function slotsIn(entries) {
  return new Map(entries.map(([k, slot]) => [k, slot.payload && slot.payload.$cowriteDeleted === true ? { ...slot, payload: DELETED } : slot]));
}

/** A plain (structured-cloneable) copy of what must survive a reload. */
export function exportThin(state) {
  return {
    format: FORMAT,
    doc: state.doc,
    clientId: state.clientId,
    version: state.version,
    epoch: state.epoch,
    vv: state.vv,
    server: [...state.server].map(([node, value]) => [node, textOf(value)]), // ropes as strings
    local: [...state.local].map(([node, value]) => [node, textOf(value)]),
    kinds: [...state.kinds],
    roots: state.roots,
    rights: state.rights,
    inflight: state.inflight && { editId: state.inflight.editId, ops: slotsOut(state.inflight.ops) },
    pending: slotsOut(state.pending),
    prefix: state._prefix,
    edits: state._edits,
  };
}

/** Put a saved state back into a fresh `ThinDocState` (never joined); false if it does not fit. */
export function importThin(state, saved) {
  if (!saved || saved.format !== FORMAT || saved.doc !== state.doc || saved.clientId !== state.clientId) return false;
  if (saved.version === null || (!saved.inflight && !saved.pending.length)) return false;
  state.version = saved.version;
  state.epoch = saved.epoch || "";
  state.vv = saved.vv ? { ...saved.vv } : null;
  state.server = new Map(saved.server);
  state.local = new Map(saved.local);
  state.kinds = new Map(saved.kinds);
  state.roots = { ...saved.roots };
  state.rights = saved.rights.slice();
  state._prefix = saved.prefix;
  state._edits = saved.edits;
  state.history.reset(saved.version);
  state.pending = slotsIn(saved.pending);
  state.inflight = saved.inflight ? { editId: saved.inflight.editId, ops: slotsIn(saved.inflight.ops), sent: false } : null;
  if (!state.inflight) {
    // the pending edits may have gone out as the next batch after this record was written:
    // make them that batch (same edit_id, same slots as takeBatch takes), so that a batch the
    // server already applied is recognised instead of applied again
    const ops = new Map();
    for (const [k, slot] of state.pending) {
      if (ops.size >= state.maxBatchOps) break;
      ops.set(k, slot);
    }
    for (const k of ops.keys()) state.pending.delete(k);
    state._edits++;
    state.inflight = { editId: `${state._prefix}-${state._edits}`, ops, sent: false };
  }
  state.joined = false;
  return true;
}

/** One IndexedDB object store of saved states (every call fails softly: no IndexedDB, private
 *  mode... then nothing is kept, as before). */
export class OfflineStore {
  constructor(name = "cowrite") {
    this.name = name;
    this._db = null;
    this._opening = null;
  }

  open() {
    if (this._db) return Promise.resolve(this._db);
    if (!this._opening) {
      this._opening = new Promise((resolve, reject) => {
        if (typeof indexedDB === "undefined") return reject(new Error("no IndexedDB"));
        const req = indexedDB.open(this.name, 1);
        req.onupgradeneeded = () => req.result.createObjectStore("unsynced");
        req.onsuccess = () => resolve((this._db = req.result));
        req.onerror = () => reject(req.error);
      });
    }
    return this._opening;
  }

  async keys() {
    const db = await this.open();
    return new Promise((resolve, reject) => {
      const req = db.transaction("unsynced", "readonly").objectStore("unsynced").getAllKeys();
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }

  async load(key) {
    const db = await this.open();
    return new Promise((resolve, reject) => {
      const req = db.transaction("unsynced", "readonly").objectStore("unsynced").get(key);
      req.onsuccess = () => resolve(req.result ?? null);
      req.onerror = () => reject(req.error);
    });
  }

  /** Write (or with `value` null, remove) now: the request is issued before this returns, so
   *  writes land in call order. Resolves when it is durable. */
  put(key, value) {
    if (!this._db) return Promise.reject(new Error("the store is not open"));
    return new Promise((resolve, reject) => {
      const tx = this._db.transaction("unsynced", "readwrite");
      const store = tx.objectStore("unsynced");
      if (value === null) store.delete(key);
      else store.put(value, key);
      tx.oncomplete = () => resolve();
      tx.onerror = tx.onabort = () => reject(tx.error);
    });
  }
}

/** Keep `session`'s unacknowledged edits in `store` under `key` while it is open; every batch
 *  is recorded before it is sent (`session.beforeBatch`). Returns {flushed(): a promise of the
 *  last write, stop()}. */
export function keepUnsynced(session, store, key) {
  let kept = false; // a record may exist
  let queued = false;
  let last = Promise.resolve();
  const write = () => {
    queued = false;
    const state = session.state;
    if (state.version === null) return;
    if (state.synced) {
      if (!kept) return;
      kept = false;
      last = store.put(key, null).catch(() => {});
    } else {
      kept = true;
      last = store.put(key, exportThin(state)).catch(() => {});
    }
  };
  const soon = () => {
    if (queued) return;
    queued = true;
    queueMicrotask(write); // one write for all the events of one task
  };
  if (!session.state.synced) kept = true;
  const offs = ["change", "ack", "sync", "joined"].map((type) => session.on(type, soon));
  // write-ahead: a batch is recorded (as in flight, with its edit_id) before it is sent
  session.beforeBatch = () => {
    write();
    return last;
  };
  return {
    flushed: () => (queued ? Promise.resolve().then(() => last) : last),
    stop: () => {
      offs.forEach((off) => off());
      if (session.beforeBatch) session.beforeBatch = null;
    },
  };
}

export function recordKey(clientId, tabId, doc) {
  return `${clientId}/${tabId}/${doc}`; // (none of the three holds a "/")
}

const tabLock = (tabId) => `cowrite-tab-${tabId}`;

/** Hold this tab's lock for as long as the tab lives (what tells other tabs it is not gone). */
export function holdTab(tabId) {
  globalThis.navigator?.locks?.request(tabLock(tabId), () => new Promise(() => {})).catch(() => {});
}

/** The record a closed tab left for `doc` (same client id), moved under this tab's key; or null.
 *  One tab adopts at a time (a lock), so a record is never taken over twice. */
export async function adoptOrphan(store, { clientId, tabId, doc }) {
  const locks = globalThis.navigator?.locks;
  if (!locks) return null;
  return locks.request("cowrite-adopt", async () => {
    const held = new Set(((await locks.query()).held || []).map((lock) => lock.name));
    for (const key of await store.keys()) {
      const [c, t, d] = String(key).split("/");
      if (c !== clientId || d !== doc || t === tabId || held.has(tabLock(t))) continue;
      const saved = await store.load(key);
      await store.put(recordKey(clientId, tabId, doc), saved);
      await store.put(key, null);
      return saved;
    }
    return null;
  });
}
