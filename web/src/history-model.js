// The history panel's data, without the DOM (history-panel.js draws it): versions grouped into
// editing sessions the way the server's retention groups them, a diff's authored spans laid over
// the text they describe, author colors. Pure functions, tested by web/test/history-model.test.js.

/** Versions (oldest first, as `GET /versions` lists them) in editing sessions, oldest first: a
 *  run of versions with pauses shorter than `gapMs` (the server's `session_gap_s`, the grouping
 *  its retention keeps one version of); a named version closes its session, as in retention.
 *  Each: {versions, start, end (ms), authors [{id, name}] in order of appearance, size}. */
export function groupSessions(versions, gapMs) {
  const sessions = [];
  let open = null;
  for (const v of versions) {
    if (!open || v.time_ms - open.end >= gapMs) {
      open = { versions: [], start: v.time_ms, end: v.time_ms, authors: [], size: 0 };
      sessions.push(open);
    }
    open.versions.push(v);
    open.end = Math.max(open.end, v.time_ms);
    open.size += v.size || 0;
    for (const a of v.authors || []) {
      if (!open.authors.some((b) => b.id === a.id)) open.authors.push(a);
    }
    if (v.name !== null && v.name !== undefined) open = null;
  }
  return sessions;
}

/** The text of version `to` cut into runs by a diff's `spans` (from the previous version):
 *  {kind: "same" | "ins" | "del", text, by, authors}. Counts are code points (the protocol's
 *  unit); retained and inserted text comes from `text` (the new value), deleted text from the
 *  span itself. Text the spans do not cover (a trailing retain) is "same". */
export function overlay(text, spans) {
  const cps = Array.from(text);
  const out = [];
  let at = 0;
  const push = (kind, piece, span) => {
    if (!piece) return;
    const last = out[out.length - 1];
    if (last && last.kind === kind && kind === "same") last.text += piece;
    else out.push({ kind, text: piece, by: span?.by ?? null, authors: span?.authors ?? null });
  };
  for (const s of spans || []) {
    const n = Math.max(0, Number(s.count) || 0);
    if (s.op === "retain") {
      push("same", cps.slice(at, at + n).join(""));
      at += n;
    } else if (s.op === "insert") {
      push("ins", cps.slice(at, at + n).join(""), s);
      at += n;
    } else if (s.op === "delete") {
      push("del", typeof s.text === "string" ? s.text : "", s);
    }
  }
  push("same", cps.slice(at).join(""));
  return out;
}

/** The text change of root `root` in a diff's `changes` (path [root], kind "text", or "xml": a
 *  rich-text document's XML fragment, compared as its XML text), or null. */
export function textChange(changes, root) {
  return (changes || []).find((c) => (c.kind === "text" || c.kind === "xml") && c.path?.length === 1 && c.path[0] === root) || null;
}

/** Characters inserted and deleted by a text change's spans. */
export function countChanges(spans) {
  let inserted = 0;
  let deleted = 0;
  for (const s of spans || []) {
    if (s.op === "insert") inserted += s.count;
    else if (s.op === "delete") deleted += s.count;
  }
  return { inserted, deleted };
}

/** Who a list of authors is, for people: "Ada", "Ada and Grace", "Ada, Grace and 2 others". */
export function authorNames(authors) {
  const names = (authors || []).map(displayName);
  if (names.length === 0) return "unknown";
  if (names.length === 1) return names[0];
  if (names.length === 2) return `${names[0]} and ${names[1]}`;
  if (names.length === 3) return `${names[0]}, ${names[1]} and ${names[2]}`;
  return `${names[0]}, ${names[1]} and ${names.length - 2} others`;
}

export function displayName(author) {
  return (author?.name || "").trim() || author?.id || "unknown";
}

/** Stable, distinct colors per author for one document's history: in order of first
 *  appearance, from `palette` (so ten authors get ten colors, the same on every reload). */
export class AuthorColors {
  constructor(palette) {
    this.palette = palette;
    this.colors = new Map();
  }

  /** Give colors to the authors of `versions` (oldest first) in that order. */
  learn(versions) {
    for (const v of versions) for (const a of v.authors || []) this.of(a);
  }

  of(author) {
    const key = author?.id ?? "";
    let color = this.colors.get(key);
    if (!color) {
      color = this.palette[this.colors.size % this.palette.length];
      this.colors.set(key, color);
    }
    return color;
  }
}

/** "14:05" today, "Dec 7, 14:05" this year, else with the year (`seconds`: "14:05:09"). */
export function formatTime(ms, now = Date.now(), seconds = false) {
  const d = new Date(ms);
  const today = new Date(now);
  const time = d.toLocaleTimeString([], seconds ? { hour: "2-digit", minute: "2-digit", second: "2-digit" } : { hour: "2-digit", minute: "2-digit" });
  if (d.toDateString() === today.toDateString()) return time;
  const opts = d.getFullYear() === today.getFullYear() ? { month: "short", day: "numeric" } : { year: "numeric", month: "short", day: "numeric" };
  return `${d.toLocaleDateString([], opts)}, ${time}`;
}

/** A session's time span: "14:05 – 14:12", or one time when it is one minute. */
export function formatSpan(start, end, now = Date.now()) {
  const a = formatTime(start, now);
  const b = formatTime(end, now);
  if (a === b) return a;
  const sameDay = new Date(start).toDateString() === new Date(end).toDateString();
  return `${a} – ${sameDay ? new Date(end).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : b}`;
}

/** How a version came to be, in words. */
export function howText(v) {
  if (v.how === "restored") return v.restored_from !== null && v.restored_from !== undefined ? `restored version ${v.restored_from}` : "restored";
  if (v.how === "imported") return "imported";
  if (v.how === "server") return "changed by the server";
  return "typed";
}
