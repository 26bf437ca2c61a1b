"""A room pipeline's queue (``server/job_queue.py``): everything queued taken at once, in order;
``join`` waits for what was put before it to be reported done."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cowrite.server.job_queue import JobQueue


async def test_take_returns_everything_queued_in_order_and_waits_when_empty() -> None:
    q: JobQueue[int] = JobQueue()
    for i in range(3):
        q.put_nowait(i)
    assert q.qsize() == 3
    assert await q.take() == [0, 1, 2]
    assert q.empty()
    taking = asyncio.ensure_future(q.take())
    await asyncio.sleep(0)
    assert not taking.done()
    q.put_nowait(7)
    q.put_nowait(8)  # before the consumer ran: both in its batch
    assert await taking == [7, 8]


async def test_a_second_consumer_is_refused() -> None:
    q: JobQueue[int] = JobQueue()
    first = asyncio.ensure_future(q.take())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        await q.take()
    q.put_nowait(1)
    assert await first == [1]


async def test_a_cancelled_take_loses_nothing() -> None:
    q: JobQueue[int] = JobQueue()
    taking = asyncio.ensure_future(q.take())
    await asyncio.sleep(0)
    taking.cancel()
    q.put_nowait(1)  # put as the cancellation is on its way
    with pytest.raises(asyncio.CancelledError):
        await taking
    assert await q.take() == [1]


async def test_join_returns_once_what_was_put_is_done() -> None:
    q: JobQueue[str] = JobQueue()
    await asyncio.wait_for(q.join(), 1)  # nothing put: at once
    q.put_nowait("a")
    q.put_nowait("b")
    joins = [asyncio.ensure_future(q.join()) for _ in range(2)]
    batch = await q.take()
    await asyncio.sleep(0)
    assert not any(j.done() for j in joins)  # taken is not done
    q.put_nowait("c")
    q.done(len(batch))
    await asyncio.sleep(0)
    assert not any(j.done() for j in joins)  # "c" is not done yet
    q.done(len(await q.take()))
    await asyncio.wait_for(asyncio.gather(*joins), 1)


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 5)), max_size=40))
def test_items_come_out_once_each_in_order_whatever_the_interleaving(
    steps: list[tuple[bool, int]],
) -> None:
    async def run() -> None:
        q: JobQueue[int] = JobQueue()
        out: list[int] = []
        n = 0

        async def consume() -> None:
            while True:
                batch = await q.take()
                out.extend(batch)
                q.done(len(batch))

        consumer = asyncio.ensure_future(consume())
        for yield_now, count in steps:
            for _ in range(count):
                q.put_nowait(n)
                n += 1
            if yield_now:
                await asyncio.sleep(0)
        await asyncio.wait_for(q.join(), 1)
        consumer.cancel()
        assert out == list(range(n))

    asyncio.run(run())
