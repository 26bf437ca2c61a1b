"""Recording thin-client test vectors from a real ``Room`` (see ``README.md`` here).

A ``Scenario`` drives one subject client (the SDK core, ``ThinDocState``) and any number of
unwatched clients against a real ``Room`` through ``room_link``; every client-visible event is
recorded with what the client then shows and sends. While recording it checks the expectations
against the room itself: the client's copy of the server state equals the room's document at the
client's version, the local view is server · in-flight · pending, no edit is applied twice, and
``finish`` settles everything and requires the client to show exactly the room's document.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from room_link import DOC, Link, RoomHost, builtins, new_room

from cowrite import protocol as p
from cowrite.client.thin import ThinDocState
from cowrite.client.values import empty_value

CLIENT_ID = "me"
PREFIX = "v"
Json = dict[str, Any]


def clean(value: Any) -> Any:
    """Wire JSON with ``"key": null`` left out (a register write has no key): the one spelling
    both clients are compared in."""
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, dict):
        out = {k: clean(v) for k, v in value.items()}
        if out.get("type") == "set" and out.get("key", 0) is None:
            del out["key"]
        return out
    return value


def join_json(msg: p.Join) -> Json:
    """A ``join`` with every thin-client field spelled out (``create`` left out)."""
    return {
        "type": "join",
        "doc": msg.doc,
        "mode": msg.mode,
        "version": msg.version,
        "epoch": msg.epoch,
        "state": msg.state,
        "inflight": msg.inflight,
    }


class Scenario:
    """One vector: build it with the methods below (each records a step), then ``finish``."""

    def __init__(self, name: str, about: str, *, log_capacity: int = 10_000) -> None:
        self.name = name
        self.about = about
        self.room = new_room(log_capacity=log_capacity)
        self.host = RoomHost(self.room)
        self.client = ThinDocState(DOC, CLIENT_ID, edit_id_prefix=PREFIX)
        self.link: Link | None = None
        self.steps: list[Json] = []
        self.history: list[Json] = []
        self.initial: Json | None = None
        self._edits = 0

    # ------------------------------------------------------------- the server side

    def other(self, who: str, *ops: Json, at: int | None = None) -> int:
        """``who`` edits at version ``at`` (default: the room's version); the room rebases it."""
        self._edits += 1
        edit_id = f"{who}-{self._edits}"
        version = self.room.version
        if at is None:
            self.host.other_edit(who, list(ops), edit_id)
        else:
            link = self._other_link(who)
            edit = {"type": "edit", "doc": DOC, "edit_id": edit_id, "version": at, "ops": list(ops)}
            self.host.edit(link, msgspec.convert(edit, p.Edit))
            link.down.clear()
        assert self.room.version == version + 1, "the room refused a scripted edit"
        self._log(who, edit_id)
        return self.room.version

    def _other_link(self, who: str) -> Link:
        for link in self.host.links.values():
            if link.client_id == who:
                return link
        link = self.host.connect(who)
        link.up.append(p.Join(doc=DOC))
        self.host.serve(link)
        return link

    def _log(self, who: str, edit_id: str) -> None:
        version = self.room.version
        origin = self.room._origins[version]
        self.history.append(
            {
                "version": version,
                "client_id": who,
                "edit_id": edit_id,
                "ops": clean([builtins(op) for op in origin.ops]),
                "document": self.host.values(),
            }
        )

    def server_reads(self) -> None:
        """The room reads the subject's next frame (not a client event: nothing is recorded)."""
        assert self.link is not None and self.link.up
        version = self.room.version
        msg = self.link.up[0]
        self.host.serve(self.link)
        if isinstance(msg, p.Edit) and self.room.version == version + 1:
            self._log(CLIENT_ID, msg.edit_id)

    def new_epoch(self, epoch: str) -> None:
        """The room starts numbering versions anew (as another instance would)."""
        self.room.epoch = epoch

    # ------------------------------------------------------------- client events

    def local(self, op: Json) -> None:
        """A user edit, as a wire op in local coordinates."""
        c = self.client
        node = op["node"]
        if op["type"] == "seq":
            c.local_edit(node, op["edit"])
        elif op["type"] == "set":
            c.local_set(node, op.get("key"), op["value"])
        elif op["type"] == "del":
            c.local_delete(node, op["key"])
        else:
            c.local_add(node, op["amount"])
        self._step({"event": "local", "op": op}, {})

    def send(self) -> p.Edit | None:
        """The client is asked for a batch; a batch goes onto the link."""
        batch = self.client.take_batch()
        if batch is not None:
            assert self.link is not None
            self.link.up.append(batch)
        self._step({"event": "send"}, {"sends": clean(builtins(batch))})
        return batch

    def join(self) -> None:
        """The client (re)joins: on a new link when the old one is gone."""
        if self.link is None or not self.link.open:
            self.link = self.host.connect(CLIENT_ID)
        msg = self.client.join_message(create=True)
        self.link.up.append(msg)
        self._step({"event": "join"}, {"sends": join_json(msg)})

    def deliver(self, count: int = 1) -> None:
        """The client reads its next ``count`` frames."""
        for _ in range(count):
            assert self.link is not None and self.link.down
            msg = self.link.down.popleft()
            c = self.client
            changes: list[p.EditOp] = []
            if isinstance(msg, p.Joined):
                changes = c.on_joined(msg)
            elif isinstance(msg, p.Remote):
                changes = c.on_remote(msg)
            elif isinstance(msg, p.Ack):
                changes = c.on_ack(msg)
            elif isinstance(msg, p.Error):
                changes = c.on_error(msg).changes
            elif isinstance(msg, p.Resync):
                c.on_resync()
            event = {"event": "receive", "message": clean(builtins(msg))}
            self._step(event, {"changes": clean([builtins(x) for x in changes])})

    def deliver_all(self) -> None:
        while self.link is not None and self.link.down:
            self.deliver()

    def disconnect(self) -> None:
        """The link drops: frames queued either way are lost."""
        assert self.link is not None
        self.host.drop(self.link)
        self.client.on_disconnect()
        self._step({"event": "disconnect"}, {})

    def cursor_to_local(self, node: str, anchor: int, head: int, version: int) -> None:
        cursor = p.Cursor(node=node, anchor=anchor, head=head, version=version)
        where = self.client.cursor_to_local(cursor)
        event = {"event": "cursor_to_local", "cursor": builtins(cursor)}
        self._step(event, {"cursor": list(where) if where is not None else None})

    def cursor_to_server(self, node: str, anchor: int, head: int) -> None:
        cursor = self.client.cursor_to_server(node, anchor, head)
        event = {"event": "cursor_to_server", "node": node, "anchor": anchor, "head": head}
        self._step(event, {"cursor": builtins(cursor)})

    # ------------------------------------------------------------- recording

    def _step(self, event: Json, expect: Json) -> None:
        c = self.client
        c.check_invariants()
        if self.initial is None:
            self.initial = {"version": self.room.version, "document": self.host.values()}
        if c.version is not None and c.joined:
            held = self.host.values_at[c.version]
            for node, value in held.items():
                kind = c.kind(node)
                mine = c.server.get(node, empty_value(kind) if kind else None)
                assert mine == value, (self.name, node, mine, value)
        assert all(n == 1 for n in self.host.applied.values()), "an edit was applied twice"
        expect["shows"] = {node: c.value(node) for node in sorted(c.local)}
        expect["version"] = c.version
        expect["synced"] = c.synced
        expect["rejoin"] = c.rejoin_needed
        self.steps.append({**event, "expect": expect})

    def finish(self) -> Json:
        """Settle (rejoin, send, read, deliver until quiet), check convergence; the vector."""
        for _ in range(1000):
            c = self.client
            if self.link is None or not self.link.open or c.rejoin_needed:
                if not (self.link and self.link.open and self.link.up):
                    self.join()
            elif not self.link.up and not self.link.down and c.joined:
                self.send()
            if self.link is not None and self.link.up:
                self.server_reads()
            elif self.link is not None and self.link.down:
                self.deliver()
            elif c.synced and c.joined and not c.rejoin_needed:
                break
        c = self.client
        assert c.synced and c.version == self.room.version, self.name
        document = self.host.values()
        for node, value in document.items():
            assert c.value(node) == value, (self.name, node, c.value(node), value)
        return {
            "name": self.name,
            "about": self.about,
            "client": {"doc": DOC, "client_id": CLIENT_ID, "edit_id_prefix": PREFIX},
            "initial": self.initial,
            "server_history": self.history,
            "steps": self.steps,
            "final": {"version": self.room.version, "document": document},
        }


# ------------------------------------------------------------- scripting helpers

TEXT = "text:body"
NOTES = "text:notes"
LIST = "list:items"
MAP = "map:meta"
COUNTER = "counter:clicks"
REGISTER = "register:title"


def seq(edit: list[Any], node: str = TEXT) -> Json:
    """An index edit (zero retains left out: the server refuses them)."""
    return {"type": "seq", "node": node, "edit": [c for c in edit if c != 0]}


def joined(s: Scenario, seed: str = "", node: str = TEXT) -> Scenario:
    """Seed the document (by another client) and let the subject join and load it."""
    if seed:
        s.other("seed", seq([seed], node))
    s.join()
    s.server_reads()
    s.deliver()
    return s


SCENARIOS: list[Callable[[], Scenario]] = []


def scenario(fn: Callable[[], Scenario]) -> Callable[[], Scenario]:
    SCENARIOS.append(fn)
    return fn
