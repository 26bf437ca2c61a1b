// A minimal event emitter (the client, its documents): on(type, fn) returns a function that
// removes the listener; a listener that throws is reported, never breaks the emitter's caller.

export class Emitter {
  constructor() {
    // type -> array of listeners, replaced (never changed) by on/off: emit walks the array it
    // read without copying it, and a listener added or removed meanwhile counts from the next
    this._listeners = new Map();
  }
  on(type, fn) {
    const fns = this._listeners.get(type) || [];
    if (!fns.includes(fn)) this._listeners.set(type, [...fns, fn]);
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
    const fns = this._listeners.get(type);
    if (fns && fns.includes(fn)) this._listeners.set(type, fns.filter((f) => f !== fn));
  }
  emit(type, detail) {
    const fns = this._listeners.get(type);
    if (!fns) return;
    for (const fn of fns) {
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
