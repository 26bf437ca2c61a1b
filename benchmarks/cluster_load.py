"""Load generator worker for the cluster benchmark (``benchmarks.cluster``).

The same thin clients and line protocol as ``benchmarks.load`` (spec on the first stdin line,
then ``go`` / ``expect`` / ``stop``), with two differences:

* the spec carries ``urls`` (one WebSocket endpoint per instance) and ``instance_of`` (client
  index -> instance), so each client talks to its own instance;
* receive times are kept per instance: ``recv_by_instance[i]`` holds, per edit key, how many of
  this worker's clients *on instance i* got it and when the last of them did. The coordinator
  splits edit->visible into receivers on the sender's instance and receivers elsewhere (the
  cross-instance path: durable write, bus, merge on the other instance).

Run as ``python -m benchmarks.cluster_load`` (the coordinator does).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import Any

from benchmarks.load import (
    CowriteClient,
    Recorder,
    WorkerSpec,
    emit,
    follow_commands,
    install_fast_loop,
    result_event,
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
            out.received(key, t_max, count)
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
    outcome = await follow_commands(spec, clients)
    result = result_event(spec, merged(recorders), clients, outcome)
    result["recv_by_instance"] = [rec.receipt_rows() for rec in recorders]
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
