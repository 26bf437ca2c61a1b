"""The coordinator's side of a load run, shared by ``benchmarks.server`` and
``benchmarks.cluster``: the load-generator processes (``Generators``, one ``Worker`` each) and
the line protocol they follow (``benchmarks.load`` is the workers' side), the typing window
and the CPU it costs, and the chores of the coordinating process (niceness, stopping a child,
the progress log).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks import child_env, procstat
from benchmarks.load import EVENT_PREFIX, WorkerSpec
from benchmarks.results import RunResult


def log(msg: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def apply_nice(nice: int) -> str:
    """Try to run this process and its children at ``nice``; describe what is in force.

    With scheduler autogroups (Linux, ``kernel.sched_autogroup_enabled``) a process's niceness
    only orders it against its own session, so the session's autogroup is given ``nice`` too.
    """
    if nice:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        with contextlib.suppress(OSError):
            Path("/proc/self/autogroup").write_text(str(nice))
    out = f"nice {os.getpriority(os.PRIO_PROCESS, 0)}"
    with contextlib.suppress(OSError):
        group = Path("/proc/self/autogroup").read_text().split()
        if len(group) == 3:
            out += f", autogroup nice {group[2]}"
    return out


async def stop_process(proc: asyncio.subprocess.Process, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; reaps it."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


def new_run_id() -> str:
    """A short id for this run's client ids and document names."""
    return f"{int(time.time()) % 100000}{os.getpid() % 1000}"


def plan_workers(
    doc_of: Sequence[str],
    procs: int,
    *,
    kind: str,
    run_id: str,
    interval_ms: float,
    mode: str,
    drain_timeout_s: float,
) -> tuple[list[WorkerSpec], dict[str, int]]:
    """Deal the clients (``doc_of[c]``: client c's document) round-robin over ``procs`` worker
    specs; returns the specs and how many clients each document has."""
    specs = [
        WorkerSpec(
            kind=kind,
            url="",
            proc=i,
            run_id=run_id,
            clients=[],
            interval_ms=interval_ms,
            mode=mode,
            drain_timeout_s=drain_timeout_s,
            seed=1 + i,
        )
        for i in range(procs)
    ]
    clients_per_doc: dict[str, int] = {}
    for c, doc in enumerate(doc_of):
        specs[c % procs].clients.append((c, doc))
        clients_per_doc[doc] = clients_per_doc.get(doc, 0) + 1
    return specs, clients_per_doc


