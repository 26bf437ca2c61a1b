"""CPU per local edit and per undo of the SDK's undo manager on a 200,000-character text (not a
test: ``docs/protocol.md`` T11 reports its numbers; the JavaScript twin is
``web/test/undo_bench.mjs``). Each edit/undo is sent and acknowledged, as a client does.
Run: ``.venv/bin/python tests/vectors/undo_bench.py [src dir] [text length]`` (src dir: another
checkout's ``src`` to compare with, e.g. main's)."""

from __future__ import annotations

import json
import sys
import time

if len(sys.argv) > 1:
    sys.path.insert(0, sys.argv[1])

from cowrite import protocol as p
from cowrite.client.thin import ThinDocState
from cowrite.client.thin_undo import UndoManager
from cowrite.engine import ot

NODE = "text:body"


def main() -> None:
    length = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
    clock = [0.0]
    state = ThinDocState("d", "me", edit_id_prefix="me")
    undo = UndoManager(state, NODE, clock=lambda: clock[0])
    text = "".join(chr(97 + i % 26) for i in range(length))
    snapshot = {NODE: {"kind": "text", "value": text}}
    state.on_joined(p.Joined(doc="d", mode="thin", version=0, rights=["write"], snapshot=snapshot))
    version = [0]
    seed = [7]

    def rand(n: int) -> int:
        seed[0] = (seed[0] * 1103515245 + 12345) % 2147483648
        return seed[0] % n

    def round_trip() -> None:
        msg = state.take_batch()
        if msg is not None:
            version[0] += 1
            state.on_ack(p.Ack(doc="d", edit_id=msg.edit_id, version=version[0]))

    for _ in range(100):
        clock[0] += 1
        state.local_edit(NODE, ot.from_splice(rand(length), 0, "x"))
        round_trip()
    n = 1000
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        clock[0] += 1
        state.local_edit(NODE, ot.from_splice(rand(length), 0, "y"))
        round_trip()
    edit = ((time.process_time() - c0) / n * 1e3, (time.perf_counter() - w0) / n * 1e3)
    u = 100
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(u):
        clock[0] += 1
        undo.undo()
        round_trip()
    und = ((time.process_time() - c0) / u * 1e3, (time.perf_counter() - w0) / u * 1e3)
    out = {"src": sys.argv[1] if len(sys.argv) > 1 else "here", "length": length}
    out |= {"edit_cpu_ms": round(edit[0], 4), "edit_wall_ms": round(edit[1], 4)}
    out |= {"undo_cpu_ms": round(und[0], 4), "undo_wall_ms": round(und[1], 4)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
