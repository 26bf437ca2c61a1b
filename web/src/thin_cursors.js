// Cursor conversion of a thin document (a mixin of ThinDocState, thin.js): a remote cursor into
// local coordinates through the kept history and our unacknowledged edits, and back.

import * as ot from "./ot.js";
import { SEQ_KINDS, slotKey } from "./thin_values.js";

/** Methods of ThinDocState (copied onto its prototype); they read its `history` (the shapes
 *  of the last versions' sequence ops, thin_history.js), `inflight`, `pending` and `local`. */
export class ThinCursors {
  /** A remote cursor {node, anchor, head, version} in local coordinates: [anchor, head] or
   *  null. Positions from versions not reached yet, or older than the kept history, are
   *  clamped rather than transformed. */
  cursorToLocal(cursor) {
    const node = cursor.node;
    if (!SEQ_KINDS.has(this.kind(node)) || this.version === null) return null;
    let { anchor, head } = cursor;
    const version = cursor.version ?? this.version;
    const moved = version <= this.version ? this.history.transform(node, version, anchor, head) : null;
    if (moved) {
      [anchor, head] = moved;
      const k = slotKey("seq", node);
      for (const ops of [this.inflight ? this.inflight.ops : null, this.pending]) {
        const mine = ops && ops.get(k);
        if (mine) {
          anchor = ot.transformPosition(anchor, mine.payload);
          head = ot.transformPosition(head, mine.payload);
        }
      }
    }
    const value = this.local.get(node);
    const length = value === undefined ? 0 : typeof value === "string" ? ot.cpLength(value) : value.length;
    return [Math.min(anchor, length), Math.min(head, length)];
  }

  /** A local selection as the server understands it: {node, anchor, head, version}. */
  cursorToServer(node, anchor, head) {
    if (!SEQ_KINDS.has(this.kind(node))) throw new ot.InvalidOperation(`cursors live in text and list nodes, not ${node}`);
    const k = slotKey("seq", node);
    for (const slot of [this.pending.get(k), this.inflight ? this.inflight.ops.get(k) : null]) {
      if (slot) {
        anchor = ot.positionBefore(anchor, slot.payload);
        head = ot.positionBefore(head, slot.payload);
      }
    }
    return { node, anchor, head, version: this.version };
  }
}
