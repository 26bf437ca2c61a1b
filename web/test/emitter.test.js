// The event emitter the client and its documents share (src/emitter.js). Run: node --test test/
import assert from "node:assert/strict";
import { test } from "node:test";
import { Emitter } from "../src/emitter.js";

test("listeners are called in order, once each however often added, until removed", () => {
  const e = new Emitter();
  const seen = [];
  const a = (d) => seen.push(["a", d]);
  const offA = e.on("x", a);
  e.on("x", a); // the same function twice: still one listener
  e.on("x", (d) => seen.push(["b", d]));
  e.emit("x", 1);
  offA();
  e.emit("x", 2);
  e.emit("nobody", 3);
  assert.deepEqual(seen, [["a", 1], ["b", 1], ["b", 2]]);
});

test("a listener added or removed during an emit counts from the next emit", () => {
  const e = new Emitter();
  const seen = [];
  let offB = null;
  e.on("x", (d) => {
    seen.push(["a", d]);
    if (d === 1) {
      e.on("x", (d2) => seen.push(["late", d2]));
      offB();
    }
  });
  offB = e.on("x", (d) => seen.push(["b", d]));
  e.emit("x", 1);
  e.emit("x", 2);
  assert.deepEqual(seen, [["a", 1], ["b", 1], ["a", 2], ["late", 2]]);
});

test("once, and a listener that throws does not stop the others", async () => {
  const e = new Emitter();
  const seen = [];
  const reported = [];
  const old = globalThis.reportError;
  globalThis.reportError = (err) => reported.push(err.message);
  try {
    e.once("x", (d) => seen.push(["once", d]));
    e.on("x", () => {
      throw new Error("boom");
    });
    e.on("x", (d) => seen.push(["after", d]));
    e.emit("x", 1);
    e.emit("x", 2);
  } finally {
    globalThis.reportError = old;
  }
  assert.deepEqual(seen, [["once", 1], ["after", 1], ["after", 2]]);
  assert.deepEqual(reported, ["boom", "boom"]);
});
