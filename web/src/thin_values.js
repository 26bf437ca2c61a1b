// The values and queue slots of a thin document (thin.js): node kinds, empty values, structural
// equality, the slot keys of `pending`/`inflight`, wire ops, and texts as ropes (rope.js).

import * as ot from "./ot.js";
import { Rope, isRope } from "./rope.js";

export const SEQ_KINDS = new Set(["text", "list"]);
export const KINDS = ["text", "list", "map", "register", "counter"];
export const DELETED = Object.freeze({ deleted: true });
export const ABSENT = Symbol("absent");

/** The kind a root node id names ("text:body" -> "text"); null for nested "#r.s" ids. */
export function kindOfNodeId(node) {
  if (node.startsWith("#")) return null;
  const i = node.indexOf(":");
  if (i < 0 || i === node.length - 1) return null;
  const kind = node.slice(0, i);
  return KINDS.includes(kind) ? kind : null;
}

export function emptyValue(kind) {
  switch (kind) {
    case "text":
      return "";
    case "list":
      return [];
    case "map":
      return {};
    case "counter":
      return 0;
    default:
      return null;
  }
}

/** Structural equality of JSON values (a rope equals the string of its text). */
export function equal(a, b) {
  if (a === b) return true;
  if (isRope(a)) return (typeof b === "string" || isRope(b)) && a.equals(b);
  if (isRope(b)) return typeof a === "string" && b.equals(a);
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!equal(a[i], b[i])) return false;
    return true;
  }
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (!Object.hasOwn(b, k) || !equal(a[k], b[k])) return false;
  return true;
}

export function copy(value) {
  if (isRope(value)) return value.toString();
  if (Array.isArray(value)) return value.slice();
  if (value !== null && typeof value === "object") return { ...value };
  return value;
}

export function slotKey(kind, node, key = null) {
  return `${kind}\u0000${node}\u0000${key === null ? "" : "=" + key}`;
}

/** `value` (a text: string or rope; or a list) with `op` applied: texts become ropes. */
export function applySeq(value, op) {
  if (isRope(value)) return value.apply(op);
  if (typeof value === "string") return Rope.from(value).apply(op);
  return ot.apply(value, op);
}

export function asRope(value) {
  return typeof value === "string" ? Rope.from(value) : value;
}

/** A `seq` change; for a text, `before` (not enumerable: changes stay plain protocol ops) is the
 *  local value it applies to, as a Rope, so an editor binding converts its positions to UTF-16
 *  units in O(log n) (web/src/app.js, remoteChanges). */
export function seqChange(node, edit, before) {
  const change = { type: "seq", node, edit };
  if (isRope(before)) Object.defineProperty(change, "before", { value: before });
  return change;
}

export function wireOp({ kind, node, key, payload }) {
  if (kind === "seq") return { type: "seq", node, edit: payload.slice() };
  if (kind === "add") return { type: "add", node, amount: payload };
  if (payload === DELETED) return { type: "del", node, key };
  const op = { type: "set", node, value: payload };
  if (key !== null) op.key = key;
  return op;
}

export function randomHex(bytes) {
  const buf = new Uint8Array(bytes);
  globalThis.crypto.getRandomValues(buf);
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}
