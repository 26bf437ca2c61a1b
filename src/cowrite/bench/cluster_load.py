"""Load generator worker for the cluster benchmark (``cowrite.bench.cluster``).

The same thin clients and line protocol as ``cowrite.bench.load`` (spec on the first stdin line,
then ``go`` / ``expect`` / ``stop``), with two differences:

* the spec carries ``urls`` (one WebSocket endpoint per instance) and ``instance_of`` (client
  index -> instance), so each client talks to its own instance;
* receive times are kept per instance: ``recv_by_instance[i]`` holds, per edit key, how many of
  this worker's clients *on instance i* got it and when the last of them did. The coordinator
  splits edit->visible into receivers on the sender's instance and receivers elsewhere (the
  cross-instance path: durable write, bus, merge on the other instance).

Run as ``python -m cowrite.bench.cluster_load`` (the coordinator does).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

from cowrite.bench.load import (
    CowriteClient,
    LoadClient,
    Recorder,
    WorkerSpec,
    _drain,
    _result,
    _type,
    emit,
    install_fast_loop,
    read_command,
)


def split_spec(data: dict[str, Any]) -> tuple[WorkerSpec, list[str], dict[int, int]]:
    """The ``WorkerSpec`` and the cluster fields (``urls``, ``instance_of``) of a spec line."""
    data = dict(data)
    urls = [str(u) for u in data.pop("urls")]
    instance_of = {int(k): int(v) for k, v in data.pop("instance_of").items()}
    return WorkerSpec.from_json(data), urls, instance_of


def merged(recorders: list[Recorder]) -> Recorder:
    """One recorder holding every send and, per key, the receive count and latest time."""
    out = Recorder()
    for rec in recorders:
        out.sends.update(rec.sends)
        for key, (count, t_max) in rec.recv.items():
            entry = out.recv.get(key)
            if entry is None:
                out.recv[key] = [count, t_max]
            else:
                entry[0] += count
                entry[1] = max(entry[1], t_max)
    return out


async def run_cluster_worker(
    spec: WorkerSpec, urls: list[str], instance_of: dict[int, int]
) -> None:
    recorders = [Recorder() for _ in urls]
    clients: list[CowriteClient] = []
    for index, doc in spec.clients:
        inst = instance_of[index]
        client = CowriteClient(index, doc, spec, recorders[inst])
        client.url = urls[inst]
        clients.append(client)
    sem = asyncio.Semaphore(spec.connect_concurrency)
    failures: list[str] = []

    async def connect(c: CowriteClient) -> None:
        async with sem:
            try:
                await c.connect()
            except Exception as exc:
                failures.append(f"client {c.index}: {type(exc).__name__}: {exc}")

    t0 = time.monotonic()
    # the first client of each document alone: it creates the document
    firsts: dict[str, CowriteClient] = {}
    for c in clients:
        firsts.setdefault(c.doc, c)
    await asyncio.gather(*(connect(c) for c in firsts.values()))
    chosen = {id(c) for c in firsts.values()}
    await asyncio.gather(*(connect(c) for c in clients if id(c) not in chosen))
    emit(
        {
            "event": "ready",
            "clients": len(clients),
            "failed": len(failures),
            "failures": failures[:5],
            "connect_s": round(time.monotonic() - t0, 3),
        }
    )
    live: list[LoadClient] = [c for c in clients if c.connected()]
    lags: list[int] = []
    skipped = 0
    drained = True
    cmd = await read_command()
    if cmd.get("cmd") == "go":
        skipped = await _type(live, spec, int(cmd["start_ns"]), int(cmd["end_ns"]), lags)
        per_doc: dict[str, int] = {}
        for c in clients:
            per_doc[c.doc] = per_doc.get(c.doc, 0) + c.keystrokes
        emit({"event": "sent", "per_doc": per_doc})
        cmd = await read_command()
        expected: dict[str, int] = cmd.get("per_doc", {})
        timeout = float(cmd.get("timeout_s", spec.drain_timeout_s))
        drained = await _drain(live, expected, timeout)
    result = _result(spec, merged(recorders), clients, lags, failures, drained)
    result["skipped"] = skipped
    result["recv_by_instance"] = [[[k, *v] for k, v in rec.recv.items()] for rec in recorders]
    emit(result)
    for c in clients:
        await c.close()


def main() -> int:
    spec, urls, instance_of = split_spec(json.loads(sys.stdin.readline()))
    install_fast_loop()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_cluster_worker(spec, urls, instance_of))
    return 0


if __name__ == "__main__":
    sys.exit(main())
