import { test } from "node:test";
import assert from "node:assert/strict";
import { pageToken, tokenClaims } from "../src/access.js";

function memory(initial = {}) {
  const data = { ...initial };
  return { data, get: (k) => data[k] ?? null, set: (k, v) => (data[k] = v) };
}

function fakeHistory() {
  return { state: { s: 1 }, urls: [], replaceState(state, _title, url) { this.urls.push([state, url]); } };
}

// a JWT-shaped token (the page never verifies it: the server does)
function jwt(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}.c2ln`;
}

test("a token in the query is kept for the tab and removed from the address bar", () => {
  const tab = memory();
  const hist = fakeHistory();
  const token = pageToken({ href: "https://x.test/app/?lang=en&token=abc.def.ghi#/d/notes" }, tab, hist);
  assert.equal(token, "abc.def.ghi");
  assert.equal(tab.data.token, "abc.def.ghi");
  assert.deepEqual(hist.urls, [[{ s: 1 }, "/app/?lang=en#/d/notes"]]);
});

test("a reload without the query uses the stored token; nothing stored means none", () => {
  const hist = fakeHistory();
  assert.equal(pageToken({ href: "https://x.test/#/d/a" }, memory({ token: "t.u.v" }), hist), "t.u.v");
  assert.equal(pageToken({ href: "https://x.test/" }, memory(), hist), null);
  assert.deepEqual(hist.urls, []);
});

test("an empty token parameter is stripped and means none (the stored one stays)", () => {
  const tab = memory({ token: "old.t.k" });
  const hist = fakeHistory();
  assert.equal(pageToken({ href: "https://x.test/?token=" }, tab, hist), null);
  assert.equal(tab.data.token, "old.t.k");
  assert.deepEqual(hist.urls, [[{ s: 1 }, "/"]]);
});

test("the claims are read for display, garbage gives none", () => {
  assert.deepEqual(tokenClaims(jwt({ sub: "u1", name: "Zoë 🌍", color: "#112233" })), {
    sub: "u1",
    name: "Zoë 🌍",
    color: "#112233",
  });
  for (const bad of [null, "", "abc", "a.!!!.c", `a.${Buffer.from("[1,2]").toString("base64url")}.c`, "a.bm90IGpzb24.c"]) {
    assert.deepEqual(tokenClaims(bad), {}, String(bad));
  }
});
