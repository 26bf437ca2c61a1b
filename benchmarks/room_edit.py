"""The room's CPU per thin-client edit (`Room.edit`), by document size and by phase (issue 12).

``--docs`` rooms per size (2k, 20k and 200k characters by default, fragmented by scattered
edits first, as real editing leaves a text), each with ``--clients`` writers typing one character
(an insert at their caret, one in ``--delete-every`` a backspace) round-robin; one edit in
``--stale-every`` is concurrent: based ``1..3`` versions back, so the room rebases it. Edits go
straight to ``Room.edit`` (no hub, pipeline or store: ``benchmarks.hub_cost`` measures those).

Prints CPU µs per edit (process time, best of ``--repeat`` passes over fresh rooms: the machine
may be shared), for head edits and stale ones apart, then the phases of a head edit, each timed
alone on the same rooms and inputs (best of ``--repeat``): the digest, the plan (resolve,
normalize, rebase, validate: ``_typed`` where the build has that fast path, else ``_plan``),
the delta, the stored update's header (wrap), the version note, the checksum schedule, and
what is left (apply, record, the messages: the whole edit minus those). To compare two builds
run each checkout's copy alternately (``PYTHONPATH=<checkout>/src``; ``COWRITE_ENGINE=pure``
for the pure-Python engine)::

    .venv/bin/python -m benchmarks.room_edit [--sizes 2000,20000,200000] [--gc default]
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cowrite import protocol as p
from cowrite.engine import Document, encode_ops, engine_build
from cowrite.rooms import edit_keys, history
from cowrite.rooms.room import Member, Room, RoomLimits
from cowrite.server import gcpolicy

NODE = "text:body"
WireEdit = list[int | str | list[Any]]
ALPHABET = "abcdefghij klmnop\né中😀"


@dataclass
class Typist:
    session: str
    caret: int
    seen: int  # the version this client last heard of (its base for a stale edit)


def _room(chars: int, clients: int, rng: random.Random) -> tuple[Room, list[Typist]]:
    room = Room("bench", Document(), limits=RoomLimits(max_node_length=4 * chars + 10_000))
    typists = []
    for k in range(clients):
        member = Member(f"s{k}", f"c{k}", p.User(id=f"u{k}"), "thin", frozenset({"write"}), 0)
        room.join(member, p.Join(doc="bench"), [])
        typists.append(Typist(f"s{k}", 0, 0))
    text = "".join(rng.choice(ALPHABET) for _ in range(chars))
    _send(room, "s0", "init", room.version, [text])
    for i in range(min(1000, chars // 4)):  # fragment the text into runs, as editing does
        at = rng.randrange(chars)
        _send(room, "s0", f"f{i}", room.version, [at, "k"] if at else ["k"])
    for t in typists:
        t.caret = rng.randrange(chars)
        t.seen = room.version
    return room, typists


def _send(room: Room, session: str, edit_id: str, version: int, edit: WireEdit) -> None:
    ops: list[p.EditOp] = [p.SeqEdit(node=NODE, edit=edit)]
    room.edit(session, p.Edit(doc="bench", edit_id=edit_id, version=version, ops=ops), 0)


@dataclass
class Plan:
    """The edits of one pass, made in advance (so making them is not timed)."""

    msgs: list[tuple[str, p.Edit, bool]]


def _plan(room: Room, typists: list[Typist], edits: int, args: argparse.Namespace) -> Plan:
    """Messages for ``edits`` edits, simulated against the lengths the document will have."""
    rng = random.Random(7)
    length = len(room.doc.sequence(next(iter(room.doc.roots))))
    lengths = {room.version: length}
    version = room.version
    msgs = []
    for i in range(edits):
        t = typists[i % len(typists)]
        stale = args.stale_every > 0 and i % args.stale_every == args.stale_every - 1
        base = max(version - rng.randint(1, 3), min(lengths)) if stale else version
        at = min(t.caret, lengths[base])
        if i % args.delete_every == args.delete_every - 1 and at > 0:
            edit: WireEdit = [at - 1, -1] if at > 1 else [-1]
            t.caret = at - 1
            length -= 1  # (a stale delete may rebase into a no-op: the length is approximate)
        else:
            edit = [at, rng.choice(ALPHABET)] if at else [rng.choice(ALPHABET)]
            t.caret = at + 1
            length += 1
        ops: list[p.EditOp] = [p.SeqEdit(node=NODE, edit=edit)]
        msgs.append((t.session, p.Edit(doc="bench", edit_id=f"e{i}", version=base, ops=ops), stale))
        version += 1
        lengths[version] = max(0, length - 4)  # a margin for stale deletes that vanished
    return Plan(msgs)


def _settle(args: argparse.Namespace) -> None:
    """With ``--gc server``, the collector as ``cowrite serve`` sets it (``gcpolicy``: what
    exists now is frozen, young collections every 20,000 allocations), so an edit does not pay
    for collections walking the documents a default collector would make."""
    if args.gc == "server":
        gcpolicy.tune_for_latency()


def _pass(chars: int, args: argparse.Namespace) -> tuple[float, float]:
    """One pass over fresh rooms: CPU µs per head edit and per stale edit."""
    head = stale = 0.0
    n_head = n_stale = 0
    for d in range(args.docs):
        room, typists = _room(chars, args.clients, random.Random(d))
        plan = _plan(room, typists, args.edits // args.docs, args)
        _settle(args)
        clock = time.process_time_ns
        edit = room.edit
        for now, (session, msg, late) in enumerate(plan.msgs):
            t0 = clock()
            edit(session, msg, now)
            dt = clock() - t0
            if late:
                stale += dt
                n_stale += 1
            else:
                head += dt
                n_head += 1
    return head / max(1, n_head) / 1000, stale / max(1, n_stale) / 1000


def _best(repeat: int, fn: Callable[[], float]) -> float:
    return min(fn() for _ in range(repeat))


def _phases(chars: int, args: argparse.Namespace) -> dict[str, float]:
    """µs per head edit of each phase, timed alone (best of ``repeat``); ``edit`` is the whole."""
    room, typists = _room(chars, args.clients, random.Random(99))
    _settle(args)
    n = 500
    out: dict[str, float] = {}

    made = [0]

    def edits() -> list[p.Edit]:
        msgs = []
        for i in range(n):
            made[0] += 1
            t = typists[i % len(typists)]
            msgs.append(
                p.Edit(
                    doc="bench",
                    edit_id=f"x{made[0]}",
                    version=room.version,
                    ops=[p.SeqEdit(node=NODE, edit=[t.caret, "k"] if t.caret else ["k"])],
                )
            )
        return msgs

    def timed(fn: Callable[[p.Edit], object]) -> float:
        msgs = edits()
        t0 = time.process_time_ns()
        for m in msgs:
            fn(m)
        return (time.process_time_ns() - t0) / n / 1000

    out["digest"] = _best(args.repeat, lambda: timed(lambda m: edit_keys.edit_digest(m.ops)))
    typed = getattr(room, "_typed", None)  # (the fast path for typing, where there is one)
    out["plan"] = _best(args.repeat, lambda: timed(typed or room._plan))
    doc = room.doc
    before, seq0 = doc.version, doc.local_seq
    sizes = len(doc.sequence(next(iter(doc.roots))))
    _send(room, "s1", "one", room.version, [sizes // 2, "k"])
    if typed is None:
        out["delta"] = _best(args.repeat, lambda: timed(lambda _: doc.delta_since(before)))
    else:  # made from this replica's own ops
        out["delta"] = _best(
            args.repeat, lambda: timed(lambda _: encode_ops(doc, doc.local_ops_since(seq0)))
        )
    delta = room.doc.delta_since(before)
    digest = "0" * 32
    out["wrap"] = _best(
        args.repeat, lambda: timed(lambda _: edit_keys.wrap_update("k" * 30, "e1", delta, digest))
    )
    after = room.doc.version
    out["note"] = _best(
        args.repeat,
        lambda: timed(lambda m: history.note(before, after, 0, "u1", "user", m.ops)),
    )
    node = next(iter(room.doc.roots))
    checks = room.checks
    out["checksum"] = _best(
        args.repeat, lambda: timed(lambda _: checks.after(room.version, [node]))
    )

    def whole() -> float:
        msgs = edits()
        t0 = time.process_time_ns()
        for i, m in enumerate(msgs):
            m.version = room.version  # (at the head: made in advance, based here)
            room.edit(typists[i % len(typists)].session, m, i)
        return (time.process_time_ns() - t0) / n / 1000

    out["edit"] = _best(args.repeat, whole)
    parts = ("digest", "plan", "delta", "wrap", "note", "checksum")
    out["apply+record+rest"] = out["edit"] - sum(out[k] for k in parts)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2000,20000,200000", help="document sizes (characters)")
    ap.add_argument("--docs", type=int, default=4, help="rooms per size and pass")
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--edits", type=int, default=4000, help="edits per size and pass")
    ap.add_argument("--stale-every", type=int, default=10, help="one edit in N is concurrent")
    ap.add_argument("--delete-every", type=int, default=8, help="one edit in N is a backspace")
    ap.add_argument("--repeat", type=int, default=5, help="passes; the best is reported")
    ap.add_argument("--no-phases", action="store_true")
    ap.add_argument(
        "--gc", choices=("server", "default"), default="server", help="the collector's settings"
    )
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    load = os.getloadavg()[0]
    print(
        f"Room.edit, engine {engine_build()}, {args.docs} rooms x {args.clients} clients,"
        f" {args.edits} edits per size (1 in {args.stale_every} stale), best of {args.repeat},"
        f" {args.gc} gc; load average {load:.1f}"
    )
    print(f"{'chars':>9}  {'head µs':>8}  {'stale µs':>8}")
    for chars in sizes:
        runs = [_pass(chars, args) for _ in range(args.repeat)]
        print(f"{chars:>9,}  {min(r[0] for r in runs):8.1f}  {min(r[1] for r in runs):8.1f}")
    if args.no_phases:
        return
    print("phases of a head edit, each timed alone (µs, best of N):")
    table = {chars: _phases(chars, args) for chars in sizes}
    names = list(next(iter(table.values())))
    print(f"{'phase':>18}  " + "  ".join(f"{c:>9,}" for c in sizes))
    for name in names:
        print(f"{name:>18}  " + "  ".join(f"{table[c][name]:9.1f}" for c in sizes))


if __name__ == "__main__":
    main()
