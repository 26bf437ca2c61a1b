"""What a session's ``"change"`` listeners receive: ``ChangeEvent``.

Why a module of its own: the event is a plain frozen value shared by the session (which emits it)
and by callers (who read it); it carries no session behaviour.

Caller's contract: ``ChangeEvent.op`` is a wire op already in local coordinates (apply it to what
you display as is); ``origin`` says why it happened (see the class docstring).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from cowrite import protocol as p

Origin: TypeAlias = Literal["remote", "snapshot", "ack", "undo"]


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One change to the local view not made by a local edit, as a wire op in local coordinates.

    ``origin``: ``"remote"`` (another client's edit), ``"snapshot"`` (the server's state loaded on
    (re)join, merged with ours), ``"ack"`` (the server's answer to our batch: ids of nested nodes
    it created, or the undo of a batch the server had already applied before a snapshot) or
    ``"undo"`` (a local batch the server refused, taken back).
    """

    doc: str
    op: p.EditOp
    origin: Origin

    @property
    def node(self) -> str:
        return self.op.node

    @property
    def delta(self) -> list[Any]:
        """The index op of a text/list change (``engine.ot`` format), ``[]`` otherwise."""
        return list(self.op.edit) if isinstance(self.op, p.SeqEdit) else []
