"""A native connection's budgets (``Connection``): which messages it is over its rates for.

One budget for everything that is written to the store (edits, replica deltas, chat, reauth:
``edits_per_second``), one for joins and one for presence updates. An edit of n ops costs
1 + n // 10 (each op is work and maybe memory), a replica delta 1 + (base64 bytes) // 10,000.
A message over its budget is refused (``rate_limited``) and the connection carries on: one
client's flood slows nobody else. (The Yjs dialects cannot refuse: ``yjs_budget`` paces them.)
"""

from __future__ import annotations

from collections.abc import Callable

from cowrite import protocol as p
from cowrite.server.config import Settings
from cowrite.server.ratelimit import TokenBucket

WRITES = p.Edit | p.Sync | p.ChatSend | p.ChatEdit | p.ChatDelete | p.Reauth
"""The messages charged to the edit budget."""


class Budgets:
    """The token buckets of one connection."""

    __slots__ = ("_edits", "_joins", "_presence")

    def __init__(self, settings: Settings, clock: Callable[[], float]) -> None:
        self._edits = TokenBucket(settings.edits_per_second, settings.edit_burst, clock)
        self._presence = TokenBucket(settings.presence_per_second, settings.presence_burst, clock)
        self._joins = TokenBucket(settings.joins_per_second, settings.join_burst, clock)

    def refusal(self, msg: p.ClientMessage) -> str | None:
        """Charge ``msg`` to its budget: why it is refused, or None (admitted)."""
        if isinstance(msg, WRITES):
            cost = 1
            if isinstance(msg, p.Edit):
                cost += len(msg.ops) // 10
            elif isinstance(msg, p.Sync):
                cost += len(msg.delta) // 10_000
            if not self._edits.take(cost):
                return "too many edits: slow down"
        elif isinstance(msg, p.Join):
            if not self._joins.take():
                return "too many joins: slow down"
        elif isinstance(msg, p.SetPresence) and not self._presence.take():
            return "too many presence updates"
        return None

    def edit(self) -> bool:
        """Charge one edit's worth of work that is no edit (a divergence report's log line):
        False when the budget is spent."""
        return self._edits.take(1.0)
