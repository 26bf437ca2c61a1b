// The version history panel of the page (app.js opens it with the "History" button): a timeline
// of editing sessions, a slider and a list to step through versions, the selected version shown
// read-only with the changes since the previous one highlighted per author (or, toggled, every
// character coloured by who wrote it), "Restore this version" and "Name this version". Versions
// are read a page at a time from the newest (`GET /versions?before=`): older pages come when the
// list is scrolled to its end, by "Load older versions", and when the slider, the buttons or the
// keyboard step past the oldest one read, so a document with 260,000 versions opens as fast as
// one with a hundred. All of it
// through the REST history API (docs/protocol.md, "REST: version history") with the page's own
// `api` (so its token handling is the page's). A restore is new edits the server broadcasts: the
// live editor gets them like anyone's. User data reaches the DOM only as textContent.

import { PALETTE, el, withAlpha } from "./ui.js";
import { AuthorColors, authorNames, countChanges, displayName, formatSpan, formatTime, groupSessions, howText, overlay, textChange } from "./history-model.js";

const BODY_ROOT = "body";
const RICH_ROOT = "default"; // a rich-text document's XML fragment (rich.js), shown as its XML
const TITLE_ROOT = "title";
const PAGE = 200; // versions per request (the newest first; older pages on demand)
const NEWEST = "9223372036854775807"; // `before` for the newest page (above every version id)
const SHOW_DELAY_MS = 120; // holding an arrow key steps through versions without a request each
// the page's collaborator colors, reordered so that the first authors get far-apart hues
const AUTHOR_PALETTE = [5, 1, 3, 7, 9, 4, 2, 6, 8, 0].map((i) => PALETTE[i]);

export class HistoryPanel {
  /** `root`: the panel's (empty) section; `button`: what opens it (aria-expanded follows);
   *  `api(path, {method, body})`: the page's REST helper; `toast(text)`; `onClose()`. */
  constructor({ root, button, api, toast, onClose = () => {}, onRestored = () => {} }) {
    this.root = root;
    this.button = button;
    this.api = api;
    this.toast = toast;
    this.onClose = onClose;
    this.onRestored = onRestored; // (docId, the REST answer {restored, version, edits})
    this.docId = null;
    this.rich = false;
    this.versions = []; // oldest first: the newest ones, as far back as pages were read
    this.older = null; // `before` for the page of older versions (null: none, all read)
    this.olderLoad = null; // the page of older versions being read (a promise)
    this.sessions = [];
    this.index = -1; // the selected version (in this.versions)
    this.loading = 0; // bumped by every (re)load and close: late answers are dropped
    this.viewToken = 0;
    this.showTimer = null;
    this.staleTimer = null;
    this.cache = new Map(); // "value:ID" / "diff:A:B" -> answer
    this.colors = new AuthorColors(AUTHOR_PALETTE);
    this.gapMs = 300_000;
    this._build();
  }

  get isOpen() {
    return this.docId !== null;
  }

  toggle(docId, opts) {
    if (this.isOpen) this.close();
    else this.open(docId, opts);
  }

  /** Open for document `docId` (`rich`: a rich-text document: its XML fragment `default` is
   *  shown, as XML text). */
  async open(docId, { rich = false } = {}) {
    this.docId = docId;
    this.rich = rich;
    this.cache.clear();
    this.colors = new AuthorColors(AUTHOR_PALETTE);
    this.root.hidden = false;
    this.root.closest(".doc")?.classList.add("history-open");
    this.button.setAttribute("aria-expanded", "true");
    await this.reload({ select: "latest" });
    if (this.isOpen) (this.versions.length ? this.list : this.closeBtn).focus();
  }

