"""Record the undo test vectors (``tests/vectors/undo/*.json``) from the real ``Room``.

One watched client ("me": the SDK's ``ThinDocState`` and ``thin_undo.UndoManager``) and two
others edit one text through ``room_link.py``'s in-memory links; seeded random schedules type
unique tokens, delete (also everything), undo, redo, drop links and restore earlier versions
through the REST restore's code (``server.restore.restore_edits``). What "me" receives and does
is recorded with what it must then show (and send, and change): the same files replay against the
Python SDK (``tests/client/test_thin_undo.py``) and the JavaScript client
(``web/test/undo_vectors.test.js``). Schema: ``tests/vectors/README.md``, "Undo vectors".
Run: ``.venv/bin/python tests/vectors/undo_generate.py``. Restore edit ids are random, so a new
recording differs from the committed one; both must pass.
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import msgspec
from room_link import DOC, Link, RoomHost, new_room

from cowrite import protocol as p
from cowrite.client.thin import ThinDocState
from cowrite.client.thin_undo import UndoManager
from cowrite.engine import ot
from cowrite.server.restore import restore_edits

OUT = Path(__file__).resolve().parent / "undo"
TEXT = "text:body"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def wire(msg: Any) -> Any:
    return msgspec.to_builtins(msg)


class Client:
    def __init__(self, client_id: str, clock: Clock, steps: list[dict[str, Any]] | None) -> None:
        self.state = ThinDocState(DOC, client_id, edit_id_prefix=client_id)
        self.undo = UndoManager(self.state, TEXT, clock=clock)
        self.link: Link | None = None
        self.steps = steps  # recorded (the watched client) or None

    @property
    def up(self) -> bool:
        return self.link is not None and self.link.open

    def text(self) -> str:
        value = self.state.value(TEXT, "text")
        assert isinstance(value, str)
        return value

    def record(self, step: dict[str, Any], **expect: Any) -> None:
        if self.steps is not None:
            step["expect"] = {**expect, "text": self.text()}
            self.steps.append(step)

    def join(self, host: RoomHost) -> None:
        if not self.up:
            self.link = host.connect(self.state.client_id)
        assert self.link is not None
        self.link.up.append(self.state.join_message(create=True))
        self.record({"event": "join"})

    def local(self, op: ot.Op) -> None:
        self.state.local_edit(TEXT, op)
        self.record({"event": "local", "op": op})

    def send(self) -> None:
        if not self.up:
            return
        batch = self.state.take_batch()
        if batch is not None:
            assert self.link is not None
            self.link.up.append(batch)
        self.record({"event": "send"}, sends=wire(batch) if batch is not None else None)

    def step(self, which: str) -> None:
        change = self.undo.undo() if which == "undo" else self.undo.redo()
        self.record({"event": which}, change=change.edit if change is not None else None)

    def read(self, host: RoomHost) -> None:
        assert self.link is not None
        msg = self.link.down.popleft()
        state = self.state
        changes: list[p.EditOp] = []
        if isinstance(msg, p.Joined):
            changes = state.on_joined(msg)
        elif isinstance(msg, p.Remote):
            changes = state.on_remote(msg)
        elif isinstance(msg, p.Ack):
            changes = state.on_ack(msg)
        elif isinstance(msg, p.Error):
            changes = state.on_error(msg).changes
        elif isinstance(msg, p.Resync):
            state.on_resync()
        self.record({"event": "receive", "message": wire(msg)}, changes=wire(changes))
        if state.rejoin_needed:
            self.join(host)

    def drop(self, host: RoomHost) -> None:
        assert self.link is not None
        host.drop(self.link)
        self.state.on_disconnect()
        self.record({"event": "disconnect"})


def record(seed: int, steps_n: int = 140) -> dict[str, Any]:
    rng = random.Random(seed)
    host = RoomHost(new_room())
    clock = Clock()
    steps: list[dict[str, Any]] = []
    clients = [Client("me", clock, steps), Client("o1", clock, None), Client("o2", clock, None)]
    vectors = {0: dict(host.room.doc.version)}
    token = iter(range(10**6))

    def changed() -> None:
        # a restore brings back what a version held, also a race's transient duplicate (an
        # undo sent before its client saw the restore it races): restore only versions without
        text = host.values().get(TEXT, "")
        if len(set(text)) == len(text):
            vectors[host.room.version] = dict(host.room.doc.version)

    def sync(c: Client) -> None:
        c.send()
        if c.up and c.link is not None:
            while c.link.up:
                host.serve(c.link)
                changed()
            while c.up and c.link.down:
                c.read(host)

    for c in clients:
        c.join(host)
        sync(c)
    for _ in range(steps_n):
        clock.now += 1
        c = rng.choices(clients, weights=[2, 1, 1])[0]
        x = rng.random()
        text = c.text()
        if x < 0.25:
            pos = rng.randint(0, len(text))
            if text and rng.random() < 0.35:
                pos = min(pos, len(text) - 1)
                n = rng.randint(1, min(3, len(text) - pos))
                c.local(ot.from_splice(pos, n, ""))
            elif text and rng.random() < 0.1:
                c.local([-len(text)])
            else:
                c.local([pos, "".join(chr(0x4E00 + next(token)) for _ in range(rng.randint(1, 3)))])
        elif x < 0.37:
            c.step("undo")
        elif x < 0.44:
            c.step("redo")
        elif x < 0.52:
            c.send()
        elif x < 0.64:
            if c.up and c.link is not None and c.link.up:
                host.serve(c.link)
                changed()
        elif x < 0.82:
            if c.up and c.link is not None and c.link.down:
                c.read(host)
        elif x < 0.9:
            if host.room.version > 0:
                version = rng.choice(sorted(vectors))
                nobody = Link("server", "rest")
                for outcome in restore_edits(host.room, vectors[version], 0, restored_from=version):
                    host._route(outcome, nobody)
                changed()
        elif x < 0.95:
            if c.up:
                c.drop(host)
        elif not c.up:
            c.join(host)
    for _ in range(100):  # everyone syncs
        for c in clients:
            if not c.up:
                c.join(host)
            sync(c)
    final = host.values().get(TEXT, "")
    me = clients[0]
    assert me.text() == final and me.state.synced, seed
    assert not [ch for ch, n in Counter(final).items() if n > 1], seed
    return {
        "name": f"random-{seed}",
        "about": f"seeded schedule {seed}: typing, deletes, undo/redo, restores, dropped links",
        "client": {"doc": DOC, "client_id": "me", "edit_id_prefix": "me", "node": TEXT},
        "steps": steps,
        "final": {"text": final},
    }


def main() -> None:
    OUT.mkdir(exist_ok=True)
    # 87 and 166: the room leaves revivals out (ack.dropped: docs/protocol.md, T11 "Revivals");
    # 19: a resend withdraws what a correction takes back (edit.withdraw)
    for seed in [*range(1, 17), 19, 87, 166]:
        vector = record(seed)
        path = OUT / f"{vector['name']}.json"
        path.write_text(json.dumps(vector, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main()
