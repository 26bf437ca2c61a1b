"""Live permissions: an administrator downgrades or revokes a user's rights, on every instance.

``restrict(user, {"*": ["read"]})`` (REST ``POST /api/admin/permissions``, or
``Cowrite.restrict_user`` in-process) sets a *ceiling* on that user's rights, by document or
``"*"``: whatever their token grants, they get at most that (``[]``: nothing). One token can be
restricted alone too (a leaked one): its ceiling is keyed by ``auth.token_key(token)``, and a
connection gets the ceilings of its user and of its token, both. The ceiling is
published on the bus (channel ``permissions``), so every instance applies it at once to the
user's open connections: a native connection gets a ``rights`` message per document whose rights
changed and, having lost ``read``, leaves it; a Yjs connection whose rights shrank is closed for
that document (4403 ``permissions changed``: its provider reconnects with what is left). Later
connections, joins and REST calls of the user get the ceiling too. ``None`` lifts it.

Ceilings live in memory: an instance started later, or restarted, does not know them (tokens
should be short-lived; for a lasting revocation, refuse the user in an ``on_authenticate`` hook).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Protocol

import msgspec

from cowrite.adapters.bus import Bus, BusClosed, Subscription
from cowrite.server.auth import ALL_RIGHTS, Identity

log = logging.getLogger("cowrite.permissions")

CHANNEL = "permissions"

Ceiling = dict[str, frozenset[str]]


class PermissionNote(msgspec.Struct, tag="ceiling", array_like=True):
    user: str
    docs: dict[str, list[str]] | None
    """Document (or ``"*"``) -> the most rights the user keeps there; None lifts the ceiling."""


_decoder = msgspec.msgpack.Decoder(PermissionNote)
_encoder = msgspec.msgpack.Encoder()


class Restrictable(Protocol):
    """A connection that can be restricted (``Connection``, ``YjsConnection``)."""

    def restrict(self, user_id: str, ceiling: Ceiling | None) -> None: ...


def ceiling_of(docs: dict[str, list[str]]) -> Ceiling:
    """Validated rights lists; ValueError names an unknown right."""
    out: Ceiling = {}
    for doc, rights in docs.items():
        unknown = set(rights) - ALL_RIGHTS
        if unknown:
            raise ValueError(f"unknown rights for {doc!r}: {', '.join(sorted(unknown))}")
        out[doc] = frozenset(rights)
    return out


def _both(a: Ceiling | None, b: Ceiling | None) -> Ceiling | None:
    """The ceiling that is under both."""
    if a is None or b is None:
        return a if b is None else b
    everything = frozenset(ALL_RIGHTS)
    out: Ceiling = {}
    for doc in set(a) | set(b):
        out[doc] = a.get(doc, a.get("*", everything)) & b.get(doc, b.get("*", everything))
    return out


class Permissions:
    """The ceilings this instance knows, and the connections to apply them to."""

    def __init__(self, bus: Bus | None) -> None:
        self.bus = bus
        self.ceilings: dict[str, Ceiling] = {}
        self.connections: set[Restrictable] = set()
        self._sub: Subscription | None = None

    async def start(self) -> None:
        if self.bus is not None:
            self._sub = await self.bus.subscribe(CHANNEL, self._on_message)

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.close()
            self._sub = None

    def limit(self, identity: Identity) -> Identity:
        """``identity`` with its user's and its token's ceilings (both apply)."""
        ceiling = _both(
            self.ceilings.get(identity.user_id),
            self.ceilings.get(identity.token_key) if identity.token_key else None,
        )
        if ceiling is None and identity.ceiling is None:
            return identity
        return replace(identity, ceiling=ceiling)

    async def restrict(self, user: str, docs: dict[str, list[str]] | None) -> None:
        """Set (or, with None, lift) ``user``'s ceiling here and on every instance. Raises
        ValueError for unknown rights."""
        if docs is not None:
            ceiling_of(docs)
        note = PermissionNote(user, docs)
        self._apply(note)  # here at once, whatever the bus does
        if self.bus is not None:
            try:
                await self.bus.publish(CHANNEL, _encoder.encode(note))
            except BusClosed:
                log.error("bus down: the restriction of %s is applied on this instance only", user)
                raise

    async def _on_message(self, channel: str, data: bytes) -> None:
        try:
            note = _decoder.decode(data)
            self._apply(note)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
            log.warning("undecodable permissions message ignored")

    def _apply(self, note: PermissionNote) -> None:
        ceiling = None if note.docs is None else ceiling_of(note.docs)
        if self.ceilings.get(note.user) == ceiling and ceiling is not None:
            return  # our own message coming back
        if ceiling is None:
            self.ceilings.pop(note.user, None)
        else:
            self.ceilings[note.user] = ceiling
        log.info("rights of %s restricted: %s", note.user, note.docs)
        for conn in list(self.connections):
            try:
                conn.restrict(note.user, ceiling)
            except Exception:
                log.exception("restricting a connection failed")