  close({ focus = true } = {}) {
    if (!this.isOpen) return;
    this.docId = null;
    this.loading++;
    this.viewToken++;
    clearTimeout(this.showTimer);
    clearTimeout(this.staleTimer);
    this.root.hidden = true;
    this.root.closest(".doc")?.classList.remove("history-open");
    this.button.setAttribute("aria-expanded", "false");
    this.versions = [];
    this.sessions = [];
    this.older = null;
    this.list.replaceChildren();
    this.olderBtn.hidden = true;
    this.onClose();
    if (focus) this.button.focus();
  }

  /** The document changed (live): offer the newer versions without moving the selection. */
  documentChanged() {
    if (!this.isOpen) return;
    clearTimeout(this.staleTimer);
    this.staleTimer = setTimeout(() => (this.refreshBtn.hidden = !this.isOpen), 500);
  }

  // ------------------------------------------------------------------ loading

  /** Read the newest page of versions and redraw; `select`: "latest", or a version id. */
  async reload({ select = "latest" } = {}) {
    const token = ++this.loading;
    const docId = this.docId;
    this.refreshBtn.hidden = true;
    this._message("Loading versions…");
    let page;
    try {
      page = await this._page(docId, NEWEST);
      if (token !== this.loading) return;
    } catch (err) {
      if (token !== this.loading) return;
      this.versions = [];
      this.sessions = [];
      this.older = null;
      this.list.replaceChildren();
      this.olderBtn.hidden = true;
      this._emptyView();
      const kind = this.rich ? "rich-text documents" : "this document";
      this._message(`Version history is not available for ${kind} on this server: ${err.message}`, true);
      return;
    }
    const versions = page.versions;
    if (typeof page.session_gap_s === "number" && page.session_gap_s > 0) this.gapMs = page.session_gap_s * 1000;
    this.versions = versions;
    this.older = page.older ?? null;
    this.colors.learn(versions);
    this.sessions = groupSessions(versions, this.gapMs);
    this._message(versions.length ? "" : "No versions yet: every stored edit becomes one.");
    this._renderList();
    const wanted = select === "latest" ? versions.length - 1 : versions.findIndex((v) => v.id === select);
    this.index = -1;
    if (versions.length) this.select(wanted >= 0 ? wanted : versions.length - 1, { now: true });
    else this._emptyView();
  }

  _page(docId, before) {
    return this.api(`documents/${encodeURIComponent(docId)}/versions?limit=${PAGE}&before=${before}`);
  }

  /** Read the page of versions older than those read (once at a time); resolves to how many
   *  came (0: none older, or the panel closed or reloaded meanwhile). The selection stays on
   *  the version it was on. */
  loadOlder() {
    if (this.older === null || !this.isOpen) return Promise.resolve(0);
    if (this.olderLoad) return this.olderLoad;
    const token = this.loading;
    const docId = this.docId;
    this.olderBtn.disabled = true;
    this.olderBtn.textContent = "Loading older versions…";
    this.olderLoad = this._page(docId, this.older)
      .then((page) => {
        if (token !== this.loading) return 0;
        const added = page.versions.filter((v) => v.id < (this.versions[0]?.id ?? Infinity));
        this.older = page.older ?? null;
        this.versions = [...added, ...this.versions];
        this.colors.learn(added);
        this.sessions = groupSessions(this.versions, this.gapMs);
        const index = this.index + added.length;
        this._renderList();
        this._mark(index);
        return added.length;
      })
      .catch((err) => {
        if (token === this.loading) this.toast(`Could not load older versions: ${err.message}`);
        return 0;
      })
      .finally(() => {
        this.olderLoad = null;
        this.olderBtn.disabled = false;
        this.olderBtn.textContent = "Load older versions";
      });
    return this.olderLoad;
  }

  /** Select version `index` after reading older pages when it is before the oldest one read
   *  (-1: the one just older than it). */
  async _selectOlder(index) {
    const token = this.loading;
    const added = await this.loadOlder();
    if (token !== this.loading || !this.versions.length) return;
    this.select(Math.max(0, index + added));
  }

  async _get(key, path) {
    if (this.cache.has(key)) return this.cache.get(key);
    const answer = await this.api(path);
    this.cache.set(key, answer);
    return answer;
  }

