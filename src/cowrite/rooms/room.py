"""A document room: sans-I/O session logic for one document.

Inputs are method calls (join, leave, edit, sync, presence, tick); outputs are ``Outcome``s the
asyncio shell carries out in order: persist the update (durably) first, then send the reply and
the broadcasts. The room never touches a socket, a database or the clock (``now_ms`` is passed
in), so thousands of schedules can be tested without an event loop.

Versions: every applied batch (a thin client's ``edit``, a replica's ``sync``, an update another
instance made) is one version. On a single instance a version equals the update's sequence
number in the store's log, so versions survive restarts; in a cluster each instance numbers the
updates in the order it applied them, and ``epoch`` names that numbering (a client coming from
another instance gets a snapshot). Every version is broadcast to thin clients as one ``remote``
(possibly with no ops), so the versions a thin client sees are contiguous.

Atomicity: an input the room refuses raises ``RoomError`` and leaves the room as it was (no node,
root or member is left behind). A replica delta is applied op by op and stops at the first op the
document refuses: what was applied before it is kept, recorded as a version and broadcast (the
sender gets an ``error``), and the same rule replays the stored delta at load, so the log, the
document and every client agree.
"""

from __future__ import annotations

import base64
from typing import Any

from cowrite import protocol as p
from cowrite.engine import (
    Anchor,
    Document,
    EngineError,
    InvalidOperation,
    NodeKind,
    ResyncNeeded,
    VersionVector,
    anchor_at,
    decode_ops,
    diff,
    resolve_anchor,
)
from cowrite.rooms import edit_keys
from cowrite.rooms.edit_keys import client_of
from cowrite.rooms.edits import ThinEdits
from cowrite.rooms.history import pin
from cowrite.rooms.peers import PeerCursor, PeerEntry, RemoteMember, WireAnchor
from cowrite.rooms.replicas import Replicas
from cowrite.rooms.retention import compact_old_history, compaction_due
from cowrite.rooms.state import (
    NOT_LOGGED,
    Audience,
    Author,
    EditKey,
    Member,
    Origin,
    Outcome,
    RoomError,
    RoomLimits,
)
from cowrite.rooms.wire import UnknownNode, node_from_wire, node_to_wire, snapshot

__all__ = [
    "NOT_LOGGED",
    "Audience",
    "Author",
    "EditKey",
    "Member",
    "Origin",
    "Outcome",
    "Room",
    "RoomError",
    "RoomLimits",
    "unwrap_update",
    "wrap_update",
]


