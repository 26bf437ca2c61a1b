// The rich-text page's pure helpers: which editor a document needs (src/kinds.js) and which
// link targets the link form accepts (src/ui.js). Run: node --test test/
import assert from "node:assert/strict";
import { test } from "node:test";
import { KindCache } from "../src/kinds.js";
import { normalizeHref, safeColor } from "../src/ui.js";

const memory = (init = {}) => {
  const m = new Map(Object.entries(init));
  return { get: (k) => m.get(k) ?? null, set: (k, v) => m.set(k, v), m };
};

test("kinds are remembered per document, only the two known ones", () => {
  const store = memory();
  const kinds = new KindCache(store);
  assert.equal(kinds.get("a"), null);
  kinds.remember("a", "yjs");
  kinds.remember("b", "crdt");
  kinds.remember("c", "something-else");
  assert.equal(kinds.get("a"), "yjs");
  assert.equal(kinds.get("b"), "crdt");
  assert.equal(kinds.get("c"), null);
  assert.equal(new KindCache(store).get("a"), "yjs"); // another page load
  kinds.remember("a", "crdt"); // the server said otherwise since
  assert.equal(kinds.get("a"), "crdt");
});

test("a damaged or foreign stored value is ignored, never thrown", () => {
  for (const raw of ["{", "[1,2]", "null", '"x"', '{"a": 7}', '{"a": "YJS"}']) {
    const kinds = new KindCache(memory({ kinds: raw }));
    assert.equal(kinds.get("a"), null, raw);
    kinds.remember("b", "yjs");
    assert.equal(kinds.get("b"), "yjs", raw);
  }
});

test("the remembered kinds are bounded: the oldest are forgotten first", () => {
  const store = memory();
  const kinds = new KindCache(store);
  for (let i = 0; i < 520; i++) kinds.remember(`d${i}`, i % 2 ? "yjs" : "crdt");
  assert.equal(Object.keys(JSON.parse(store.get("kinds"))).length, 500);
  assert.equal(kinds.get("d0"), null);
  assert.equal(kinds.get("d519"), "yjs");
});

test("links: http(s) and mailto only; a bare host becomes https", () => {
  assert.equal(normalizeHref("https://example.com/a?b=1"), "https://example.com/a?b=1");
  assert.equal(normalizeHref("  example.com/docs "), "https://example.com/docs");
  assert.equal(normalizeHref("http://x.org"), "http://x.org/");
  assert.equal(normalizeHref("mailto:ada@example.com"), "mailto:ada@example.com");
  for (const bad of ["javascript:alert(1)", "JavaScript:alert(1)", "data:text/html,<b>x", "vbscript:x", "file:///etc/passwd", "", "   ", "http://"]) {
    assert.equal(normalizeHref(bad), null, bad);
  }
});

test("colors from other people are used only when they are plain hex", () => {
  assert.equal(safeColor("#0b6bcb", 1), "#0b6bcb");
  for (const bad of ["red; background: url(x)", "#12345", "rgb(1,2,3)", null, 7]) {
    assert.match(safeColor(bad, 42), /^#[0-9a-f]{6}$/);
    assert.equal(safeColor(bad, 42), safeColor(bad, 42)); // the same person keeps one color
  }
});
