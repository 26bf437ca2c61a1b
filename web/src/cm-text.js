// The text editor's CodeMirror side of the cowrite protocol: remote carets (a decoration field)
// and the conversion of CodeMirror changes (UTF-16 offsets) to and from the wire's code-point ops.

import { Annotation, StateEffect, StateField } from "@codemirror/state";
import { Decoration, EditorView, WidgetType } from "@codemirror/view";
import { cpLength, cpToUtf16, ot } from "./client.js";
import { safeColor, withAlpha } from "./ui.js";

const BODY = "text:body";

// ------------------------------------------------------------------ remote cursors

export const remoteAnn = Annotation.define();
export const setCursors = StateEffect.define();

class CaretWidget extends WidgetType {
  constructor(name, color, idle) {
    super();
    this.name = name;
    this.color = color;
    this.idle = idle;
  }
  eq(other) {
    return other.name === this.name && other.color === this.color && other.idle === this.idle;
  }
  toDOM() {
    const caret = document.createElement("span");
    caret.className = this.idle ? "cm-remote-caret idle" : "cm-remote-caret";
    caret.style.setProperty("--caret", this.color);
    caret.setAttribute("aria-hidden", "true");
    const label = document.createElement("span");
    label.className = "cm-remote-label";
    label.textContent = this.name; // never innerHTML: names are user data
    caret.append(label);
    return caret;
  }
  ignoreEvent() {
    return true;
  }
}

function buildDecorations(cursors, doc) {
  const ranges = [];
  for (const c of cursors) {
    const anchor = Math.min(c.anchor, doc.length);
    const head = Math.min(c.head, doc.length);
    const from = Math.min(anchor, head);
    const to = Math.max(anchor, head);
    if (from < to) {
      ranges.push(
        Decoration.mark({
          class: "cm-remote-selection",
          attributes: { style: `background-color: ${withAlpha(c.color, 0.22)}`, "data-session": c.session },
        }).range(from, to),
      );
    }
    ranges.push(Decoration.widget({ widget: new CaretWidget(c.name, c.color, c.idle), side: 1 }).range(head));
  }
  return Decoration.set(ranges, true);
}

export const cursorField = StateField.define({
  create: () => ({ cursors: [], deco: Decoration.none }),
  update(value, tr) {
    let cursors = value.cursors;
    if (tr.docChanged) {
      cursors = cursors.map((c) => ({ ...c, anchor: tr.changes.mapPos(c.anchor, -1), head: tr.changes.mapPos(c.head, -1) }));
    }
    for (const e of tr.effects) if (e.is(setCursors)) cursors = e.value;
    if (cursors === value.cursors) return value;
    return { cursors, deco: buildDecorations(cursors, tr.state.doc) };
  },
  provide: (f) => EditorView.decorations.from(f, (v) => v.deco),
});

// `rope`: the session's local text, equal to `oldDoc` (its positions convert in O(log n), not
// by counting the code points of everything before the change); ignored if it does not match
export function localOp(changes, oldDoc, rope = null) {
  // CodeMirror speaks UTF-16 offsets; the wire speaks code points
  const op = [];
  let pos = 0;
  let split = false;
  const cpAt = rope && rope.utf16Length === oldDoc.length ? (u) => rope.utf16ToCp(u) : null;
  const isLow = (i) => {
    if (i <= 0 || i >= oldDoc.length) return false;
    const c = oldDoc.sliceString(i, i + 1).charCodeAt(0);
    return c >= 0xdc00 && c <= 0xdfff;
  };
  changes.iterChanges((fromA, toA, _fromB, _toB, inserted) => {
    if (isLow(fromA) || isLow(toA)) split = true;
    const kept = cpAt ? cpAt(fromA) - cpAt(pos) : cpLength(oldDoc.sliceString(pos, fromA));
    if (kept) op.push(kept);
    const text = inserted.toString();
    if (text) op.push(text);
    const gone = cpAt ? cpAt(toA) - cpAt(fromA) : cpLength(oldDoc.sliceString(fromA, toA));
    if (gone) op.push(-gone);
    pos = toA;
  });
  return split ? null : ot.normalize(op);
}

// `text`: the text before the change, a Rope (the change's `before`: O(log n) per position) or
// a string
export function remoteChanges(op, text) {
  const changes = [];
  const at = typeof text === "string" ? (cp) => cpToUtf16(text, cp) : (cp) => text.cpToUtf16(cp);
  let u = 0;
  let cp = 0;
  for (const c of op) {
    if (typeof c === "number") {
      cp += Math.abs(c);
      const end = at(cp);
      if (c < 0) {
        const last = changes[changes.length - 1];
        if (last && last.from === u && last.to === undefined) last.to = end;
        else changes.push({ from: u, to: end });
      }
      u = end;
    } else changes.push({ from: u, insert: c });
  }
  return changes;
}

export function cursorsFor(session, text) { // text: a Rope (session.rope(BODY))
  const out = [];
  for (const m of session.members.values()) {
    if (m.self || !m.local || m.cursor?.node !== BODY) continue;
    out.push({
      session: m.session,
      name: m.user.name || "Anonymous",
      color: safeColor(m.user.color, m.session),
      idle: !m.active,
      anchor: text.cpToUtf16(m.local[0]),
      head: text.cpToUtf16(m.local[1]),
    });
  }
  return out;
}
