"""CPU time and memory of processes and of the machine, read from ``/proc`` (Linux)."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds used so far by ``pid`` (None once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces: split after its closing parenthesis
    fields = raw[raw.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def memory_kb(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak RSS) of ``pid`` in kB; empty once it is gone."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0])
    except OSError:
        return {}
    return out


def machine_busy_seconds() -> tuple[float, float]:
    """(busy CPU seconds, total CPU seconds) of the whole machine since boot, all cores."""
    with open("/proc/stat", encoding="ascii") as fh:
        parts = fh.readline().split()
    values = [int(v) for v in parts[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


@dataclass
class CpuMark:
    """CPU seconds of some processes and of the machine at one instant."""

    wall: float
    procs: dict[int, float]
    machine_busy: float

    @classmethod
    def take(cls, pids: list[int]) -> CpuMark:
        procs = {}
        for pid in pids:
            used = cpu_seconds(pid)
            if used is not None:
                procs[pid] = used
        return cls(time.monotonic(), procs, machine_busy_seconds()[0])


def cpu_percent(start: CpuMark, end: CpuMark, pid: int) -> float | None:
    """CPU of ``pid`` between two marks, in percent of one core."""
    if pid not in start.procs or pid not in end.procs or end.wall <= start.wall:
        return None
    return 100.0 * (end.procs[pid] - start.procs[pid]) / (end.wall - start.wall)


def machine_percent(start: CpuMark, end: CpuMark) -> float:
    """Busy CPU of the whole machine between two marks, in percent of one core."""
    if end.wall <= start.wall:
        return 0.0
    return 100.0 * (end.machine_busy - start.machine_busy) / (end.wall - start.wall)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_total_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def command_version(args: list[str]) -> str | None:
    """First line printed by a ``--version``-style command, or None."""
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else None