class Worker:
    """One generator process and its line protocol."""

    def __init__(self, proc: asyncio.subprocess.Process, spec: WorkerSpec) -> None:
        self.proc = proc
        self.spec = spec
        self.noise: list[str] = []

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def send(self, data: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(data) + "\n").encode())
        await self.proc.stdin.drain()

    async def event(self, name: str, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise TimeoutError
                line = await asyncio.wait_for(self.proc.stdout.readline(), left)
            except TimeoutError:
                raise TimeoutError(
                    f"generator {self.spec.proc} sent no {name!r} within {timeout:g} s"
                ) from None
            if not line:
                tail = " | ".join(self.noise[-5:])
                raise RuntimeError(f"worker {self.spec.proc} exited before {name!r}: {tail}")
            text = line.decode(errors="replace")
            if not text.startswith(EVENT_PREFIX):
                self.noise.append(text.rstrip())
                continue
            data: dict[str, Any] = json.loads(text[len(EVENT_PREFIX) :])
            if data.get("event") != name:
                raise RuntimeError(f"worker {self.spec.proc}: expected {name!r}, got {data}")
            return data


class Generators:
    """The load-generator processes of one run, their stderr going to one ``log`` file.

    ``spawn`` them, hand out their specs (``ready``), let them type (``type_for``) or ``stop``,
    then ``record_load`` and ``close``.
    """

    def __init__(self, log: Path) -> None:
        self.workers: list[Worker] = []
        self._log = open(log, "wb")  # noqa: SIM115 (closed by close())

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers]

    async def spawn(self, command: Sequence[str], specs: Sequence[WorkerSpec]) -> None:
        """One worker process per spec (``command`` runs a ``benchmarks.load``-style worker)."""
        for spec in specs:
            proc = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=self._log,
                limit=1 << 30,
                env=child_env(),
            )
            self.workers.append(Worker(proc, spec))

    async def ready(
        self,
        res: RunResult,
        spec_line: Callable[[WorkerSpec], dict[str, Any]] = WorkerSpec.to_json,
    ) -> None:
        """Send each worker its spec (``spec_line``) and wait until its clients are connected,
        one worker after the other, so that the first client of a document is alone; note the
        connections (and why any failed) in ``res``."""
        ready = []
        for w in self.workers:
            await w.send(spec_line(w.spec))
            ready.append(await w.event("ready", 300))
        res.connected = sum(r["clients"] - r["failed"] for r in ready)
        res.connect_s = max(r["connect_s"] for r in ready)
        failures = [f for r in ready for f in r.get("failures", [])]
        if failures:
            res.errors[f"connect: {failures[0]}"] = sum(r["failed"] for r in ready)

    async def send_all(self, data: dict[str, Any]) -> None:
        for w in self.workers:
            await w.send(data)

    async def events(self, name: str, timeout: float) -> list[dict[str, Any]]:
        """Event ``name`` of every worker."""
        return list(await asyncio.gather(*(w.event(name, timeout) for w in self.workers)))

    async def type_for(
        self, res: RunResult, pids: list[int], duration_s: float, drain_timeout_s: float
    ) -> tuple[procstat.CpuMark, procstat.CpuMark, list[dict[str, Any]]]:
        """Type for ``duration_s`` (from half a second on), then wait up to ``drain_timeout_s``
        for every keystroke to reach every client. Returns CPU marks of ``pids`` (and of the
        machine) at the start and end of the typing window (``res.window_s``), and the workers'
        ``result`` events."""
        start_ns = time.monotonic_ns() + 500_000_000
        end_ns = start_ns + int(duration_s * 1e9)
        await self.send_all({"cmd": "go", "start_ns": start_ns, "end_ns": end_ns})
        await asyncio.sleep(max(0.0, (start_ns - time.monotonic_ns()) / 1e9))
        start = procstat.CpuMark.take(pids)
        await asyncio.sleep(max(0.0, (end_ns - time.monotonic_ns()) / 1e9))
        end = procstat.CpuMark.take(pids)
        res.window_s = end.wall - start.wall
        sent = await self.events("sent", duration_s + 300)
        per_doc: dict[str, int] = {}
        for event in sent:
            for doc, n in event["per_doc"].items():
                per_doc[doc] = per_doc.get(doc, 0) + n
        await self.send_all({"cmd": "expect", "per_doc": per_doc, "timeout_s": drain_timeout_s})
        reports = await self.events("result", drain_timeout_s + 300)
        return start, end, reports

    def record_load(
        self,
        res: RunResult,
        reports: list[dict[str, Any]],
        start: procstat.CpuMark,
        end: procstat.CpuMark,
        pids: list[int],
    ) -> None:
        """Between the marks: how far behind schedule the generators typed, their CPU (and the
        Node generators' GC pauses), the machine's, and the CPU of processes outside the
        benchmark (``pids`` are ours)."""
        lags = [r["lag_ms"]["p99"] for r in reports if r.get("lag_ms", {}).get("p99") is not None]
        res.lag_p99_ms = max(lags) if lags else None
        gcs = [r["gc_ms"] for r in reports if r.get("gc_ms")]
        res.generator_gc_ms = [round(g["total"], 1) for g in gcs]
        res.generator_gc_max_ms = round(max(g["max"] for g in gcs), 1) if gcs else None
        res.generator_cpu_pct = [
            round(v, 1)
            for pid in self.pids
            if (v := procstat.cpu_percent(start, end, pid)) is not None
        ]
        res.machine_cpu_pct = procstat.machine_percent(start, end)
        ours = sum(v for pid in pids if (v := procstat.cpu_percent(start, end, pid)) is not None)
        res.other_cpu_pct = max(0.0, res.machine_cpu_pct - ours)

    async def close(self) -> None:
        """Close their stdin (a worker stops at the end of its commands), stop them, close the
        log."""
        for w in self.workers:
            with contextlib.suppress(Exception):
                if w.proc.stdin is not None:
                    w.proc.stdin.close()
        for w in self.workers:
            await stop_process(w.proc, 10.0)
        self._log.close()
