// The checksum (src/checksum.js) against the vectors Python checks too, and a thin client that
// verifies its copy: a corrupted copy is detected and a snapshot rejoin repairs it exactly.
// Run: node --test test/
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { crc32 } from "node:zlib";
import { test } from "node:test";
import { textChecksum } from "../src/checksum.js";
import { ThinDocState } from "../src/thin.js";

const NODE = "text:body";
const VECTORS = JSON.parse(readFileSync(new URL("../../tests/checksum_vectors.json", import.meta.url), "utf8"));

test("textChecksum matches the shared vectors (astral characters, lone surrogates)", () => {
  assert.ok(VECTORS.vectors.length >= 10);
  for (const { name, text, checksum } of VECTORS.vectors) assert.equal(textChecksum(text), checksum, name);
});

test("textChecksum is zlib's CRC-32 of the UTF-8 bytes at every length and alignment", () => {
  const pieces = ["a", "é", "😀", "\ud800", "\udfff", "z", "€", "\u0000"];
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) >>> 0);
  for (let length = 0; length < 300; length++) {
    let text = "";
    while (text.length < length) text += pieces[next() % pieces.length];
    // zlib sees what TextEncoder writes: a lone surrogate as U+FFFD, as textChecksum must
    assert.equal(textChecksum(text), crc32(new TextEncoder().encode(text)), `length ${length}`);
  }
  const large = "ab😀é".repeat(400_000); // past the reused buffer's bound: a buffer of its own
  assert.equal(textChecksum(large), crc32(new TextEncoder().encode(large)));
  assert.equal(textChecksum("short after large"), crc32(Buffer.from("short after large")));
});

/** A client joined at version 1 with `text`, as the server would have it. */
function joined(text) {
  const state = new ThinDocState("d", "me");
  state.joinMessage();
  state.onJoined({ type: "joined", doc: "d", mode: "thin", version: 1, rights: ["write"], snapshot: { [NODE]: { kind: "text", value: text } }, roots: { body: NODE } });
  return state;
}

const check = (version, text) => ({ type: "checksum", doc: "d", version, sums: { [NODE]: textChecksum(text) } });

test("a copy equal to the server's passes; another version is not checked", () => {
  const state = joined("héllo 😀");
  assert.deepEqual(state.onChecksum(check(1, "héllo 😀")), []);
  assert.deepEqual(state.onChecksum(check(2, "something else")), []);
  assert.equal(state.divergences, 0);
  assert.equal(state.rejoinNeeded, false);
});

test("a corrupted local view is detected and the snapshot rejoin restores the server's text", () => {
  const state = joined("héllo 😀 world");
  state.local.set(NODE, "héllo 😀 wXrld!"); // a bug: the view no longer matches the server copy
  assert.deepEqual(state.onChecksum(check(1, "héllo 😀 world")), [NODE]);
  assert.equal(state.divergences, 1);
  assert.equal(state.rejoinNeeded, true);
  const join = state.joinMessage();
  assert.equal(join.version, undefined); // a snapshot, not a catch-up
  const changes = state.onJoined({ type: "joined", doc: "d", mode: "thin", version: 3, rights: ["write"], snapshot: { [NODE]: { kind: "text", value: "héllo 😀 world, again" } } });
  assert.ok(changes.length > 0);
  assert.equal(state.value(NODE), "héllo 😀 world, again");
  state.checkInvariants();
});

test("with edits outstanding, the server copy is still checked exactly and the merge keeps them", () => {
  const state = joined("abc");
  state.localEdit(NODE, [3, "!"]); // pending
  assert.deepEqual(state.onChecksum(check(1, "abc")), []); // local "abc!" is not compared
  state.server.set(NODE, "aXc"); // a bug: a remote misapplied to the server copy
  state.local.set(NODE, "aXc!");
  assert.deepEqual(state.onChecksum(check(1, "abc")), [NODE]);
  state.joinMessage();
  state.onJoined({ type: "joined", doc: "d", mode: "thin", version: 2, rights: ["write"], snapshot: { [NODE]: { kind: "text", value: "abcd" } } });
  assert.equal(state.value(NODE), "abcd!");
  state.checkInvariants();
});
