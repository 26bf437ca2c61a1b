"""The awareness table of one Yjs document (cursors, names, selections: ephemeral state).

An awareness update is ``varUint(n) • n x (varUint(clientID) • varUint(clock) • varString(JSON))``
where the JSON ``null`` removes the client. A state replaces the stored one only with a larger
clock, or with an equal clock when it is a removal of a state we hold (y-protocols' rule).

Caller's contract: :func:`decode_update` raises only :class:`YjsProtocolError`; the table refuses
(with ``YjsProtocolError("limit", ...)``) updates that would exceed its limits and then changes
nothing; the bytes it returns are awareness updates ready to relay to every other peer of the
document. Time is passed in by the caller (``now``, seconds); nothing here reads a clock.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from cowrite.yjs.lib0 import Decoder, Encoder, YjsProtocolError

# y-protocols drops states not renewed for this long; providers renew every 15 s.
OUTDATED_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class AwarenessEntry:
    """One client's state in an update: ``state`` is JSON text, ``None`` for a removal."""

    client_id: int
    clock: int
    state: str | None


@dataclass(frozen=True, slots=True)
class AwarenessLimits:
    max_state_bytes: int = 64 * 1024
    max_entries_per_update: int = 256
    max_clients_per_owner: int = 16
    max_clients: int = 10_000


def decode_update(data: bytes, limits: AwarenessLimits | None = None) -> list[AwarenessEntry]:
    """Decode an awareness update; every state must be valid JSON within the size limit."""
    limits = limits or AwarenessLimits()
    dec = Decoder(data)
    n = dec.read_var_uint()
    if n > limits.max_entries_per_update:
        raise YjsProtocolError("limit", f"awareness update with {n} entries")
    if n * 3 > dec.remaining():
        raise YjsProtocolError("bad_length", f"awareness update claims {n} entries")
    out: list[AwarenessEntry] = []
    for _ in range(n):
        client = dec.read_var_uint()
        clock = dec.read_var_uint()
        text = dec.read_var_string(limits.max_state_bytes)
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            raise YjsProtocolError("invalid_awareness", "awareness state is not JSON") from None
        out.append(AwarenessEntry(client, clock, None if value is None else text))
    dec.expect_end("awareness update")
    return out


def claimed_name(entries: Iterable[AwarenessEntry], limit: int = 100) -> str | None:
    """The last ``user.name`` the states claim (the convention of y-prosemirror, Tiptap's
    collaboration caret, y-codemirror and y-monaco), stripped and cut to ``limit``; None if none
    does. Unverified: for naming anonymous authors only."""
    found = None
    for e in entries:
        if e.state is None or '"name"' not in e.state:
            continue
        user = json.loads(e.state).get("user") if e.state.startswith("{") else None
        name = user.get("name") if isinstance(user, dict) else None
        if isinstance(name, str) and name.strip():
            found = name.strip()[:limit]
    return found


def encode_update(entries: Iterable[AwarenessEntry]) -> bytes:
    """Encode entries as one awareness update (``None`` states are written ``null``)."""
    items = list(entries)
    enc = Encoder().write_var_uint(len(items))
    for e in items:
        enc.write_var_uint(e.client_id).write_var_uint(e.clock)
        enc.write_var_string("null" if e.state is None else e.state)
    return enc.to_bytes()


@dataclass(slots=True)
class _State:
    clock: int
    state: str | None
    owner: Hashable | None
    updated_at: float


@dataclass(frozen=True, slots=True)
class AwarenessChange:
    """What an applied update changed, and the update to relay (only the accepted entries)."""

    added: tuple[int, ...] = ()
    updated: tuple[int, ...] = ()
    removed: tuple[int, ...] = ()
    relay: bytes | None = None
    relayed: tuple[AwarenessEntry, ...] = ()
    """The entries ``relay`` encodes (decoded already: whoever reads them need not decode it)."""


