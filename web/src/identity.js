// Who this tab is, without auth: a name the user typed is kept for the browser (localStorage); a
// guest name and the color are per tab (sessionStorage), so two windows of one browser are two
// people; and a tab moves off a guest name or a color that someone already present shows.

/** `localStorage` or `sessionStorage` under "cowrite.<key>", failing softly (private modes). */
export function storage(kind) {
  return {
    get(key) {
      try {
        return globalThis[kind].getItem(`cowrite.${key}`);
      } catch {
        return null;
      }
    },
    set(key, value) {
      try {
        globalThis[kind].setItem(`cowrite.${key}`, value);
      } catch {
        /* private mode */
      }
    },
  };
}

const GUEST = /^Guest \d{3}$/; // (earlier versions stored guest names in localStorage)

export function guestName(random = Math.random) {
  return `Guest ${Math.floor(100 + random() * 900)}`;
}

/** {name, chosen, color} for this tab, from the browser's and the tab's storage. */
export function initialIdentity(local, tab, palette, random = Math.random) {
  let chosen = local.get("name");
  if (chosen && GUEST.test(chosen)) chosen = null;
  const name = chosen || tab.get("guestName") || guestName(random);
  if (!chosen) tab.set("guestName", name);
  let color = tab.get("color") || local.get("color");
  if (!color || !/^#[0-9a-fA-F]{6}$/.test(color)) color = palette[Math.floor(random() * palette.length)];
  tab.set("color", color);
  return { name, chosen: Boolean(chosen), color };
}

/** What to change so that we do not look like someone present: {name?, color?} (empty: nothing).
 *  Only the later session of two alike moves, so two tabs never swap back and forth. `members`
 *  are presence entries ({session, user: {name, color}, self}); a chosen name is never changed. */
export function lookalikeFix(members, mySession, me, palette, random = Math.random) {
  const all = [...members];
  const earlier = all.filter((m) => !m.self && m.session < mySession);
  const fix = {};
  if (!me.chosen && earlier.some((m) => m.user.name === me.name)) {
    const names = new Set(all.map((m) => m.user.name));
    let name = guestName(random);
    for (let i = 0; i < 50 && names.has(name); i++) name = guestName(random);
    fix.name = name;
  }
  const lower = (c) => String(c).toLowerCase();
  if (earlier.some((m) => lower(m.user.color) === lower(me.color))) {
    const used = new Set(all.map((m) => lower(m.user.color)));
    const free = palette.filter((c) => !used.has(lower(c)));
    const pool = free.length ? free : palette.filter((c) => lower(c) !== lower(me.color));
    fix.color = pool[Math.floor(random() * pool.length)];
  }
  return fix;
}
