// Who is in the open document (the web page's people list) and who we are (the name field of
// the top bar): our name is kept for the browser; two people in a document must not look alike,
// so a guest name or color of ours changes when it clashes (identity.js).

import { lookalikeFix } from "./identity.js";
import { $, PALETTE, renderPeopleList, safeColor } from "./ui.js";
import { accessToken, claimed, me, page, store, tabStore } from "./page.js";

const nameInput = $("my-name");
nameInput.value = page.name;
nameInput.readOnly = Boolean(accessToken && claimed.name); // the token names us
$("my-swatch").style.background = page.color;
let nameTimer = null;
nameInput.addEventListener("input", () => {
  clearTimeout(nameTimer);
  nameTimer = setTimeout(applyName, 400);
});
nameInput.addEventListener("change", applyName);
function applyName() {
  clearTimeout(nameTimer);
  const name = nameInput.value.trim().slice(0, 60);
  if (!name || name === page.name) return;
  page.name = name;
  me.chosen = true;
  store.set("name", name);
  page.client.setUser({ name });
  if (page.current) renderPeople();
  page.rich?.setUser({ name });
}

/** Two people in a document must not look alike (identity.js): change our guest name or color. */
export function avoidLookalikes(members, mySession) {
  if (mySession === null || mySession === undefined) return;
  const fix = lookalikeFix(members, mySession, { name: page.name, color: page.color, chosen: me.chosen }, PALETTE);
  if (fix.name) {
    page.name = nameInput.value = fix.name;
    tabStore.set("guestName", fix.name);
  }
  if (fix.color) {
    page.color = fix.color;
    tabStore.set("color", fix.color);
    $("my-swatch").style.background = fix.color;
  }
  if (fix.name || fix.color) {
    page.client.setUser(fix);
    page.rich?.setUser(fix);
  }
}

export function renderPeople() {
  const doc = page.current;
  if (!doc) return;
  const people = [{ key: "self", name: page.name, color: page.color, active: !document.hidden, self: true }];
  const others = [...doc.session.members.values()].filter((m) => !m.self);
  others.sort((a, b) => String(a.user.name).localeCompare(String(b.user.name)) || a.session.localeCompare(b.session));
  for (const m of others) {
    people.push({ key: m.session, name: m.user.name || "Anonymous", color: safeColor(m.user.color, m.session), active: m.active, self: false });
  }
  renderPeopleList(people);
}

document.addEventListener("visibilitychange", () => {
  page.rich?.setActive(!document.hidden);
  if (!page.current) return;
  page.current.session.setActive(!document.hidden);
  renderPeople();
});