@dataclass(slots=True)
class AwarenessTable:
    """clientID -> (clock, state, owning connection). ``owner`` is any hashable connection key."""

    limits: AwarenessLimits = field(default_factory=AwarenessLimits)
    _states: dict[int, _State] = field(default_factory=dict)
    _owned: dict[Hashable, set[int]] = field(default_factory=dict)
    _departed: dict[int, tuple[int, float]] = field(default_factory=dict)
    """Clients removed with their connection (or instance): id -> (clock, when). Providers echo
    every awareness change they apply (y-websocket and Hocuspocus alike), so a departed
    client's last state, or its removal, can come back from another connection after it left:
    within ``OUTDATED_TIMEOUT_S`` such an echo (its clock not above the departed one) is
    ignored, unless it comes from a connection that owns no client yet (the departed client
    itself, reconnecting with its unchanged state)."""

    def __len__(self) -> int:
        """Clients with a (non-null) state."""
        return sum(1 for s in self._states.values() if s.state is not None)

    def states(self) -> dict[int, str]:
        """clientID -> JSON state, for clients present."""
        return {c: s.state for c, s in self._states.items() if s.state is not None}

    def clock(self, client_id: int) -> int | None:
        s = self._states.get(client_id)
        return None if s is None else s.clock

    def owner(self, client_id: int) -> Hashable | None:
        s = self._states.get(client_id)
        return None if s is None else s.owner

    def ignores(self, data: bytes) -> bool:
        """True when the awareness update ``data`` is one entry that ``apply`` would ignore
        (its clock is not above the state held for its client, and it does not remove that
        state), read without decoding its JSON: what every provider sends back for each
        renewal of another client it applies (y-websocket and Hocuspocus relay every change,
        not only their own), so most awareness messages of a busy document. False for
        anything else, garbage included (``decode_update`` then reads it)."""
        dec = Decoder(data)
        try:
            if dec.read_var_uint() != 1:
                return False
            cur = self._states.get(dec.read_var_uint())
            clock = dec.read_var_uint()
            if cur is None:
                return False
            text = dec.read_var_string(self.limits.max_state_bytes)
        except YjsProtocolError:
            return False
        return dec.at_end() and not _supersedes(cur, clock, removes=text.strip() == "null")

    def apply(
        self, entries: list[AwarenessEntry], owner: Hashable | None, now: float = 0.0
    ) -> AwarenessChange:
        """Apply an update from ``owner`` (``None``: another instance, owns nothing here).

        A client id's owner becomes the last connection that set its state (a browser that
        reconnects keeps its Yjs clientID). Refuses the whole update, changing nothing, when
        ``owner`` would own more than ``max_clients_per_owner`` ids or the table would exceed
        ``max_clients``.
        """
        accepted: list[AwarenessEntry] = []
        fresh_owner = owner is not None and not self._owned.get(owner)
        for e in entries:
            cur = self._states.get(e.client_id)
            gone = self._departed.get(e.client_id)
            if cur is None and gone is not None and e.clock <= gone[0]:
                if e.state is None or not fresh_owner:
                    continue  # an echo of a departed client (its state, or its removal)
                del self._departed[e.client_id]
                accepted.append(e)
            elif cur is None:
                # As in y-protocols, a null for an unknown client still records its clock (so
                # that an older state arriving later is refused); there is nothing to relay.
                if e.state is not None or len(self._states) < self.limits.max_clients:
                    accepted.append(e)
            elif _supersedes(cur, e.clock, removes=e.state is None):
                accepted.append(e)
        self._check_limits(accepted, owner)
        added: list[int] = []
        updated: list[int] = []
        removed: list[int] = []
        for e in accepted:
            cur = self._states.get(e.client_id)
            if e.state is None:
                if cur is not None and cur.state is not None:
                    removed.append(e.client_id)
                self._disown(e.client_id)
                # Keep the clock so an older state cannot resurrect the client.
                self._states[e.client_id] = _State(e.clock, None, None, now)
                continue
            if cur is None or cur.state is None:
                added.append(e.client_id)
            else:
                updated.append(e.client_id)
            self._disown(e.client_id)
            self._states[e.client_id] = _State(e.clock, e.state, owner, now)
            if owner is not None:
                self._owned.setdefault(owner, set()).add(e.client_id)
        relayed = [e for e in accepted if e.state is not None or e.client_id in removed]
        relay = encode_update(relayed) if relayed else None
        return AwarenessChange(tuple(added), tuple(updated), tuple(removed), relay, tuple(relayed))

    def _check_limits(self, accepted: list[AwarenessEntry], owner: Hashable | None) -> None:
        new_ids = {e.client_id for e in accepted if e.state is not None}
        if owner is not None:
            owned = self._owned.get(owner, set())
            if len(owned | new_ids) > self.limits.max_clients_per_owner:
                raise YjsProtocolError(
                    "limit", f"more than {self.limits.max_clients_per_owner} awareness clients"
                )
        fresh = sum(1 for c in new_ids if c not in self._states)
        if fresh and len(self._states) + fresh > self.limits.max_clients:
            self._forget_removed()
            if len(self._states) + fresh > self.limits.max_clients:
                raise YjsProtocolError("limit", "awareness table is full")

    def _disown(self, client_id: int) -> None:
        cur = self._states.get(client_id)
        if cur is not None and cur.owner is not None:
            owned = self._owned.get(cur.owner)
            if owned is not None:
                owned.discard(client_id)
                if not owned:
                    del self._owned[cur.owner]

    def _forget_removed(self) -> None:
        for c in [c for c, s in self._states.items() if s.state is None]:
            del self._states[c]

    def remove_owner(self, owner: Hashable, now: float = 0.0) -> bytes | None:
        """Remove every state owned by ``owner`` (its connection closed or left the document).

        Returns the removal update to relay, or ``None``. The clocks are *not* bumped: like the
        y-websocket server, removals carry the client's current clock, which peers accept (equal
        clock + null removes a held state); a bumped clock would make them refuse the client's
        unchanged state when it reconnects. The ids are forgotten here, so that reconnecting
        state is accepted at once.
        """
        ids = sorted(self._owned.pop(owner, set()))
        entries = []
        for c in ids:
            cur = self._states.pop(c, None)
            if cur is not None and cur.state is not None:
                entries.append(AwarenessEntry(c, cur.clock, None))
                self._depart(c, cur.clock, now)
        return encode_update(entries) if entries else None

    def _depart(self, client_id: int, clock: int, now: float) -> None:
        if len(self._departed) >= self.limits.max_clients:  # bounded: the oldest go first
            del self._departed[next(iter(self._departed))]
        self._departed[client_id] = (clock, now)

    def remove_clients(self, client_ids: Iterable[int], now: float = 0.0) -> bytes | None:
        """Remove the states of ``client_ids`` (another instance, their home, went away), with
        their current clocks as ``remove_owner`` does; returns the removal update, or None."""
        entries = []
        for c in sorted(set(client_ids)):
            cur = self._states.get(c)
            if cur is not None and cur.state is not None:
                entries.append(AwarenessEntry(c, cur.clock, None))
                self._disown(c)
                del self._states[c]
                self._depart(c, cur.clock, now)
        return encode_update(entries) if entries else None

    def expire(self, now: float, timeout: float = OUTDATED_TIMEOUT_S) -> bytes | None:
        """Remove states not renewed for ``timeout`` seconds; returns the removal update."""
        entries = []
        for c, s in list(self._states.items()):
            if s.state is not None and now - s.updated_at >= timeout:
                entries.append(AwarenessEntry(c, s.clock, None))
                self._disown(c)
                s.state, s.owner = None, None
        self._forget_removed_older(now, timeout)
        return encode_update(entries) if entries else None

    def expires_at(self, timeout: float = OUTDATED_TIMEOUT_S) -> float | None:
        """When ``expire`` next has something to do (a state to time out, a removal to
        forget); None: nothing until the next change."""
        times = [s.updated_at for s in self._states.values()]
        times.extend(when for _, when in self._departed.values())
        return min(times) + timeout if times else None

    def _forget_removed_older(self, now: float, timeout: float) -> None:
        for c in [c for c, (_, when) in self._departed.items() if now - when >= timeout]:
            del self._departed[c]
        for c in [
            c for c, s in self._states.items() if s.state is None and now - s.updated_at >= timeout
        ]:
            del self._states[c]

    def encode_full(self) -> bytes | None:
        """Every present state (the answer to a query, or the greeting of a new connection)."""
        entries = [AwarenessEntry(c, s.clock, s.state) for c, s in self._states.items() if s.state]
        return encode_update(entries) if entries else None

    def encode_clients(self, client_ids: Iterable[int]) -> bytes:
        """The known entries of ``client_ids`` (removed ones as ``null``, unknown ones skipped)."""
        entries = []
        for c in client_ids:
            s = self._states.get(c)
            if s is not None:
                entries.append(AwarenessEntry(c, s.clock, s.state))
        return encode_update(entries)


def _supersedes(cur: _State, clock: int, *, removes: bool) -> bool:
    """Whether an entry with ``clock`` (removing the client's state when ``removes``) replaces
    ``cur``, as y-protocols decides: a newer clock, or a removal at the same clock."""
    return cur.clock < clock or (cur.clock == clock and removes and cur.state is not None)
