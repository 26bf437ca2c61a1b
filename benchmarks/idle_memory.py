"""What one idle connection costs the server, by file and by type (issue 12's 15 kB target).

``python -m benchmarks.idle_memory [--kind ws|yjs] [--warm 200] [-n 1000]``: runs ``cowrite
serve``'s uvicorn server (``--data :memory:``) in this process under ``tracemalloc``, opens
``--warm`` idle connections from a client subprocess (so the client's memory is not counted),
snapshots the heap, opens ``-n`` more and snapshots again. The diff, divided by ``n``, is the
Python heap one more idle connection holds: by file, by line, and the object count by type
(``gc``). RSS is read from ``/proc/self/status`` at both points (tracemalloc's own bookkeeping
is in it: trust the heap numbers, compare RSS only between runs of this probe).

Native connections say ``hello`` and ``join`` one of ``n // 10`` documents and answer pings;
y-websocket connections open ``/yjs/<doc>`` and send an empty sync step 1 (as a provider does).

``--cpu S`` (issue 12's idle CPU): no tracing; once every connection is open and every member
has gone idle (``--idle-after``, 5 s: the members' "idle" presence broadcasts are not idle
CPU), the server's user and system CPU over ``S`` seconds, with the load average and the CPU
the rest of the (shared) machine used meanwhile. The server keeps its heartbeat defaults unless
``--heartbeat`` is given (``--heartbeat 1000``: pings off).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import gc
import json
import os
import socket
import sys
import time
import tracemalloc
from typing import Any

CLIENT_FLAG = "--client"


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------- client


async def _client_main(url: str, kind: str, start: int, count: int, docs: int) -> None:
    import websockets.exceptions
    from websockets.asyncio.client import connect

    conns: list[Any] = []
    tasks: list[asyncio.Task[None]] = []
    sem = asyncio.Semaphore(64)
    patient = 120.0  # open_timeout: a busy machine (load 10+) can take longer than 10 s

    async def pump(ws: Any) -> None:
        async for raw in ws:
            if kind == "ws" and isinstance(raw, str) and '"ping"' in raw:
                for msg in json.loads(raw) if raw.startswith("[") else [json.loads(raw)]:
                    if msg.get("type") == "ping":
                        await ws.send(json.dumps({"type": "pong", "nonce": msg["nonce"]}))

    async def one(i: int) -> None:
        for attempt in range(5):  # a busy server may drop a handshake (its 15 s HTTP deadline)
            try:
                return await open_one(i)
            except (OSError, websockets.exceptions.InvalidMessage, TimeoutError):
                if attempt == 4:
                    raise
                await asyncio.sleep(1.0)

    async def open_one(i: int) -> None:
        doc = f"idle-{i % docs}"
        async with sem:
            if kind == "ws":
                ws = await connect(
                    f"{url}/ws",
                    compression=None,
                    max_size=None,
                    ping_interval=None,
                    open_timeout=patient,
                )
                await ws.send(json.dumps({"type": "hello", "client_id": f"c{i:08d}"}))
                await ws.send(json.dumps({"type": "join", "doc": doc, "create": True}))
                while True:  # until joined
                    raw = await ws.recv()
                    if '"joined"' in raw:
                        break
                    if '"error"' in raw:
                        raise RuntimeError(raw)
            else:
                ws = await connect(
                    f"{url}/yjs/{doc}",
                    compression=None,
                    max_size=None,
                    ping_interval=None,
                    open_timeout=patient,
                )
                await ws.send(b"\x00\x00\x01\x00")  # sync step 1, empty state vector
                await ws.recv()
        conns.append(ws)
        tasks.append(asyncio.create_task(pump(ws)))

    await asyncio.gather(*(one(i) for i in range(start, start + count)))
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    for ws in conns:
        await ws.close()


# ------------------------------------------------------------------------------- server


def _by_type() -> collections.Counter[str]:
    return collections.Counter(type(o).__qualname__ for o in gc.get_objects())


async def _spawn_clients(url: str, kind: str, start: int, n: int, docs: int) -> Any:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.idle_memory",
        CLIENT_FLAG,
        url,
        kind,
        str(start),
        str(n),
        str(docs),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await proc.stdout.readline()
    if line.strip() != b"ready":
        raise RuntimeError(f"client process failed: {line!r}")
    return proc


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.05)
    gc.collect()


async def _server_main(args: argparse.Namespace) -> dict[str, Any]:
    server, task, url = await _start(args)
    docs = max(1, (args.warm + args.n) // 10)
    warm = await _spawn_clients(url, args.kind, 0, args.warm, docs)
    await _settle()
    types0 = _by_type()
    rss0 = _rss_kb()
    snap0 = tracemalloc.take_snapshot()
    more = await _spawn_clients(url, args.kind, args.warm, args.n, docs)
    await _settle()
    snap1 = tracemalloc.take_snapshot()
    rss1 = _rss_kb()
    types1 = _by_type()
    n = args.n
    filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
    snap0, snap1 = snap0.filter_traces(filters), snap1.filter_traces(filters)
    total = sum(s.size_diff for s in snap1.compare_to(snap0, "filename"))
    where = [
        [round(s.size_diff / n), round(s.count_diff / n, 2), [str(f) for f in s.traceback]]
        for s in snap1.compare_to(snap0, "traceback")
        if args.where
        and s.size_diff >= n // 2
        and any(args.where in f.filename for f in s.traceback)
    ]
    out: dict[str, Any] = {
        "where": where[: args.top],
        "kind": args.kind,
        "n": n,
        "heap_per_conn_bytes": round(total / n),
        "rss_per_conn_bytes": round((rss1 - rss0) * 1024 / n),
        "by_file": [
            (_short(s.traceback[0].filename), round(s.size_diff / n), round(s.count_diff / n, 2))
            for s in snap1.compare_to(snap0, "filename")[: args.top]
            if s.size_diff
        ],
        "by_line": [
            (
                f"{_short(s.traceback[0].filename)}:{s.traceback[0].lineno}",
                round(s.size_diff / n),
                round(s.count_diff / n, 2),
            )
            for s in snap1.compare_to(snap0, "lineno")[: args.top]
            if s.size_diff
        ],
        "types": [
            (name, round((types1[name] - types0.get(name, 0)) / n, 2))
            for name in sorted(types1, key=lambda k: types0.get(k, 0) - types1[k])[: args.top]
            if types1[name] - types0.get(name, 0) >= n // 2
        ],
    }
    for proc in (more, warm):
        assert proc.stdin is not None
        try:
            proc.stdin.write(b"\n")
            await proc.stdin.drain()
        except ConnectionError:
            pass  # it is gone already
        await proc.wait()
    server.should_exit = True
    await task
    return out


async def _start(args: argparse.Namespace) -> tuple[Any, asyncio.Task[None], str]:

    from cowrite.server.app import create_app
    from cowrite.server.config import Settings
    from cowrite.server.run import Server, server_config

    port = _free_port()
    beat = {}  # the server's defaults unless --heartbeat says otherwise
    if args.heartbeat is not None:
        beat = {"heartbeat_s": args.heartbeat, "heartbeat_timeout_s": args.heartbeat * 1.5}
    settings = Settings(
        data=":memory:", host="127.0.0.1", port=port, idle_after_s=args.idle_after, **beat
    )
    server = Server(server_config(create_app(settings), settings))  # as ``cowrite serve``
    server.config.log_level = "warning"
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    return server, task, f"ws://127.0.0.1:{port}"


async def _cpu_main(args: argparse.Namespace) -> dict[str, Any]:
    """RSS per connection and idle CPU, untraced (what ``--cpu`` prints)."""
    server, task, url = await _start(args)
    n = args.warm + args.n
    gc.collect()
    rss0 = _rss_kb()
    clients = await _spawn_clients(url, args.kind, 0, n, max(1, n // 10))
    await _settle()
    rss1 = _rss_kb()
    # every member has gone idle (its presence broadcast) and been pinged once: steady state
    await asyncio.sleep(args.idle_after + 2)
    profile = cProfile.Profile() if args.profile else None
    load0 = os.getloadavg()[0]
    others0 = _others_busy([os.getpid(), clients.pid])
    t0, c0, times0 = time.monotonic(), time.process_time(), os.times()
    if profile is not None:
        profile.enable()
    await asyncio.sleep(args.cpu)
    if profile is not None:
        profile.disable()
        profile.dump_stats(args.profile)
    t1, c1, times1 = time.monotonic(), time.process_time(), os.times()
    others1 = _others_busy([os.getpid(), clients.pid])
    assert clients.stdin is not None
    clients.stdin.write(b"\n")
    await clients.stdin.drain()
    await clients.wait()
    server.should_exit = True
    await task
    return {
        "kind": args.kind,
        "connections": n,
        "rss_per_conn_bytes": round((rss1 - rss0) * 1024 / n),
        "idle_cpu_pct": round(100 * (c1 - c0) / (t1 - t0), 3),
        # user (Python) and system (socket calls, epoll) parts of it
        "idle_user_pct": round(100 * (times1.user - times0.user) / (t1 - t0), 3),
        "idle_sys_pct": round(100 * (times1.system - times0.system) / (t1 - t0), 3),
        "heartbeat_s": server.config.app.state.cowrite.settings.heartbeat_s,
        "loadavg": [round(load0, 2), round(os.getloadavg()[0], 2)],
        # CPU the rest of the machine used meanwhile (it is shared): % of one core
        "other_pct": round(100 * (others1 - others0) / (t1 - t0), 1),
        "loop": "uvloop" if args.uvloop else "asyncio",
    }


def _others_busy(pids: list[int]) -> float:
    """Busy CPU seconds of the machine outside ``pids`` so far (all cores)."""
    from benchmarks import procstat

    busy, _ = procstat.machine_busy_seconds()
    return busy - sum(procstat.cpu_seconds(pid) or 0.0 for pid in pids)


def _short(path: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        i = path.find(marker)
        if i >= 0:
            return path[i + len(marker) :]
    return path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == CLIENT_FLAG:
        url, kind, start, count, docs = argv[1:6]
        asyncio.run(_client_main(url, kind, int(start), int(count), int(docs)))
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.idle_memory")
    parser.add_argument("--kind", choices=("ws", "yjs"), default="ws")
    parser.add_argument("--warm", type=int, default=200)
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--frames", type=int, default=1)
    parser.add_argument(
        "--cpu",
        type=float,
        default=0.0,
        help="instead of tracing the heap: RSS per connection and the server's CPU over this "
        "many idle seconds once every connection is open",
    )
    parser.add_argument("--profile", default="", help="with --cpu: cProfile the idle window here")
    parser.add_argument(
        "--heartbeat",
        type=float,
        default=None,
        help="the server's heartbeat_s (timeout 1.5 times it; default: the server's defaults)",
    )
    parser.add_argument(
        "--idle-after",
        type=float,
        default=5.0,
        help="the server's idle_after_s: with --cpu the window starts once every member went "
        "idle (its presence broadcast is not idle CPU)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--uvloop", action="store_true", help="with --cpu: serve on uvloop (as `cowrite serve`)"
    )
    parser.add_argument(
        "--where",
        default="",
        help="also print the tracebacks (--frames deep) of lines in files whose name contains this",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("COWRITE_LOG_JSON", "0")
    if args.cpu:
        if args.uvloop:
            import uvloop

            cpu = uvloop.run(_cpu_main(args))
        else:
            cpu = asyncio.run(_cpu_main(args))
        print(json.dumps(cpu) if args.json else " ".join(f"{k}={v}" for k, v in cpu.items()))
        return 0
    tracemalloc.start(args.frames)
    out = asyncio.run(_server_main(args))
    if args.json:
        print(json.dumps(out))
        return 0
    print(
        f"{out['kind']}: {out['n']} idle connections: heap {out['heap_per_conn_bytes']} B / "
        f"connection, RSS {out['rss_per_conn_bytes']} B / connection (under tracemalloc)"
    )
    for title, key in (("by file", "by_file"), ("by line", "by_line")):
        print(f"-- {title}: bytes / connection, blocks / connection")
        for name, size, count in out[key]:
            print(f"{size:8d} {count:7.2f}  {name}")
    for size, count, frames in out["where"]:
        print(f"-- {size} B, {count} blocks / connection:")
        for f in frames:
            print(f"     {_short(f)}")
    print("-- objects / connection, by type")
    for name, count in out["types"]:
        print(f"{count:7.2f}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
