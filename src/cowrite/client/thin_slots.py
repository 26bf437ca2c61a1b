"""The vocabulary of the thin client's queues: slots, batches, outcomes (``docs/protocol.md``).

Why a module of its own: ``thin.ThinDocState`` and its helpers (``thin_merge``, ``thin_cursors``)
all speak in these terms, and keeping them apart lets each of those modules import them without
importing the others (no import cycles).

Caller's contract: a ``Slot`` names what a queued op writes; ``Batch.ops`` maps each slot to its
payload (an ``engine.ot`` index op, a value or ``DELETED``, or a counter amount), in send order;
``_wire_op`` turns one entry into the wire op that carries it. ``ErrorOutcome`` is what
``ThinDocState.on_error`` returns; the shell must act on its ``action``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from cowrite import protocol as p

SlotKind: TypeAlias = Literal["seq", "set", "add"]
Slot: TypeAlias = tuple[SlotKind, str, str | None]
"""What a queued op writes: ("seq", node, None), ("set", node, key|None), ("add", node, None)."""


class _Deleted:
    """The queued value of a map key the client deleted."""

    def __repr__(self) -> str:
        return "DELETED"


DELETED: Any = _Deleted()
_ABSENT: Any = object()

RETRY_CODES = frozenset({p.ErrorCode.RATE_LIMITED, p.ErrorCode.UNAVAILABLE})
ErrorAction: TypeAlias = Literal["ignore", "retry", "rejoin", "rejected"]


@dataclass
class Batch:
    """The batch in flight: ops by slot, in the order they are sent."""

    edit_id: str
    ops: dict[Slot, Any]
    sent: bool = False


@dataclass(frozen=True)
class ErrorOutcome:
    """What an ``error`` means for the document: ``action`` for the shell, ``changes`` to show.

    ``retry``: resend the in-flight batch after a delay (``take_batch`` returns it again);
    ``rejoin``: send ``join_message()``; ``rejected``: the in-flight batch was refused and undone
    locally (``changes`` is the undo, in local coordinates); ``ignore``: nothing to do.
    """

    action: ErrorAction
    changes: list[p.EditOp] = field(default_factory=list)


def _wire_op(slot: Slot, payload: Any) -> p.EditOp:
    kind, node, key = slot
    if kind == "seq":
        return p.SeqEdit(node=node, edit=list(payload))
    if kind == "add":
        return p.CounterAdd(node=node, amount=payload)
    if payload is DELETED:
        assert key is not None
        return p.DeleteKey(node=node, key=key)
    return p.SetKey(node=node, value=payload, key=key)
