// A minimal event emitter (the client, its documents): on(type, fn) returns a function that
// removes the listener; a listener that throws is reported, never breaks the emitter's caller.

export class Emitter {
  constructor() {
    this._listeners = new Map();
  }
  on(type, fn) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(fn);
    return () => this.off(type, fn);
  }
  once(type, fn) {
    const off = this.on(type, (detail) => {
      off();
      fn(detail);
    });
    return off;
  }
  off(type, fn) {
    this._listeners.get(type)?.delete(fn);
  }
  emit(type, detail) {
    const set = this._listeners.get(type);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(detail);
      } catch (err) {
        // a listener's bug must not break the protocol state machine
        if (typeof globalThis.reportError === "function") globalThis.reportError(err);
        else setTimeout(() => { throw err; });
      }
    }
  }
}
