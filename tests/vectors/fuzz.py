"""Seeded random schedules for the thin-client vectors (``fuzz-<seed>.json``).

One watched client and one other client ("bob", who edits at one of the last three versions, so
the room rebases his edits) write two texts, a list, a map, a counter and a register; links drop,
rejoins happen, sometimes in a new epoch (as on another instance), and once bob creates a nested
node, after which rejoins are answered with snapshots. The same seed gives the same vector.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from vectors import Json, Scenario

FOUND_TWICE = ": found remotes received between join and joined applied twice (fixed)"
FOUND_JOINS = ": found error + resync sending two joins, the second answer applied twice (fixed)"
FUZZ: list[tuple[int, int, str]] = [(seed, 40, "") for seed in range(1, 9)] + [
    (287, 60, FOUND_TWICE),
    (310, 60, FOUND_TWICE),
    (563, 60, FOUND_JOINS),
    (2050, 80, ": found a lost-ack rejoin answered with a wrong diff (fixed in the room)"),
]
"""(seed, steps, what it found) of the vectors ``fuzz-<seed>``."""
TEXT = "text:body"
NOTES = "text:notes"
LIST = "list:items"
MAP = "map:meta"
COUNTER = "counter:clicks"
REGISTER = "register:title"
CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ🌀🌁🌂🌃🌄🌅🌆🌇🌈🌉🌊🌋🌌🌍🌎🌏"


def _seq_edit(rng: random.Random, value: Any, item: Any) -> list[Any]:
    """A random insert or delete fitting ``value`` (a str or a list); no zero retains."""
    n = len(value)
    pos = rng.randint(0, n)
    if n and rng.random() < 0.4:
        pos = min(pos, n - 1)
        op: list[Any] = [pos, -rng.randint(1, min(2, n - pos))]
    else:
        op = [pos, item]
    return [c for c in op if c != 0]


class Fuzz:
    """A random schedule drawn from ``rng`` (``random.Random(seed)``, or Hypothesis' randoms)."""

    def __init__(self, name: str, rng: random.Random, steps: int, about: str = "") -> None:
        self.rng = rng
        self.name = name
        self.steps = steps
        self.n = 0
        self.nested = False
        self.s = Scenario(name, about or f"a random schedule ({name})", log_capacity=4)

    def char(self) -> str:
        self.n += 1
        return CHARS[self.n % len(CHARS)]

    def local(self) -> None:
        rng, c = self.rng, self.s.client
        node = rng.choice([TEXT, TEXT, NOTES, LIST, MAP, COUNTER, REGISTER])
        op: Json
        if node in (TEXT, NOTES):
            op = {
                "type": "seq",
                "node": node,
                "edit": _seq_edit(rng, c.value(node, "text"), self.char()),
            }
        elif node == LIST:
            op = {
                "type": "seq",
                "node": node,
                "edit": _seq_edit(rng, c.value(node, "list"), [self.n]),
            }
        elif node == MAP:
            key = rng.choice("xy")
            if rng.random() < 0.3:
                op = {"type": "del", "node": node, "key": key}
            else:
                op = {"type": "set", "node": node, "key": key, "value": self.char()}
        elif node == COUNTER:
            op = {"type": "add", "node": node, "amount": rng.choice([-2, 1, 3])}
        else:
            op = {"type": "set", "node": node, "value": self.n}
        if op.get("edit") == []:
            return
        self.s.local(op)

    def other(self) -> None:
        rng, s = self.rng, self.s
        room = s.room
        at = rng.randint(max(room.log.oldest, room.version - 2), room.version)
        node = rng.choice([TEXT, TEXT, NOTES, LIST, MAP, COUNTER])
        seen = s.host.values_at[at]
        op: Json
        if node in (TEXT, NOTES):
            op = {
                "type": "seq",
                "node": node,
                "edit": _seq_edit(rng, seen.get(node, ""), self.char()),
            }
        elif node == LIST:
            op = {
                "type": "seq",
                "node": node,
                "edit": _seq_edit(rng, seen.get(node, []), [-self.n]),
            }
        elif node == MAP:
            value: Any = self.char()
            if not self.nested and rng.random() < 0.15:
                self.nested = True
                value = {"$new": "text"}
            op = {"type": "set", "node": node, "key": rng.choice("xyz"), "value": value}
        else:
            op = {"type": "add", "node": node, "amount": rng.choice([-1, 5])}
        if op.get("edit") == []:
            return
        s.other("bob", op, at=at)

    def cursor(self) -> None:
        rng, c = self.rng, self.s.client
        if c.version is None:
            return
        node = rng.choice([TEXT, LIST])
        if rng.random() < 0.5:
            length = len(c.value(node, "text" if node == TEXT else "list"))
            a, b = rng.randint(0, length), rng.randint(0, length)
            self.s.cursor_to_server(node, a, b)
        else:
            version = rng.randint(max(0, c.version - 3), c.version + 1)
            self.s.cursor_to_local(node, rng.randint(0, 8), rng.randint(0, 8), version)

    def run(self) -> Scenario:
        rng, s = self.rng, self.s
        s.other("seed", {"type": "seq", "node": TEXT, "edit": ["ab😀中"]})
        s.join()
        s.server_reads()
        s.deliver()
        for _ in range(self.steps):
            c, link = s.client, s.link
            up = link is not None and link.open
            roll = rng.random()
            if roll < 0.25:
                self.local()
            elif roll < 0.37 and up and c.joined:
                s.send()
            elif roll < 0.5 and link is not None and link.up:
                s.server_reads()
            elif roll < 0.65:
                self.other()
            elif roll < 0.85 and link is not None and link.down:
                s.deliver()
            elif roll < 0.88:
                self.cursor()
            elif roll < 0.93 and up:
                s.disconnect()
            elif not up or c.rejoin_needed:
                if rng.random() < 0.3:
                    s.new_epoch(f"{self.name}-{len(s.steps)}")
                s.join()
        return s


def fuzz(seed: int, steps: int = 40, found: str = "") -> Callable[[], Scenario]:
    """The builder of vector ``fuzz-<seed>``."""

    def build() -> Scenario:
        why = f"a random schedule (tests/vectors/fuzz.py, seed {seed}, {steps} steps){found}"
        return Fuzz(f"fuzz-{seed}", random.Random(seed), steps, why).run()

    build.__name__ = f"fuzz_{seed}"
    return build
