// Typed handles on one node of an open document (DocumentSession.text(name), .list, .map,
// .register, .counter): each turns its calls into the session's edits, positions in code points.

import * as ot from "./ot.js";

class Handle {
  constructor(session, node) {
    this.session = session;
    this.node = node;
  }
  get value() {
    return this.session.value(this.node);
  }
}

/** A text node: positions in code points. */
export class TextHandle extends Handle {
  /** Length in code points. */
  get length() {
    return this.session.rope(this.node).length;
  }
  insert(pos, text) {
    this.session.edit(this.node, ot.fromSplice(pos, 0, text));
  }
  delete(pos, count) {
    this.session.edit(this.node, ot.fromSplice(pos, count, ""));
  }
  replace(pos, count, text) {
    this.session.edit(this.node, ot.fromSplice(pos, count, text));
  }
  /** Replace the whole text with `text` (one diff: prefix and suffix kept). */
  setValue(text) {
    const op = ot.diff(this.value || "", text);
    if (op.length) this.session.edit(this.node, op);
  }
}

export class ListHandle extends Handle {
  insert(pos, ...items) {
    this.session.edit(this.node, ot.fromSplice(pos, 0, items));
  }
  delete(pos, count = 1) {
    this.session.edit(this.node, ot.fromSplice(pos, count, []));
  }
}

export class MapHandle extends Handle {
  get(key) {
    return (this.value || {})[key];
  }
  set(key, value) {
    this.session.set(this.node, key, value);
  }
  delete(key) {
    this.session.delete(this.node, key);
  }
}

export class RegisterHandle extends Handle {
  set(value) {
    this.session.set(this.node, null, value);
  }
}

export class CounterHandle extends Handle {
  add(amount = 1) {
    this.session.add(this.node, amount);
  }
}
