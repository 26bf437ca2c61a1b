"""Per-address connection limits: new WebSocket connections per second, and open at once.

One address opening connections in a loop (a script gone wrong, or an attack) costs the server a
handshake, a task and memory each; the per-connection budgets (edits, presence, joins) do not see
it. ``IpThrottle.admit`` is asked before a connection is served; a refused one is closed 1013
("try again later") with the reason. Loopback addresses are exempt unless configured otherwise
(tests, local tools and a reverse proxy on the same machine connect from there: behind a proxy,
run uvicorn with ``--forwarded-allow-ips`` so that the client's address is the one counted).

Memory is bounded: at most ``max_addresses`` addresses are tracked; the least recently seen one
without open connections is forgotten first.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from cowrite.server.ratelimit import TokenBucket


@dataclass
class _Address:
    bucket: TokenBucket
    open: int = 0


class IpThrottle:
    """Admission of connections by client address (see the module docstring)."""

    def __init__(
        self,
        per_second: float,
        burst: int,
        max_open: int,
        *,
        loopback: bool = False,
        max_addresses: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``per_second``/``burst``: new connections; ``max_open``: open at once (0: no
        limit); ``loopback``: limit loopback addresses too."""
        self.per_second = per_second
        self.burst = burst
        self.max_open = max_open
        self.loopback = loopback
        self.max_addresses = max_addresses
        self._clock = clock
        self._addresses: OrderedDict[str, _Address] = OrderedDict()

    def admit(self, address: str | None) -> str | None:
        """Count a new connection from ``address``; None if admitted (call ``release`` when it
        closes), else the reason it is refused."""
        if address is None or self._exempt(address):
            return None
        entry = self._addresses.get(address)
        if entry is None:
            entry = _Address(TokenBucket(self.per_second, self.burst, self._clock))
            self._addresses[address] = entry
            self._forget_some()
        else:
            self._addresses.move_to_end(address)
        if self.max_open and entry.open >= self.max_open:
            return f"more than {self.max_open} open connections from {address}"
        if not entry.bucket.take():
            return f"more than {self.per_second:g} new connections a second from {address}"
        entry.open += 1
        return None

    def release(self, address: str | None) -> None:
        """A connection ``admit`` let in has closed."""
        if address is None:
            return
        entry = self._addresses.get(address)
        if entry is not None and entry.open > 0:
            entry.open -= 1

    def tracked(self) -> int:
        return len(self._addresses)

    def _exempt(self, address: str) -> bool:
        if self.loopback:
            return False
        try:
            return ipaddress.ip_address(address).is_loopback
        except ValueError:
            return False  # not an IP (a unix socket path...): counted by name

    def _forget_some(self) -> None:
        while len(self._addresses) > self.max_addresses:
            for address, entry in self._addresses.items():
                if entry.open == 0:
                    del self._addresses[address]
                    break
            else:
                return  # every tracked address has open connections: keep them all
