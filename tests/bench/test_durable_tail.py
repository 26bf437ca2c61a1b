"""The durable-tail benchmarks: the commit convoy runs against a real SQLite store and leaves
the writer and the switch interval as it found them; the fsync floor measures each kind; the
probe's disk, checkpoint and slow-commit summaries attribute what overlapped a slow commit."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from benchmarks import commit_convoy, fsync_floor, pipeline_probe
from cowrite.adapters.store import _writer


async def test_the_convoy_run_appends_everything_and_restores_the_process() -> None:
    commit, interval = _writer.BatchWriter._commit, sys.getswitchinterval()
    with tempfile.TemporaryDirectory() as tmp:
        r = await commit_convoy.run(
            interval_s=0.001,
            sync="NORMAL",
            rate=300.0,
            seconds=0.5,
            busy_s=0.001,
            period_s=0.004,
            path=str(Path(tmp) / "c.db"),
        )
    assert r["appends"] >= 100
    assert 1 <= r["commits"] <= r["appends"]
    assert r["max"] >= r["p99"] >= r["append p50"] > 0
    assert r["commit max"] >= r["commit p99"] >= r["commit p50"] > 0
    assert _writer.BatchWriter._commit is commit
    assert sys.getswitchinterval() == interval


def test_the_fsync_floor_measures_every_kind() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        results = fsync_floor.measure(tmp, 5, 0.0)
    assert len(results) == 3
    assert all(len(v) == 5 and min(v) > 0 for v in results.values())


def test_the_probe_names_what_overlapped_a_slow_commit() -> None:
    disk = pipeline_probe.DiskWatch(Path("unused"))
    disk.syncs += [(1.0, 0.002), (2.0, 0.030), (3.5, 0.001)]
    assert disk.worst_during(1.9, 2.1) == 0.030  # overlapped
    assert disk.worst_during(2.05, 2.5) == 0.0  # ended before
    checkpoints = [(10.0, 0.2)]
    assert pipeline_probe._overlap(checkpoints, 10.1, 10.15) == 0.2
    assert pipeline_probe._overlap(checkpoints, 9.0, 9.5) == 0.0
    # (start, seconds, jobs, thread CPU, statements' wall, statements' CPU, no CPU)
    slow = [
        (2.0, 0.040, "x1", 0.001, 0.0105, 0.0005, 0.002),
        (10.05, 0.030, "x2", 0.001, 0.0, 0.0, 0.0),
    ]
    assert pipeline_probe._slow_summary(slow) == [
        "slow commits: 2, 35.0 ms mean: thread CPU 1.0, runnable without a CPU 1.0 (included "
        "in the next two); statements' wall beyond their CPU 5.0, BEGIN + COMMIT (fsync) 29.8"
    ]
    lock = pipeline_probe.LockWatch()
    lock.starts += [2.01, 5.0]
    lock.waits += [0.006, 0.009]
    assert lock.worst_during(2.0, 2.04) == 0.006
    assert pipeline_probe._disk_summary(slow, disk, checkpoints, lock) == [
        "slow commits with a disk fsync of 10 ms or more beside them: 1 of 2; overlapping a "
        "WAL checkpoint: 1 of 2; with a lock re-take of 5 ms or more beside: 1 of 2"
    ]
    assert pipeline_probe._slow_summary([]) == []


def test_the_checkpoint_timer_passes_other_statements_through() -> None:
    import sqlite3

    spans: list[tuple[float, float]] = []
    conn = pipeline_probe._TimedCheckpoints(sqlite3.connect(":memory:"), spans)
    assert conn.execute("SELECT 1").fetchone() == (1,)
    assert spans == []
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    assert len(spans) == 1
    conn.close()
