// The history panel's data (src/history-model.js): sessions as retention groups them, diff spans
// laid over the text, garbage from the server. Run: node --test test/
import assert from "node:assert/strict";
import { test } from "node:test";
import { AuthorColors, authorNames, countChanges, groupSessions, overlay, textChange } from "../src/history-model.js";

const ada = { id: "k-ada", name: "Ada" };
const grace = { id: "k-grace", name: "Grace" };
const v = (id, time_ms, authors = [ada], extra = {}) => ({ id, time_ms, authors, size: 1, name: null, ...extra });

test("versions with pauses under the gap are one session; a longer pause or a name ends one", () => {
  const gap = 300_000;
  const versions = [v(1, 0), v(2, 1000, [grace]), v(3, 1000 + gap), v(4, 2000 + gap, [ada], { name: "draft" }), v(5, 3000 + gap)];
  const sessions = groupSessions(versions, gap);
  assert.deepEqual(
    sessions.map((s) => s.versions.map((x) => x.id)),
    [[1, 2], [3, 4], [5]],
  );
  assert.deepEqual(sessions[0].authors, [ada, grace]);
  assert.equal(sessions[0].start, 0);
  assert.equal(sessions[0].end, 1000);
  assert.equal(sessions[0].size, 2);
  assert.deepEqual(groupSessions([], gap), []);
});

test("spans lay insertions and deletions over the new text, in code points", () => {
  // "hello 😀 world" -> "hello 😀 everyone!": delete "world", insert "everyone", keep "!"
  const spans = [
    { op: "retain", count: 8 },
    { op: "insert", count: 8, text: "everyone", by: 5, authors: [grace] },
    { op: "delete", count: 5, text: "world", by: 5, authors: [grace] },
    { op: "insert", count: 1, text: "!", by: 6, authors: [ada] },
  ];
  const runs = overlay("hello 😀 everyone!", spans);
  assert.deepEqual(
    runs.map((r) => [r.kind, r.text, r.authors?.[0]?.name ?? null]),
    [
      ["same", "hello 😀 ", null],
      ["ins", "everyone", "Grace"],
      ["del", "world", "Grace"],
      ["ins", "!", "Ada"],
    ],
  );
  // without a trailing retain the rest of the text is unchanged
  assert.deepEqual(overlay("abc", [{ op: "insert", count: 1, text: "a", by: 1, authors: [ada] }]).map((r) => r.text), ["a", "bc"]);
  assert.deepEqual(countChanges(spans), { inserted: 9, deleted: 5 });
});

test("garbage spans never throw and never invent text", () => {
  const garbage = [
    null,
    [{ op: "retain", count: -4 }],
    [{ op: "insert", count: "x" }],
    [{ op: "delete" }],
    [{ op: "retain", count: 1e9 }],
    [{ op: "teleport", count: 2 }],
    [{}],
  ];
  for (const spans of garbage) {
    const runs = overlay("abc", spans);
    const kept = runs.filter((r) => r.kind !== "del").map((r) => r.text).join("");
    assert.equal(kept, "abc", JSON.stringify(spans));
  }
  assert.equal(textChange(null, "body"), null);
  assert.equal(textChange([{ kind: "text", path: ["other"] }, { kind: "register", path: ["body"] }], "body"), null);
  assert.deepEqual(textChange([{ kind: "text", path: ["body"], spans: [] }], "body").spans, []);
});

test("authors get distinct colors in order of appearance, and readable names", () => {
  const colors = new AuthorColors(["#111111", "#222222"]);
  colors.learn([v(1, 0, [grace]), v(2, 0, [ada, grace])]);
  assert.equal(colors.of(grace), "#111111");
  assert.equal(colors.of(ada), "#222222");
  assert.equal(colors.of({ id: "third" }), "#111111"); // more authors than colors: they cycle
  assert.equal(authorNames([]), "unknown");
  assert.equal(authorNames([ada, grace]), "Ada and Grace");
  assert.equal(authorNames([ada, grace, { id: "k-x", name: " " }, { id: "k-y", name: "Y" }]), "Ada, Grace and 2 others");
  assert.equal(authorNames([{ id: "anonymous", name: "" }]), "anonymous");
});
