"""A room pipeline's queue: many producers, one consumer that takes everything queued at once.

``asyncio.Queue`` does per item what the pipeline needs per batch: a deque operation and a
getter check for each ``get_nowait``, an ``Event`` cleared on every put and a ``task_done``
per item, a getter future (and its list) every time the consumer waits. A room's pipeline takes
every queued job in one ``take`` and reports them done in one ``done``; a waiter future exists
only while the consumer waits, a join future only while someone joins (an unload, a delete).
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class JobQueue(Generic[T]):
    """``put_nowait`` from anywhere on the loop; one consumer ``take``s everything queued (in
    order) and calls ``done`` with how many it finished; ``join`` waits until every item put so
    far is done (``asyncio.Queue.join``)."""

    __slots__ = ("_items", "_joins", "_unfinished", "_waiter")

    def __init__(self) -> None:
        self._items: list[T] = []
        self._waiter: asyncio.Future[None] | None = None
        self._unfinished = 0
        self._joins: list[asyncio.Future[None]] | None = None

    def put_nowait(self, item: T) -> None:
        self._items.append(item)
        self._unfinished += 1
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    async def take(self) -> list[T]:
        """Everything queued, oldest first: at once when something is, else once ``put_nowait``
        adds something. One consumer at a time (a second one raises RuntimeError)."""
        while not self._items:
            if self._waiter is not None and not self._waiter.done():
                raise RuntimeError("JobQueue: another consumer is already waiting")
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None
        items = self._items
        self._items = []
        return items

    def done(self, n: int) -> None:
        """``n`` items taken earlier are finished: ``join`` returns once none is left."""
        self._unfinished -= n
        if self._unfinished <= 0:
            self._unfinished = 0
            joins, self._joins = self._joins, None
            for join in joins or ():
                if not join.done():
                    join.set_result(None)

    async def join(self) -> None:
        """Return once every item put so far was taken and reported ``done``."""
        if self._unfinished == 0:
            return
        join = asyncio.get_running_loop().create_future()
        if self._joins is None:
            self._joins = [join]
        else:
            self._joins.append(join)
        await join
