"""Child process for test_sqlite_crash.py: appends to a SQLite store until it is killed.

Usage: ``python sqlite_crash_child.py DB_PATH FULL|NORMAL [pipe|nopipe]`` (``nopipe``: SQLite
fsyncs inside ``COMMIT``; ``pipe``, the default: the WAL is fsynced on a thread of its own).
Several coroutines append concurrently (so appends share commits); after each ``append_update``
returns, the child prints ``<seq> <client_id> <edit_id> <hex of the update>`` and flushes: every
printed line is an acknowledged edit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from typing import Literal, cast

from cowrite.adapters.store import DocumentExists, EditKey, SQLiteStore

DOC_ID = "crash"
WORKERS = 16


async def worker(store: SQLiteStore, worker_id: int) -> None:
    client_id = f"p{os.getpid()}w{worker_id}"  # unique across restarts of the child
    i = 0
    while True:
        i += 1
        size = int.from_bytes(os.urandom(2), "big") % 4000 + 1  # 1..4000 bytes, some span pages
        data = os.urandom(size)
        seq = await store.append_update(
            DOC_ID, data, edit_keys=[EditKey(client_id, str(i))], now_ms=i
        )
        sys.stdout.write(f"{seq} {client_id} {i} {data.hex()}\n")
        sys.stdout.flush()


async def main(path: str, synchronous: Literal["FULL", "NORMAL"], pipeline: bool) -> None:
    async with SQLiteStore(path, synchronous=synchronous, sync_pipeline=pipeline) as store:
        with contextlib.suppress(DocumentExists):  # a restart after a kill
            await store.create_document(DOC_ID, title="crash", now_ms=0)
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await asyncio.gather(*(worker(store, w) for w in range(WORKERS)))


if __name__ == "__main__":
    mode = sys.argv[3] if len(sys.argv) > 3 else "pipe"
    asyncio.run(main(sys.argv[1], cast(Literal["FULL", "NORMAL"], sys.argv[2]), mode == "pipe"))
