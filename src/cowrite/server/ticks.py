"""Which rooms the hub's once-a-second tick visits: each room's next due time, in a heap.

Why: the tick used to walk every loaded room every second (idle members, quiet checksums,
awareness expiry, snapshots of quiet rooms), although nearly every room of an idle server has
nothing due for a minute. Now an input to a room (``wake``) makes it due at the next tick, and a
visited room is put back at the time its next timer falls due (``at``), or left out until its
next input. Times are the hub's wall-clock ms (``Hub.now_ms``), the room timers' clock.

Caller's contract: keys are document ids; a key may name a room that was unloaded since (the
caller skips it). Entries are superseded lazily: the heap holds at most one live entry per key
plus stale ones that are dropped when they come up (or when they outnumber the live ones).
"""

from __future__ import annotations

import heapq

NEXT_TICK = 0
"""A due time that every tick has reached: the room is visited at the next tick."""


class TickSchedule:
    """Rooms by next due time (wall ms); each room at most once."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, str]] = []
        self._due: dict[str, int] = {}
        """Key -> its live entry's due time."""
        self._order = 0

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, key: object) -> bool:
        return key in self._due

    def due_at(self, key: str) -> int | None:
        """When ``key`` is due (None: not scheduled)."""
        return self._due.get(key)

    def wake(self, key: str) -> None:
        """``key`` had an input: visit it at the next tick (cheap when it is already due)."""
        if self._due.get(key) != NEXT_TICK:
            self.at(key, NEXT_TICK)

    def at(self, key: str, due_ms: int) -> None:
        """Visit ``key`` at ``due_ms`` at the latest (an earlier due time stands)."""
        current = self._due.get(key)
        if current is not None and current <= due_ms:
            return
        self._due[key] = due_ms
        self._order += 1
        heapq.heappush(self._heap, (due_ms, self._order, key))
        if len(self._heap) > 2 * len(self._due) + 64:
            self._compact()

    def discard(self, key: str) -> None:
        """Forget ``key`` (its heap entry goes stale)."""
        self._due.pop(key, None)

    def pop_due(self, now_ms: int) -> list[str]:
        """The keys due at ``now_ms``, in due order, each taken off the schedule."""
        heap, due, out = self._heap, self._due, []
        while heap and heap[0][0] <= now_ms:
            when, _, key = heapq.heappop(heap)
            if due.get(key) == when:
                del due[key]
                out.append(key)
        return out

    def _compact(self) -> None:
        self._heap = [e for e in self._heap if self._due.get(e[2]) == e[0]]
        heapq.heapify(self._heap)