  // ------------------------------------------------------------------ the DOM

  _build() {
    const r = this.root;
    this.countText = el("span", { class: "history-count" });
    this.refreshBtn = el("button", { type: "button", class: "btn small", text: "Show newer versions", hidden: true, onclick: () => this.reload({ select: "latest" }) });
    this.closeBtn = el("button", { type: "button", class: "btn small", "aria-label": "Close version history", text: "Close", onclick: () => this.close() });
    const head = el("div", { class: "history-head" }, el("h2", { id: "history-heading", class: "history-title", text: "Version history" }), this.countText, el("span", { class: "history-spacer" }), this.refreshBtn, this.closeBtn);
    this.messageBox = el("p", { class: "history-message", role: "status", "aria-live": "polite" });

    this.slider = el("input", { type: "range", id: "history-slider", min: "0", max: "0", step: "1", value: "0", "aria-label": "Step through versions (oldest to newest)" });
    this.slider.addEventListener("input", () => {
      const index = Number(this.slider.value);
      this.select(index);
      if (index === 0) this.loadOlder(); // dragged to the oldest read: read older ones
    });
    this.prevBtn = el("button", { type: "button", class: "btn small icon-text", "aria-label": "Previous (older) version", title: "Older version", text: "‹ Older", onclick: () => this.step(-1) });
    this.nextBtn = el("button", { type: "button", class: "btn small icon-text", "aria-label": "Next (newer) version", title: "Newer version", text: "Newer ›", onclick: () => this.step(1) });
    const stepper = el("div", { class: "history-stepper" }, this.prevBtn, this.slider, this.nextBtn);
    this.list = el("div", { id: "history-list", class: "history-list", role: "listbox", tabindex: "0", "aria-label": "Versions by editing session, newest first", "aria-describedby": "history-keys" });
    this.list.addEventListener("keydown", (e) => this._listKey(e));
    const keys = el("p", { id: "history-keys", class: "hint", text: "↑ ↓ step through versions · Page Up/Down: sessions · Home/End: newest/oldest · Esc closes" });
    this.list.addEventListener("scroll", () => {
      const l = this.list;
      if (this.older !== null && l.scrollTop + l.clientHeight >= l.scrollHeight - 48) this.loadOlder();
    });
    this.olderBtn = el("button", { type: "button", class: "btn small history-older", id: "history-older", text: "Load older versions", hidden: true, onclick: () => this.loadOlder() });
    this.slider.addEventListener("keydown", (e) => {
      // past the oldest version read: read older ones (the range input stops at its minimum)
      if ((e.key === "ArrowLeft" || e.key === "ArrowDown" || e.key === "Home" || e.key === "PageDown") && this.index === 0 && this.older !== null) {
        e.preventDefault();
        this._selectOlder(-1);
      }
    });
    const timeline = el("nav", { class: "history-timeline", "aria-label": "Versions" }, stepper, this.list, this.olderBtn, keys);

    this.versionTitle = el("h3", { id: "history-version-title", class: "history-version-title" });
    this.versionMeta = el("p", { class: "history-meta" });
    this.restoreBtn = el("button", { type: "button", class: "btn small primary", id: "history-restore", text: "Restore this version", onclick: () => this.restore() });
    this.nameBtn = el("button", { type: "button", class: "btn small", id: "history-name", text: "Name this version", onclick: () => this._openNameForm() });
    this.authorToggle = el("input", { type: "checkbox", id: "history-authorship" });
    this.authorToggle.addEventListener("change", () => this.select(this.index, { now: true, force: true }));
    const toggle = el("label", { class: "history-toggle", for: "history-authorship" }, this.authorToggle, " Colour text by author");
    const actions = el("div", { class: "history-actions" }, this.restoreBtn, this.nameBtn, toggle);

    this.nameInput = el("input", { type: "text", id: "history-name-input", maxlength: "200", placeholder: "e.g. Draft sent for review", autocomplete: "off" });
    this.nameForm = el(
      "form",
      { class: "history-name-form", hidden: true, autocomplete: "off" },
      el("label", { for: "history-name-input", text: "Name" }),
      this.nameInput,
      el("button", { type: "submit", class: "btn small primary", text: "Save" }),
      el("button", { type: "button", class: "btn small", text: "Cancel", onclick: () => this._closeNameForm() }),
    );
    this.nameForm.addEventListener("submit", (e) => {
      e.preventDefault();
      this._saveName();
    });
    this.nameInput.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.stopPropagation();
        this._closeNameForm();
      }
    });

    this.legend = el("ul", { class: "history-legend", "aria-label": "Authors" });
    this.summary = el("p", { class: "history-summary" });
    this.note = el("p", { class: "history-note", hidden: true });
    this.text = el("div", { class: "history-text", tabindex: "0", role: "document", "aria-labelledby": "history-version-title", "aria-describedby": "history-summary-text" });
    this.summary.id = "history-summary-text";
    const view = el("section", { class: "history-view", "aria-labelledby": "history-version-title" }, this.versionTitle, this.versionMeta, actions, this.nameForm, this.legend, this.summary, this.note, this.text);

    r.replaceChildren(head, this.messageBox, el("div", { class: "history-body" }, timeline, view));
    r.setAttribute("aria-labelledby", "history-heading");
    r.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && !e.defaultPrevented) {
        e.preventDefault();
        this.close();
      }
    });
  }

  _message(text, error = false) {
    this.messageBox.textContent = text;
    this.messageBox.hidden = !text;
    this.messageBox.classList.toggle("error", error);
  }

  _renderList() {
    const n = this.versions.length;
    const s = this.sessions.length;
    const more = this.older !== null ? "+" : ""; // older ones not read yet
    this.countText.textContent = n ? `${s}${more} session${s === 1 && !more ? "" : "s"} · ${n}${more} version${n === 1 && !more ? "" : "s"}` : "";
    this.olderBtn.hidden = this.older === null;
    this.slider.max = String(Math.max(0, n - 1));
    this.slider.disabled = n < 2;
    this.options = new Array(n);
    const groups = [];
    let at = 0;
    const starts = [];
    for (const session of this.sessions) {
      starts.push(at);
      at += session.versions.length;
    }
    // newest session first, newest version first within it
    for (let si = this.sessions.length - 1; si >= 0; si--) {
      const session = this.sessions[si];
      const headId = `history-session-${si}`;
      const people = el("span", { class: "history-people" }, ...session.authors.map((a) => this._chip(a)));
      const head = el(
        "div",
        { class: "history-session-head", id: headId, role: "presentation" },
        el("span", { class: "history-session-time", text: formatSpan(session.start, session.end) }),
        el("span", { class: "history-session-count", text: `${session.versions.length}${si === 0 && this.older !== null ? "+" : ""} version${session.versions.length === 1 ? "" : "s"}` }),
        people,
      );
      const group = el("div", { class: "history-session", role: "group", "aria-labelledby": headId }, head);
      for (let k = session.versions.length - 1; k >= 0; k--) {
        const index = starts[si] + k;
        const option = this._option(this.versions[index], index);
        this.options[index] = option;
        group.append(option);
      }
      groups.push(group);
    }
    this.list.replaceChildren(...groups);
  }

  _option(v, index) {
    const label = el("span", { class: "history-option-main" }, el("span", { class: "history-option-time", text: formatTime(v.time_ms, Date.now(), true) }), " ", el("span", { class: "history-option-who", text: authorNames(v.authors) }));
    const badges = el("span", { class: "history-badges" });
    if (v.name) badges.append(el("span", { class: "history-badge named", text: v.name }));
    if (v.how !== "typed") badges.append(el("span", { class: "history-badge how", title: howText(v), text: v.how === "restored" ? `↺ ${v.restored_from ?? ""}` : v.how }));
    if (!v.available) badges.append(el("span", { class: "history-badge gone", text: "not kept" }));
    const dot = el("span", { class: "history-dot", "aria-hidden": "true" });
    dot.style.background = this.colors.of(v.authors?.[0]);
    const option = el("div", { class: "history-option", role: "option", id: `history-v-${v.id}`, "aria-selected": "false", "data-version": String(v.id) }, dot, label, badges);
    option.addEventListener("click", () => {
      this.select(index);
      this.list.focus();
    });
    return option;
  }

  _chip(author) {
    const chip = el("span", { class: "history-chip", title: displayName(author) }, displayName(author));
    chip.style.setProperty("--who", this.colors.of(author));
    return chip;
  }

  // ------------------------------------------------------------------ stepping

  /** Select version `index` (in the list, oldest first) and show it (after a short pause
   *  unless `now`, so that a held arrow key does not send a request per version). */
  select(index, { now = false, force = false } = {}) {
    if (!this.versions.length) return;
    if (index < 0 && this.older !== null) {
      this._selectOlder(index);
      return;
    }
    index = Math.max(0, Math.min(this.versions.length - 1, index));
    const changed = index !== this.index;
    if (!changed && !force) return;
    if (this.index >= 0) this.options[this.index]?.setAttribute("aria-selected", "false");
    this._mark(index);
    this.options[index]?.scrollIntoView?.({ block: "nearest" });
    const v = this.versions[index];
    this._closeNameForm({ focus: false });
    this._renderHead(v);
    clearTimeout(this.showTimer);
    this.root.setAttribute("aria-busy", "true"); // until the version is shown
    const token = ++this.viewToken;
    if (now) this._show(v, token);
    else this.showTimer = setTimeout(() => this._show(v, token), SHOW_DELAY_MS);
  }

  /** Mark version `index` selected in the list, the slider and the buttons (no fetch). */
  _mark(index) {
    this.index = index;
    const option = this.options[index];
    option?.setAttribute("aria-selected", "true");
    this.list.setAttribute("aria-activedescendant", option?.id || "");
    this.slider.value = String(index);
    const v = this.versions[index];
    if (!v) return;
    this.slider.setAttribute("aria-valuetext", `Version ${v.id}${v.name ? ` “${v.name}”` : ""}, ${formatTime(v.time_ms)}, by ${authorNames(v.authors)}`);
    this.prevBtn.disabled = index === 0 && this.older === null;
    this.nextBtn.disabled = index === this.versions.length - 1;
  }

  step(delta) {
    this.select(this.index + delta);
  }

  _listKey(e) {
    const n = this.versions.length;
    if (!n) return;
    const sessionOf = (i) => {
      let at = 0;
      for (let s = 0; s < this.sessions.length; s++) {
        at += this.sessions[s].versions.length;
        if (i < at) return { s, start: at - this.sessions[s].versions.length, end: at - 1 };
      }
      return { s: 0, start: 0, end: 0 };
    };
    let to = null;
    if (e.key === "ArrowUp") to = this.index + 1; // the list shows the newest first
    else if (e.key === "ArrowDown") to = this.index - 1;
    else if (e.key === "Home") to = n - 1;
    else if (e.key === "End") to = this.index === 0 ? -1 : 0; // again at the oldest read: older ones
    else if (e.key === "PageUp") {
      const { end } = sessionOf(this.index);
      to = this.index < end ? end : end + 1 < n ? sessionOf(end + 1).end : end;
    } else if (e.key === "PageDown") {
      const { start } = sessionOf(this.index);
      to = start > 0 ? sessionOf(start - 1).end : this.index > 0 ? 0 : -1;
    } else if (e.key === "Enter") {
      this.text.focus();
    }
    if (to === null) return;
    e.preventDefault();
    this.select(to);
  }

  // ------------------------------------------------------------------ the selected version

  _renderHead(v) {
    const latest = this.index === this.versions.length - 1;
    this.versionTitle.textContent = `Version ${v.id}${v.name ? ` · “${v.name}”` : ""}${latest ? " (current)" : ""}`;
    const when = new Date(v.time_ms);
    this.versionMeta.replaceChildren(
      el("time", { datetime: when.toISOString(), title: when.toLocaleString(), text: when.toLocaleString([], { dateStyle: "medium", timeStyle: "short" }) }),
      " · ",
      howText(v),
      " by ",
      ...v.authors.flatMap((a, i) => (i ? [", ", this._chip(a)] : [this._chip(a)])),
      v.merged > 1 ? ` · ${v.merged} edits merged` : "",
    );
    const usable = v.available;
    this.restoreBtn.disabled = !usable || latest;
    this.restoreBtn.title = latest ? "This is the current version" : usable ? "Make the document's text this version's again (as a new version)" : "This version's content is no longer kept";
    this.nameBtn.disabled = !usable;
    this.nameBtn.textContent = v.name ? "Rename this version" : "Name this version";
  }

  _emptyView() {
    this.versionTitle.textContent = "";
    this.versionMeta.replaceChildren();
    this.restoreBtn.disabled = true;
    this.nameBtn.disabled = true;
    this.legend.replaceChildren();
    this.summary.textContent = "";
    this.note.hidden = true;
    this.text.replaceChildren();
    this.prevBtn.disabled = true;
    this.nextBtn.disabled = true;
  }

  _note(text) {
    this.note.textContent = text;
    this.note.hidden = !text;
  }

  async _show(v, token) {
    const docId = this.docId;
    const doc = encodeURIComponent(docId);
    if (this.versions[0] === v && this.older !== null) {
      await this.loadOlder(); // its previous version, for the changes since it
      if (token !== this.viewToken || docId !== this.docId) return;
    }
    const at = this.versions.indexOf(v);
    const prev = at > 0 ? this.versions[at - 1] : null;
    const authorship = this.authorToggle.checked;
    let value = null;
    let changes = null;
    let problem = "";
    if (!v.available) {
      problem = "This version's content is no longer kept (retention or compaction removed it).";
    } else {
      try {
        value = (await this._get(`value:${v.id}`, `documents/${doc}/versions/${v.id}`)).value;
        const from = authorship ? 0 : prev ? prev.id : 0;
        try {
          changes = (await this._get(`diff:${from}:${v.id}`, `documents/${doc}/diff?from=${from}&to=${v.id}`)).changes;
        } catch (err) {
          problem = authorship ? `Authorship cannot be shown: ${err.message}` : `The changes since the previous version cannot be shown: ${err.message}`;
        }
      } catch (err) {
        problem = `This version cannot be shown: ${err.message}`;
      }
    }
    if (token !== this.viewToken || docId !== this.docId) return;
    this.root.removeAttribute("aria-busy");
    this._note(problem);
    this._renderText(v, value, changes, prev, authorship);
  }

  _renderText(v, value, changes, prev, authorship) {
    const root = this.rich ? RICH_ROOT : BODY_ROOT;
    const body = value && typeof value[root] === "string" ? value[root] : null;
    const change = changes ? textChange(changes, root) : null;
    const runs = body === null ? [] : change ? overlay(body, change.spans) : [{ kind: "same", text: body }];
    const who = new Map();
    const pieces = runs.map((run) => {
      if (run.kind === "same") return document.createTextNode(run.text);
      const author = run.authors?.[0];
      const color = author ? this.colors.of(author) : "#6b7485";
      if (author) for (const a of run.authors) who.set(a.id, a);
      const names = run.authors ? authorNames(run.authors) : "someone no longer listed";
      const tag = authorship ? "span" : run.kind === "ins" ? "ins" : "del";
      const node = el(tag, { class: `history-${authorship ? "by" : run.kind}`, title: `${authorship ? "Written" : run.kind === "ins" ? "Inserted" : "Deleted"} by ${names}${run.by ? ` (version ${run.by})` : ""}`, "data-author": author ? displayName(author) : "" }, run.text);
      node.style.setProperty("--who", color);
      node.style.setProperty("--who-soft", withAlpha(color, authorship ? 0.16 : 0.2));
      return node;
    });
    if (body === null && value) {
      // a document without a text body (or of another shape): its value as JSON, read-only
      pieces.push(document.createTextNode(JSON.stringify(value, null, 2)));
    }
    this.text.replaceChildren(...pieces);
    this.text.hidden = !value; // nothing to show (the note says why)
    this.text.dataset.version = String(v.id); // what it shows (the tests wait for it)
    this.text.classList.toggle("authorship", authorship);
    this.legend.replaceChildren(
      ...[...who.values()].map((a) => {
        const sw = el("span", { class: "history-swatch", "aria-hidden": "true" });
        sw.style.background = this.colors.of(a);
        return el("li", {}, sw, displayName(a));
      }),
    );
    // the summary: what changed, and other roots (the title)
    const parts = [];
    if (change && !authorship) {
      const { inserted, deleted } = countChanges(change.spans);
      parts.push(`${inserted} character${inserted === 1 ? "" : "s"} inserted, ${deleted} deleted since ${prev ? `version ${prev.id}` : "the empty document"}`);
    } else if (authorship && change) {
      parts.push("Every character coloured by who wrote it");
    } else if (value && changes && !authorship) {
      parts.push(`No change to the text since ${prev ? `version ${prev.id}` : "the empty document"}`);
    }
    if (!authorship) {
      const title = (changes || []).find((c) => c.path?.length === 1 && c.path[0] === TITLE_ROOT && c.kind !== "text");
      if (title) parts.push(`Title: “${title.before ?? ""}” → “${title.after ?? ""}”`);
    }
    this.summary.textContent = parts.join(" · ");
  }

  // ------------------------------------------------------------------ restore and names

  async restore() {
    const v = this.versions[this.index];
    if (!v || this.restoreBtn.disabled) return;
    this.restoreBtn.disabled = true;
    const doc = encodeURIComponent(this.docId);
    try {
      const out = await this.api(`documents/${doc}/restore`, { method: "POST", body: { version: v.id } });
      if (!this.rich) this.onRestored(this.docId, out);
      this.toast(out.edits ? `Restored version ${v.id}` : `The document already is version ${v.id}`);
      if (!this.isOpen) return;
      await this.reload({ select: "latest" });
      this.list.focus();
    } catch (err) {
      this.toast(`Could not restore: ${err.message}`);
      this.restoreBtn.disabled = false;
    }
  }

  _openNameForm() {
    const v = this.versions[this.index];
    if (!v) return;
    this.nameForm.hidden = false;
    this.nameInput.value = v.name || "";
    this.nameInput.focus();
    this.nameInput.select();
  }

  _closeNameForm({ focus = true } = {}) {
    if (this.nameForm.hidden) return;
    this.nameForm.hidden = true;
    if (focus) this.nameBtn.focus();
  }

  async _saveName() {
    const v = this.versions[this.index];
    if (!v) return;
    const name = this.nameInput.value.trim();
    if (!name && !v.name) return this._closeNameForm();
    const doc = encodeURIComponent(this.docId);
    try {
      const out = v.name
        ? await this.api(`documents/${doc}/versions/${v.id}`, { method: "PATCH", body: { name: name || null } })
        : await this.api(`documents/${doc}/versions`, { method: "POST", body: { name, version: v.id } });
      Object.assign(v, out);
      this.toast(name ? `Named version ${v.id} “${name}”` : `Removed the name of version ${v.id}`);
      if (!this.isOpen) return;
      this.sessions = groupSessions(this.versions, this.gapMs);
      this._renderList();
      const index = this.index;
      this.index = -1;
      this.select(index, { now: true });
      this.nameBtn.focus();
    } catch (err) {
      this.toast(`Could not name the version: ${err.message}`);
    }
  }
}