class Room(ThinEdits, Replicas):
    """One document's room: the one class callers use. Its parts, by concept: its state
    (``state.py``), thin edits (``edits.py``), replica syncs and merged updates
    (``replicas.py``); joins, presence and other instances' members are here."""

    # --------------------------------------------------------------- loading

    def load_update(self, seq: int, data: bytes) -> None:
        """Replay a stored update (at startup), so its version can be caught up from.

        Applied with the rule ``sync`` used when the update was accepted (op by op, up to the
        first op the document refuses), so the replayed document is the one clients saw.
        """
        if seq != self.version + 1:
            raise ValueError(f"stored update {seq} after version {self.version}")
        client, edit_id, digest, extra, delta = edit_keys.unwrap_update_extra(data)
        before = self.doc.version
        self._keys = None
        changes, _, _ = self._apply_remote_ops(decode_ops(self.doc, delta))
        self._record_merged(changes, client_of(client), edit_id, before)
        if edit_id:  # a resend after a restart is acknowledged, not applied again
            self.remember((client, edit_id), seq, digest)
            self._learn_revivals(client, extra)

    # ------------------------------------------- the document-kind seam (kind.py)

    def encode_snapshot(self, history_kept_ops: int) -> bytes:
        """The document's state for the store, deleted text older than the kept history
        compacted away first (and with it, from the disk; never past a named version)."""
        compact_old_history(self.doc, self.cuts, history_kept_ops, pin(self.pins.values()))
        return self.doc.encode_state()

    def compaction_due(self, history_kept_ops: int) -> bool:
        """Old deleted history is worth compacting away (and the log with it) by a snapshot."""
        return compaction_due(self.doc, self.cuts, history_kept_ops, pin(self.pins.values()))

    def merge_snapshot(self, snapshot: bytes) -> Outcome | None:
        """Merge what a stored snapshot adds (as one merged update); None when this room's
        version predates what the snapshot can express as a delta (it was compacted)."""
        snap = Document.load(snapshot, None)
        try:
            delta = snap.delta_since(self.doc.version)
        except Exception:
            return None
        return self.merge_update(delta)

    # ------------------------------------------------------------ membership

    def join(self, member: Member, msg: p.Join, chat: list[p.ChatMessage]) -> Outcome:
        """Add (or replace) ``member``; the reply is ``joined`` (+ catch-up ``remote``s).

        Raises RoomError (and adds nobody) for a malformed ``state``.
        """
        theirs = _vv_from_wire(msg.state or {})  # checked before anything changes
        self.members[member.session] = member
        if member.active:
            self._idle_check_ms = min(
                self._idle_check_ms, member.last_active_ms + self.limits.idle_after_ms
            )
        out = Outcome()
        rights = sorted(member.rights)
        presence = self.entries()
        if member.mode == "replica":
            try:
                delta = self.doc.delta_since(theirs)
            except ResyncNeeded:
                delta = self.doc.encode_state()
            joined = p.Joined(
                doc=self.doc_id,
                mode="replica",
                version=self.version,
                rights=rights,
                delta=base64.b64encode(delta).decode(),
                state={str(r): n for r, n in self.doc.version.items()},
                presence=presence,
                chat=chat,
                epoch=self.epoch,
            )
            out.reply.append(joined)
        elif (
            msg.version is not None
            and msg.epoch == self.epoch
            and self.log.oldest <= msg.version <= self.version
        ):
            out.reply.append(
                p.Joined(
                    doc=self.doc_id,
                    mode="thin",
                    version=msg.version,
                    rights=rights,
                    presence=presence,
                    chat=chat,
                    epoch=self.epoch,
                )
            )
            for version in range(msg.version + 1, self.version + 1):
                o = self._origins[version]
                out.reply.append(
                    p.Remote(
                        doc=self.doc_id,
                        version=version,
                        ops=o.ops,
                        client_id=o.client,
                        edit_id=o.edit,
                        vv=o.vv,
                    )
                )
        else:
            state = {str(r): n for r, n in self.doc.version.items()}
            changes = None
            acked = None
            if msg.version is not None and msg.state is not None:
                applied = None
                if msg.inflight is not None:
                    known = self._recent.get((member.key_client, msg.inflight))
                    done = known[0] if known is not None else None
                    applied = self._origins.get(done) if done is not None else None
                    if done is not None and applied is None:
                        applied = NOT_LOGGED
                if applied is None:
                    changes = self._changes_since(theirs)
                else:  # applied: a snapshot holds it (a diff from "their state + that batch" is
                    acked = msg.inflight  # wrong when we rebased it over deletes next to it)
            nodes: dict[str, Any] | None = None
            if changes is not None:  # exact: the client rebases its own edits over these
                roots = {name: node_to_wire(self.doc, n) for n, (name, _) in self.doc.roots.items()}
            else:
                nodes, roots = self._snapshot()
            out.reply.append(
                p.Joined(
                    doc=self.doc_id,
                    mode="thin",
                    version=self.version,
                    rights=rights,
                    ops=changes,
                    acked=acked,
                    snapshot=nodes,
                    roots=roots,
                    state=state,
                    presence=presence,
                    chat=chat,
                    epoch=self.epoch,
                )
            )
        out.broadcast.append((p.Presence(doc=self.doc_id, entries=[self._entry(member)]), "all"))
        return out

    def _snapshot(self, paced: bool = False) -> tuple[dict[str, Any], dict[str, str]]:
        """The thin-client snapshot of the current version, computed once per version: joins
        at one version share it (a large document's snapshot costs the loop ~0.3 s a time).
        Every change to the document is a new version; nobody mutates a sent snapshot."""
        key = (self.version, len(self.doc.roots))
        if self._snap is None or self._snap[0] != key:
            self._snap = (key, *snapshot(self.doc, paced=paced))
        self._snap_unused_until = None  # a join's: kept until the next version
        return self._snap[1], self._snap[2]

    def prepare_joins(self, unused_until_ms: int | None = None) -> None:
        """Compute the thin-client snapshot now, paced: the loader calls this in its worker
        thread, so that the first join after a load does not build it on the event loop.
        ``unused_until_ms``: ``tick`` drops it then unless a join used it (None: kept)."""
        self._snapshot(paced=True)
        self._snap_unused_until = unused_until_ms

    def _changes_since(self, base: VersionVector) -> list[p.EditOp] | None:
        """Wire ops turning the document at version vector ``base`` into the current one, or
        None when that cannot be said exactly (history compacted away or not seen here, nested
        nodes: then the client gets a snapshot and merges three-way)."""
        doc = self.doc
        if doc.has_nested_nodes():
            return None
        try:
            diffs = diff(doc, base, doc.version)
        except EngineError:
            return None
        ops: list[p.EditOp] = []
        for d in diffs:
            node = node_to_wire(doc, d.node)
            if d.kind is NodeKind.TEXT or d.kind is NodeKind.LIST:
                ops.append(p.SeqEdit(node=node, edit=d.delta))
            elif d.kind is NodeKind.MAP:
                key = str(d.path[-1])
                if d.after is None:
                    ops.append(p.DeleteKey(node=node, key=key))
                else:
                    ops.append(p.SetKey(node=node, key=key, value=d.after))
            elif d.kind is NodeKind.REGISTER:
                ops.append(p.SetKey(node=node, key=None, value=d.after))
            else:
                ops.append(p.CounterAdd(node=node, amount=(d.after or 0) - (d.before or 0)))
        return ops

    def leave(self, session: str) -> Outcome:
        if self.members.pop(session, None) is None:
            return Outcome()
        return Outcome(broadcast=[(p.Presence(doc=self.doc_id, left=[session]), "all")])

    # -------------------------------------------------------------- presence

    def presence(self, session: str, msg: p.SetPresence, now_ms: int) -> Outcome:
        """Update the member's user fields, cursor or activity; broadcast its entry."""
        member = self.members.get(session)
        if member is None:
            raise RoomError(p.ErrorCode.NOT_JOINED, f"join {self.doc_id} first")
        cursor = self._anchor_cursor(msg.cursor) if msg.cursor is not None else None
        if msg.user is not None:
            member.user = p.User(
                id=member.user.id,
                name=msg.user.name or member.user.name,
                color=msg.user.color or member.user.color,
                fields=msg.user.fields,
            )
        if cursor is not None:
            member.cursor = cursor
        if msg.active is False:
            member.active = False
        else:
            self._touch(member, now_ms)
        return Outcome(broadcast=[self._presence_of(member)])

    def _anchor_cursor(self, cursor: p.Cursor) -> tuple[int, Anchor, Anchor]:
        doc = self.doc
        try:
            node = node_from_wire(doc, cursor.node, create_roots=False)
            kind = doc.kind_of(node)
            if kind is not NodeKind.TEXT and kind is not NodeKind.LIST:
                raise InvalidOperation("cursors live in text and list nodes")
            base = self.version if cursor.version is None else cursor.version
            if base > self.version:
                raise RoomError(p.ErrorCode.FUTURE_VERSION, f"cursor version {base}")
            anchor = self.log.rebase_position(node, cursor.anchor, base)
            head = self.log.rebase_position(node, cursor.head, base)
            length = len(doc.sequence(node))
            anchor, head = min(anchor, length), min(head, length)
            return node, anchor_at(doc, node, anchor), anchor_at(doc, node, head)
        except UnknownNode as exc:
            raise RoomError(p.ErrorCode.UNKNOWN_NODE, str(exc)) from None
        except ResyncNeeded as exc:
            raise RoomError(p.ErrorCode.STALE_VERSION, str(exc)) from None
        except InvalidOperation as exc:
            raise RoomError(p.ErrorCode.INVALID_EDIT, str(exc)) from None

    def _entry(self, member: Member) -> p.PresenceEntry:
        cursor = None
        if member.cursor is not None:
            node, anchor, head = member.cursor
            try:
                cursor = p.Cursor(
                    node=node_to_wire(self.doc, node),
                    anchor=resolve_anchor(self.doc, node, anchor),
                    head=resolve_anchor(self.doc, node, head),
                    version=self.version,
                )
            except InvalidOperation:  # its element is gone (compacted): forget the cursor
                member.cursor = None
        return p.PresenceEntry(
            session=member.session, user=member.user, active=member.active, cursor=cursor
        )

    def entries(self) -> list[p.PresenceEntry]:
        """Everyone on the document: members here, then those on other instances."""
        local = [self._entry(m) for m in self.members.values()]
        return local + [self._remote_entry(r.entry) for r in self.remote.values()]

    # ------------------------------------------------------- other instances

    def peer_entries(self, sessions: list[str] | None = None) -> list[PeerEntry]:
        """Entries of members here (all, or those of ``sessions``) for other instances."""
        chosen = (
            list(self.members.values())
            if sessions is None
            else [m for s in sessions if (m := self.members.get(s)) is not None]
        )
        out = []
        for m in chosen:
            cursor = None
            if m.cursor is not None:
                node, anchor, head = m.cursor
                cursor = PeerCursor(
                    node_to_wire(self.doc, node), WireAnchor.of(anchor), WireAnchor.of(head)
                )
            out.append(PeerEntry(session=m.session, user=m.user, active=m.active, cursor=cursor))
        return out

    def merge_presence(self, instance: int, entries: list[PeerEntry], left: list[str]) -> Outcome:
        """Presence news from another instance: broadcast to the members here."""
        shown = []
        for entry in entries:
            if entry.session in self.members:
                continue  # a session id is this instance's: ignore a forgery
            self.remote[entry.session] = RemoteMember(instance, entry)
            shown.append(self._remote_entry(entry))
        gone = [s for s in left if s in self.remote and self.remote[s].instance == instance]
        for session in gone:
            del self.remote[session]
        if not shown and not gone:
            return Outcome()
        return Outcome(broadcast=[(p.Presence(doc=self.doc_id, entries=shown, left=gone), "all")])

    def drop_instance(self, instance: int) -> Outcome:
        """Forget the members of an instance that went away (dead, or shut down)."""
        gone = [s for s, r in self.remote.items() if r.instance == instance]
        for session in gone:
            del self.remote[session]
        if not gone:
            return Outcome()
        return Outcome(broadcast=[(p.Presence(doc=self.doc_id, left=gone), "all")])

    def _remote_entry(self, entry: PeerEntry) -> p.PresenceEntry:
        cursor = None
        if entry.cursor is not None:
            doc = self.doc
            try:
                node = node_from_wire(doc, entry.cursor.node, create_roots=False)
                cursor = p.Cursor(
                    node=entry.cursor.node,
                    anchor=resolve_anchor(doc, node, entry.cursor.anchor.anchor()),
                    head=resolve_anchor(doc, node, entry.cursor.head.anchor()),
                    version=self.version,
                )
            except (UnknownNode, InvalidOperation):
                cursor = None  # its element has not arrived here yet
        return p.PresenceEntry(
            session=entry.session, user=entry.user, active=entry.active, cursor=cursor
        )

    def _presence_of(self, member: Member) -> tuple[p.Message, Audience]:
        return p.Presence(doc=self.doc_id, entries=[self._entry(member)]), "all"

    def _touch(self, member: Member, now_ms: int) -> bool:
        """Record activity; True when it wakes an idle member (whose entry must be broadcast)."""
        member.last_active_ms = now_ms
        self._idle_check_ms = min(self._idle_check_ms, now_ms + self.limits.idle_after_ms)
        woke = not member.active
        member.active = True
        return woke

    def tick(self, now_ms: int) -> Outcome:
        """Mark members idle after ``idle_after_ms`` without activity; send the checksums that
        wait for the room to be quiet; drop the loader's join snapshot if no join used it."""
        out = self._idle(now_ms)
        if self._snap_unused_until is not None and now_ms >= self._snap_unused_until:
            self._snap = self._snap_unused_until = None  # the loader's, and no join came
        check = self.checks.when_quiet(self.version, now_ms)
        if check is not None:
            out.broadcast.append((check, "thin"))
        return out

    def tick_due_ms(self) -> int | None:
        """When ``tick`` next has something to do (wall ms; None: not before the next input):
        the hub visits a room only then (``server/ticks.py``)."""
        due = self.checks.due_ms(self.version)
        if self._snap_unused_until is not None:
            due = self._snap_unused_until if due is None else min(due, self._snap_unused_until)
        idle = self._idle_check_ms
        if idle < 1 << 62:  # (``_idle``'s "no active member")
            due = idle if due is None else min(due, idle)
        return due

    def _idle(self, now_ms: int) -> Outcome:
        """Members without activity for ``idle_after_ms`` turn inactive (broadcast)."""
        if now_ms < self._idle_check_ms:
            return Outcome()  # (a scan of every member each second costs when thousands idle)
        idle = []
        after = self.limits.idle_after_ms
        next_check = 1 << 62
        for m in self.members.values():
            if m.active:
                if now_ms - m.last_active_ms >= after:
                    m.active = False
                    idle.append(self._entry(m))
                else:
                    next_check = min(next_check, m.last_active_ms + after)
        self._idle_check_ms = next_check
        if not idle:
            return Outcome()
        return Outcome(broadcast=[(p.Presence(doc=self.doc_id, entries=idle), "all")])

    def touch(self, session: str, now_ms: int) -> Outcome:
        """Activity that is not an edit (typing a chat message...): wake an idle member."""
        member = self.members.get(session)
        if member is None or not self._touch(member, now_ms):
            return Outcome()
        return Outcome(broadcast=[self._presence_of(member)])

    def chat(self, session: str, msg: p.Chat) -> Outcome:
        """A chat message (new, edited or deleted) the store has kept, from member ``session``.

        The caller stores it first (the store numbers it and checks its author) and passes the
        time of the sender's activity to ``touch`` separately; the Outcome echoes ``msg`` to the
        sender and broadcasts it to every member. Raises RoomError ``not_joined`` (``forbidden``
        without the chat right)."""
        self.chatter(session)
        return Outcome(reply=[msg], broadcast=[(msg, "all")])

    def chatter(self, session: str) -> Member:
        """The member ``session`` if it may chat; raises RoomError ``not_joined`` or
        ``forbidden``. Checked before the store is asked to keep a message, and again by
        ``chat``."""
        member = self.members.get(session)
        if member is None:
            raise RoomError(p.ErrorCode.NOT_JOINED, f"join {self.doc_id} first")
        if "chat" not in member.rights:
            raise RoomError(p.ErrorCode.FORBIDDEN, f"no chat right on {self.doc_id}")
        return member

    # ---------------------------------------------------------------- helpers


def wrap_update(client_id: str, edit_id: str, delta: bytes) -> bytes:
    """A stored update naming its edit (see `edit_keys.wrap_update`)."""
    return edit_keys.wrap_update(client_id, edit_id, delta)


def unwrap_update(data: bytes) -> tuple[str, str, bytes]:
    """``(client_id, edit_id, delta)`` of a stored update (a bare delta: no edit)."""
    client, edit_id, _, delta = edit_keys.unwrap_update(data)
    return client_of(client), edit_id, delta


def _vv_from_wire(state: dict[str, int]) -> VersionVector:
    out: VersionVector = {}
    for k, v in state.items():
        try:
            replica = int(k)
        except ValueError:
            raise RoomError(
                p.ErrorCode.BAD_MESSAGE, f"state key {k!r} is not a replica id"
            ) from None
        if replica <= 0 or v < 0:
            raise RoomError(p.ErrorCode.BAD_MESSAGE, "bad version vector")
        out[replica] = v
    return out
