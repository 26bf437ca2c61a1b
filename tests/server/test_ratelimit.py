"""The token bucket: refused work (``take``) and paced work (``delay``), on a test clock."""

from __future__ import annotations

from cowrite.server.ratelimit import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_take_refuses_beyond_the_burst_then_refills() -> None:
    clock = Clock()
    bucket = TokenBucket(2.0, 3, clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now = 0.5  # one token back
    assert bucket.take() and not bucket.take()


def test_delay_paces_a_flood_at_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(2.0, 2, clock)
    assert bucket.delay() == 0.0 and bucket.delay() == 0.0
    assert bucket.delay() == 0.5  # in debt by one token: half a second at 2 a second
    clock.now = 0.5  # the caller waited: paid off
    assert bucket.delay() == 0.5
    clock.now = 1.0
    assert bucket.delay(10) == 1.0  # a cost over the burst is charged as the burst
    clock.now = 10.0  # a long pause refills to the burst, no more
    assert bucket.delay() == 0.0 and bucket.delay() == 0.0 and bucket.delay() == 0.5
