"""Small pieces shared by ``document`` and the modules split out of it (``apply``, ``oplog``,
``replicas``).

They live apart so that those modules need ``document`` for type annotations only.
"""

from __future__ import annotations

import builtins
from array import array
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from cowrite.engine.ids import ONE
from cowrite.engine.ops import InsertOp, NodeKind

DeleteColumns: TypeAlias = "tuple[array[int], array[int], array[int], array[int]]"
"""Per client: delete op seq, node, first target id, count (one row per span)."""

SYSTEM: Final = 0
"""Client index (and replica id) 0 is reserved for named roots; no replica may use it."""

MAX_PENDING_OPS = 1_000_000


@dataclass(frozen=True, slots=True)
class Change:
    """What one applied remote operation did, for observers (editors, thin clients, SDK events).

    For text and list nodes ``delta`` is an index edit in the ``ot`` format (retain n, insert,
    delete -n) against the node as it was just before; for map/register/counter nodes ``key`` names
    the changed key (None for register/counter) and ``delta`` is empty, except for a counter:
    ``[amount]`` added.
    """

    node: int
    kind: NodeKind
    delta: builtins.list[Any]
    key: str | None = None


def _del_arrays() -> DeleteColumns:
    return array("q"), array("q"), array("q"), array("q")


def _insert_suffix(op: InsertOp, k: int) -> InsertOp:
    """The run ``op`` without its first ``k`` elements (placed right after the k-th)."""
    return InsertOp(op.id + k * ONE, op.node, op.id + (k - 1) * ONE, op.right, op.content[k:])
