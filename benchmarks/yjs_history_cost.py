"""What Yjs version history costs: storage of the replayable log, and the time of each read.

``python -m benchmarks.yjs_history_cost [--updates N]`` types ``N`` one-character updates into a
``Y.Text`` (every tenth one deletes the character before instead, as people correct typos), one
stored update each, then prints: the bytes of the document's state, of the kept log and of the
snapshot container; the time (wall and CPU) of the value at the oldest and the newest version, of
a diff over the last 500 versions with authors and over the whole log without, of a restore
update, and of folding the whole log into the base. Run it beside a load average: wall times are
noisy on a shared machine, CPU times less so.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import pycrdt

from cowrite.rooms.yjs_diff import diff
from cowrite.rooms.yjs_history import YjsHistory, fold, wrap
from cowrite.rooms.yjs_restore import restore_update
from cowrite.rooms.yjs_values import infer_types, value_of


def typed(n: int) -> tuple[YjsHistory, bytes]:
    doc: pycrdt.Doc[Any] = pycrdt.Doc(client_id=7)
    text = doc.get("body", type=pycrdt.Text)
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    for i in range(n):
        if i % 10 == 9 and len(text):
            del text[len(text) - 1 : len(text)]
        else:
            text += "abcdefghij"[i % 10]
    history = YjsHistory()
    history.extend(enumerate(updates, 1))
    return history, doc.get_update()


def timed(what: str, run: Callable[[], object]) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{what:<44} wall {wall * 1000:8.1f} ms  cpu {cpu * 1000:8.1f} ms")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--updates", type=int, default=20_000)
    args = parser.parse_args(argv)
    n = args.updates
    history, state = typed(n)
    log_bytes = sum(len(u) for _, u in history.entries)
    print(f"load average {os.getloadavg()[0]:.2f}; {n} updates")
    print(f"state {len(state)} B; kept log {log_bytes} B ({log_bytes / n:.1f} B per update)")
    print(f"container {len(wrap(state, history))} B")
    types = infer_types(state)
    timed("value at version 1", lambda: value_of(history.state_at(1) or b"", types))
    timed(f"value at version {n}", lambda: value_of(history.state_at(n) or b"", types))
    timed("diff of the last 500 versions, with authors", lambda: diff(history, n - 500, n, types))
    timed(f"diff 0..{n}, no authors (over 500 steps)", lambda: diff(history, 0, n, types))
    old = history.state_at(n // 2) or b""
    timed("restore update (back to the middle)", lambda: restore_update(state, old, types))
    timed(
        "fold the whole log (one named version)",
        lambda: fold(history, named={n // 2}, times={}, now_ms=0, keep_ms=0, max_bytes=0),
    )


if __name__ == "__main__":
    main()
