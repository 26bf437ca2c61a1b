"""Acknowledged edits survive SIGKILL: a child appends, we kill it mid-burst, then check the file.

The child prints a line only after ``append_update`` has returned (the moment the server would send
the acknowledgement), so every complete line we read must be in the database afterwards, with its
exact bytes and its edit key. Three kill/restart rounds on the same file also check that a store
reopens cleanly after a crash and carries on numbering. ``FULL`` runs with the pipelined group
commit (the WAL fsynced on a thread of its own, ``_wal_sync.py``) and without it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cowrite.adapters.store import SQLiteStore

CHILD = Path(__file__).with_name("sqlite_crash_child.py")
ACKS_BEFORE_KILL = 300
ROUNDS = 3

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")


def run_and_kill(
    db: Path, synchronous: str, mode: str = "pipe"
) -> dict[int, tuple[str, str, bytes]]:
    """Run the child until it has acknowledged enough edits, SIGKILL it, return its acks."""
    stderr_path = db.with_suffix(".stderr")
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(db), synchronous, mode],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    try:
        while len(lines) < ACKS_BEFORE_KILL + 1 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        # Read through the same buffered stream: readline() may hold part of the next line.
        rest = proc.stdout.read()
        proc.stdout.close()
        proc.wait(timeout=30)
    err = stderr_path.read_text()
    assert proc.returncode == -signal.SIGKILL, err
    assert lines and lines[0] == "ready\n", err
    lines.extend(rest.splitlines(keepends=True))
    acks: dict[int, tuple[str, str, bytes]] = {}
    for line in lines[1:]:
        if not line.endswith("\n"):  # cut by the kill: not a complete acknowledgement
            continue
        seq, client_id, edit_id, data = line.split()
        assert int(seq) not in acks, f"seq {seq} acknowledged twice"
        acks[int(seq)] = (client_id, edit_id, bytes.fromhex(data))
    assert len(acks) >= ACKS_BEFORE_KILL
    return acks


async def check(db: Path, acks: dict[int, tuple[str, str, bytes]]) -> int:
    async with SQLiteStore(db) as store:
        loaded = await store.load("crash")
        assert loaded is not None
        log = dict(loaded.updates)
        # The log has no holes: whatever was committed is a prefix 1..last_seq.
        assert sorted(log) == list(range(1, loaded.last_seq + 1))
        missing = sorted(seq for seq in acks if seq not in log)
        assert not missing, f"acknowledged but lost: {missing[:10]}"
        for seq, (client_id, edit_id, data) in acks.items():
            assert log[seq] == data, f"seq {seq} has other bytes than acknowledged"
            assert await store.find_edit("crash", client_id, edit_id) == seq
        return loaded.last_seq


@pytest.mark.parametrize(
    ("synchronous", "mode"), [("FULL", "pipe"), ("FULL", "nopipe"), ("NORMAL", "pipe")]
)
def test_acknowledged_appends_survive_sigkill(tmp_path: Path, synchronous: str, mode: str) -> None:
    db = tmp_path / "crash.db"
    all_acks: dict[int, tuple[str, str, bytes]] = {}
    last_seq = 0
    for _ in range(ROUNDS):
        acks = run_and_kill(db, synchronous, mode)
        assert min(acks) > last_seq, "a restarted store reused a committed seq"
        all_acks.update(acks)
        last_seq = asyncio.run(check(db, all_acks))
        assert last_seq >= max(all_acks)
