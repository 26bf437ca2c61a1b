// Two tabs of one browser are two people (src/identity.js). Run: node --test test/
import assert from "node:assert/strict";
import { test } from "node:test";
import { initialIdentity, lookalikeFix } from "../src/identity.js";

const PALETTE = ["#111111", "#222222", "#333333"];
const memory = (init = {}) => {
  const m = new Map(Object.entries(init));
  return { get: (k) => m.get(k) ?? null, set: (k, v) => m.set(k, v), m };
};
const member = (session, name, color, self = false) => ({ session, user: { name, color }, self });

test("a guest name and a color are the tab's; a typed name is the browser's", () => {
  const local = memory();
  const tab = memory();
  const first = initialIdentity(local, tab, PALETTE);
  assert.match(first.name, /^Guest \d{3}$/);
  assert.equal(first.chosen, false);
  assert.deepEqual(initialIdentity(local, tab, PALETTE), first); // a reload keeps them
  assert.equal(local.m.size, 0); // nothing shared with other tabs
  assert.deepEqual(initialIdentity(memory({ name: "Ada" }), memory(), PALETTE).chosen, true);
  assert.equal(initialIdentity(memory({ name: "Guest 539" }), memory(), PALETTE).chosen, false);
});

test("the later of two look-alikes moves to a free name and color; the earlier stays", () => {
  const members = [member("a", "Guest 539", "#111111"), member("b", "Guest 539", "#111111", true)];
  const me = { name: "Guest 539", color: "#111111", chosen: false };
  let draws = [0.0, 0.5]; // first guess "Guest 100"
  const fix = lookalikeFix(members, "b", me, PALETTE, () => draws.shift() ?? 0.5);
  assert.notEqual(fix.name, "Guest 539");
  assert.ok(["#222222", "#333333"].includes(fix.color));
  const earlier = [member("a", "Guest 539", "#111111", true), member("b", "Guest 539", "#111111")];
  assert.deepEqual(lookalikeFix(earlier, "a", me, PALETTE), {});
  assert.deepEqual(lookalikeFix(members, "b", { ...me, chosen: true, color: "#222222" }, PALETTE), {});
  draws = [];
});
