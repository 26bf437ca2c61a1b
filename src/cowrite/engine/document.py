"""A replicated document: a tree of text, list, map, register and counter nodes.

The document is the unit of replication. Its top level holds *named roots* (``doc.text("body")``):
their ids are derived from (kind, name), so replicas that never talked agree on them and concurrent
first uses never conflict. Nested nodes are created by operations (``map.set_new``,
``list.insert_new``) and get the creating op's id.

Every change is an operation with an id (``ids``). Local edits apply at once; remote operations
arrive through ``merge``/``apply_ops`` in any order, duplicated or reordered: an operation is
applied once its causal dependencies are (the previous op of its replica, the elements it refers
to, its node), and is ignored if already seen. That makes merge commutative, associative and
idempotent by construction, and version vectors exact.

Conflict rules: concurrent inserts at one place are ordered by FugueMax (``sequence``); deletes win
over concurrent edits of the deleted elements; a map key and a register take the write with the
greatest hybrid-logical-clock timestamp, a delete of a key being a write of "absent" (so a delete
and a concurrent set: the later by HLC wins, deterministically); counters add.
"""

from __future__ import annotations

import builtins
import hashlib
import secrets
from array import array
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from cowrite.engine.apply import apply_ops as _apply_ops
from cowrite.engine.apply import log_delete as _log_delete
from cowrite.engine.apply import record_version
from cowrite.engine.apply import wall_clock_ms as _wall_clock_ms
from cowrite.engine.clock import HybridClock, Timestamp, check_timestamp
from cowrite.engine.counter import PNCounter
from cowrite.engine.doc_parts import (
    SYSTEM,
    Change,
    DeleteColumns,
    _del_arrays,
)
from cowrite.engine.errors import InvalidOperation, ResyncNeeded
from cowrite.engine.handles import HANDLES, Counter, Handle, List, Map, Register, Text
from cowrite.engine.ids import (
    CLIENT_BITS,
    CLIENT_MASK,
    MAX_REPLICA_ID,
    ONE,
    VersionVector,
    pack,
)
from cowrite.engine.oplog import client_ops_since as _client_ops_since
from cowrite.engine.ops import (
    DELETED,
    AddOp,
    DeleteOp,
    InsertOp,
    NewNode,
    NodeKind,
    NodeRef,
    Op,
    SetOp,
    copy_json,
)
from cowrite.engine.register import LWWRegister
from cowrite.engine.replicas import ReplicaTable
from cowrite.engine.sequence import ItemIndex, Sequence

Buffer = bytes | bytearray | memoryview
ROOT_HASH_BITS = 40


def root_id(kind: NodeKind, name: str) -> int:
    """The node id of the named root ``name`` of ``kind``: the same on every replica."""
    digest = hashlib.blake2b(f"{int(kind)}:{name}".encode(), digest_size=8).digest()
    return pack(SYSTEM, int.from_bytes(digest, "big") >> (64 - ROOT_HASH_BITS))


def _decode_ops(doc: Document, data: Buffer) -> builtins.list[Op]:
    """``decoding.decode_ops``, imported on first use (it imports this module)."""
    global _decode_ops  # noqa: PLW0603 - replaces itself: later calls skip the import
    from cowrite.engine.decoding import decode_ops

    _decode_ops = decode_ops
    return decode_ops(doc, data)


class MapState:
    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: dict[str, LWWRegister[Any]] = {}


NodeState = Sequence | MapState | LWWRegister[Any] | PNCounter


class Document(ReplicaTable):
    """A replicated document. See the module docstring for the rules.

    ``replica`` identifies this replica (unsigned 64-bit, unique per replica; random by default).
    ``now_ms`` is the wall clock used for hybrid-logical-clock timestamps and version times.
    ``version_window_ms``: consecutive local transactions within this window are listed as one
    version by ``history.versions`` (0 lists every transaction).
    ``replicas``: replica ids to number first, in this order. Op objects (``ops_since``) carry ids
    packed for one document's numbering; documents created with the same ``replicas`` list can
    exchange op objects directly (in-process replicas), others exchange bytes.

    The replica table (client indexes, ``version``, seq allocation, the version log) is inherited
    from `ReplicaTable` (``replicas.py``).
    """

    def __init__(
        self,
        replica: int | None = None,
        *,
        now_ms: Callable[[], int] = _wall_clock_ms,
        version_window_ms: int = 1000,
        replicas: Iterable[int] = (),
    ) -> None:
        if replica is None:
            replica = secrets.randbits(63) + 1
        if not isinstance(replica, int) or not 0 < replica <= MAX_REPLICA_ID:
            raise InvalidOperation("replica id must be an int in 1 .. 2**64-1")
        self.replica = replica
        self.now_ms = now_ms
        self.version_window_ms = version_window_ms
        self.clock = HybridClock(replica, self._now)
        self._replicas: builtins.list[int] = [SYSTEM]
        self._clients: dict[int, int] = {SYSTEM: 0}
        self._next: builtins.list[int] = [0]
        self.index = ItemIndex()
        self.index.ensure_client(0)
        self._nodes: dict[int, NodeState] = {}
        self._kinds: dict[int, NodeKind] = {}
        self.roots: dict[int, tuple[str, NodeKind]] = {}
        # non-insert ops per client, in seq order; deletes columnar to stay small
        self._log: builtins.list[builtins.list[SetOp | AddOp]] = [[]]
        self._del_cols: builtins.list[DeleteColumns] = [_del_arrays()]
        # delete records not decoded yet (``state``): encoded chunks, each with the seq every
        # one of its records is below, per client; they precede the records in ``_del_cols``
        self._lazy_dels: builtins.list[tuple[bytes, dict[int, int]]] = []
        # remote ops waiting for their dependencies: per client a heap of (seq, tiebreak, op)
        self._queues: dict[int, builtins.list[tuple[int, int, Op]]] = {}
        self._pending_count = 0
        self._tiebreak = 0
        self._queued: set[tuple[int, type, int]] = set()  # see _queue_key
        # version log: per transaction (client, next seq after it, wall ms at its start)
        self.vlog_client: array[int] = array("q")
        self.vlog_end: array[int] = array("q")
        self.vlog_time: array[int] = array("q")
        for r in replicas:
            self.client_index(r)
        self._me = self.client_index(replica)
        self.base: VersionVector = {}
        """Compaction base: history before it is gone (see ``compaction``)."""

    # --------------------------------------------------------------- sizes

    def map_key_count(self) -> int:
        """Keys held by all the maps (deleted ones too: a delete is a write); O(nodes)."""
        return sum(len(s.entries) for s in self._nodes.values() if type(s) is MapState)

    @property
    def node_count(self) -> int:
        """Nodes with state (roots in use and nested nodes): they are never dropped."""
        return len(self._nodes)

    # -------------------------------------------------------------- reading

    def has_nested_nodes(self) -> bool:
        """Some node is not a named root (it was created inside a list or map)."""
        return any(node not in self.roots for node in self._nodes)

    def has_node(self, node: int) -> bool:
        return node in self._nodes or node in self.roots

    def kind_of(self, node: int) -> NodeKind:
        kind = self._kinds.get(node)
        if kind is None:
            root = self.roots.get(node)
            if root is None:
                raise InvalidOperation(f"unknown node {self.format_id(node)}")
            kind = root[1]
        return kind

    def state_of(self, node: int) -> NodeState:
        state = self._nodes.get(node)
        if state is None:
            root = self.roots.get(node)
            if root is None:
                raise InvalidOperation(f"unknown node {self.format_id(node)}")
            state = self._create_node(node, root[1])
        return state

    def sequence(self, node: int) -> Sequence:
        state = self.state_of(node)
        if not isinstance(state, Sequence):
            raise InvalidOperation(f"node {self.format_id(node)} is not a text or list")
        return state

    def to_json(self) -> dict[str, Any]:
        """The document's current value as plain JSON: named roots by name."""
        return {name: self.node_json(node) for node, (name, _) in sorted(self.roots.items())}

    def node_json(self, node: int) -> Any:
        state = self.state_of(node)
        if isinstance(state, Sequence):
            value = state.value()
            if state.is_text:
                return value
            return [self._value_json(v) for v in value]
        if isinstance(state, MapState):
            return {
                k: self._value_json(reg.value)
                for k, reg in state.entries.items()
                if reg.value is not DELETED
            }
        if isinstance(state, PNCounter):
            return state.value
        return state.value

    def _value_json(self, value: Any) -> Any:
        if type(value) is NodeRef:
            return self.node_json(value.id)
        return value

    def root(self, kind: NodeKind, name: str) -> int:
        """The id of the named root ``name`` of ``kind`` (created locally on first use)."""
        if not isinstance(name, str) or not name:
            raise InvalidOperation("root names are non-empty strings")
        node = root_id(kind, name)
        if node not in self.roots:
            for other, (other_name, other_kind) in self.roots.items():
                if other_name == name and other != node:
                    raise InvalidOperation(f"root {name!r} is a {other_kind.name.lower()}")
            self.roots[node] = (name, kind)
        return node

    def text(self, name: str) -> Text:
        """The named root text ``name``."""
        return Text(self, self.root(NodeKind.TEXT, name))

    def list(self, name: str) -> List:
        return List(self, self.root(NodeKind.LIST, name))

    def map(self, name: str) -> Map:
        return Map(self, self.root(NodeKind.MAP, name))

    def register(self, name: str) -> Register:
        return Register(self, self.root(NodeKind.REGISTER, name))

    def counter(self, name: str) -> Counter:
        return Counter(self, self.root(NodeKind.COUNTER, name))

    def handle(self, node: int) -> Handle:
        """A handle on any node by id."""
        return HANDLES[self.kind_of(node)](self, node)

    # ---------------------------------------------------------- local edits

    def insert(self, node: int, pos: int, content: str | builtins.list[Any]) -> None:
        """Insert text (str) or list values at visible index ``pos`` of a text/list node."""
        seq = self._nodes.get(node)  # (typing: the node exists, skip two method calls)
        if type(seq) is not Sequence:
            seq = self.sequence(node)
        if not content:
            return
        if seq.is_text:
            if not isinstance(content, str):
                raise InvalidOperation("text nodes take str content")
            n = len(content)
            if not 0 <= pos <= seq.root.vis:
                raise InvalidOperation(f"insert at {pos} out of range for length {seq.root.vis}")
            me = self._me  # ``_take``, inlined: one call less per keystroke
            start = self._next[me]
            record_version(self, me, start + n)  # first: a failing clock leaves no seq hole
            self._next[me] = start + n
            seq.insert(pos, content, (start << CLIENT_BITS) | me)
            return
        if not isinstance(content, list):
            raise InvalidOperation("list nodes take a list of values")
        if not 0 <= pos <= seq.root.vis:
            raise InvalidOperation(f"insert at {pos} out of range for length {seq.root.vis}")
        values = [v if type(v) is NewNode else copy_json(v) for v in content]
        first = self._take(len(values))
        stored = self._materialize_list(first, values)
        seq.insert(pos, stored, first)

    def delete(self, node: int, pos: int, count: int) -> None:
        """Delete ``count`` visible elements from ``pos`` of a text/list node."""
        if count == 0:
            return
        seq = self.sequence(node)
        spans = seq.delete(pos, count)
        op_id = self._take(1)
        self._log_delete(op_id, node, spans)

    def set(self, node: int, key: str | None, value: Any) -> None:
        """Write a map key (``key``) or a register (key None); ``DELETED`` deletes a map key."""
        kind = self.kind_of(node)
        if kind is NodeKind.MAP:
            if not isinstance(key, str):
                raise InvalidOperation("map keys are strings")
        elif kind is NodeKind.REGISTER:
            if key is not None:
                raise InvalidOperation("registers have no keys")
            if type(value) is NewNode:
                raise InvalidOperation("registers hold JSON values, not nested nodes")
        else:
            raise InvalidOperation(f"cannot set a key of a {kind.name.lower()} node")
        if value is not DELETED and type(value) is not NewNode:
            value = copy_json(value)
        op = SetOp(self._take(1), node, key, value, self.clock.now())
        self._apply_set(op)
        self._log[self._me].append(op)

    def add(self, node: int, amount: int) -> None:
        """Add ``amount`` (an int, possibly negative) to a counter node."""
        if self.kind_of(node) is not NodeKind.COUNTER:
            raise InvalidOperation("add applies to counter nodes")
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise InvalidOperation("counter amounts are ints")
        if not -(1 << 63) <= amount < (1 << 63):
            raise InvalidOperation("counter amounts must fit in 64 bits")
        op = AddOp(self._take(1), node, amount)
        self._apply_add(op)
        self._log[self._me].append(op)

    # ----------------------------------------------------------- applying

    def _create_node(self, node: int, kind: NodeKind) -> NodeState:
        existing = self._nodes.get(node)
        if existing is not None:
            if self._kinds[node] is not kind:
                raise InvalidOperation("a node id reused with another kind")
            return existing
        state: NodeState
        if kind is NodeKind.TEXT or kind is NodeKind.LIST:
            state = Sequence(node, kind is NodeKind.TEXT, self.index, self.replica_of)
        elif kind is NodeKind.MAP:
            state = MapState()
        elif kind is NodeKind.REGISTER:
            state = LWWRegister()
        else:
            state = PNCounter()
        self._nodes[node] = state
        self._kinds[node] = kind
        return state

    def _materialize_list(self, first: int, values: builtins.list[Any]) -> builtins.list[Any]:
        """List content as stored: ``NewNode`` markers become nodes with the element's id."""
        out = values
        for k, v in enumerate(values):
            if type(v) is NewNode:
                if out is values:
                    out = list(values)
                elem = first + k * ONE
                self._create_node(elem, v.kind)
                out[k] = NodeRef(v.kind, elem)
        return out if out is not values else list(values)

    def _apply_set(self, op: SetOp) -> None:
        state = self.state_of(op.node)
        value = op.value
        if type(value) is NewNode:
            self._create_node(op.id, value.kind)
            value = NodeRef(value.kind, op.id)
        if isinstance(state, MapState):
            assert op.key is not None
            reg = state.entries.get(op.key)
            if reg is None:
                reg = state.entries[op.key] = LWWRegister()
            reg.set(value, op.ts)
        else:
            assert isinstance(state, LWWRegister)
            state.set(value, op.ts)

    def _apply_add(self, op: AddOp) -> None:
        state = self.state_of(op.node)
        assert isinstance(state, PNCounter)
        state.add(self._replicas[op.id & CLIENT_MASK], op.amount)

    @property
    def _dels(self) -> builtins.list[DeleteColumns]:
        """Per client, every delete record kept (decoding the lazily loaded ones first)."""
        if self._lazy_dels:
            from cowrite.engine.oplog import decode_lazy_deletes

            decode_lazy_deletes(self)
        return self._del_cols

    def _log_delete(self, op_id: int, node: int, spans: Iterable[tuple[int, int]]) -> None:
        _log_delete(self, op_id, node, spans)

    def apply_ops(self, ops: Iterable[Op], *, changes: bool = True) -> builtins.list[Change]:
        """Apply remote operations in any order; returns what changed (if ``changes``).

        Ops already seen are skipped; ops whose dependencies are missing wait (``pending_ops``)
        and are applied by a later call once those arrive. Raises InvalidOperation (and applies
        none of ``ops``) if one contradicts the document: wrong node kind, content of the wrong
        type, or too many ops waiting.
        """
        return _apply_ops(self, ops, changes=changes)

    @property
    def pending_ops(self) -> int:
        """Remote ops received but not applied yet, waiting for their dependencies."""
        return self._pending_count

    @staticmethod
    def _check_op_kind(op: Op, kind: NodeKind) -> None:
        t = type(op)
        if t is InsertOp:
            assert isinstance(op, InsertOp)
            want = str if kind is NodeKind.TEXT else list if kind is NodeKind.LIST else None
            if want is None or type(op.content) is not want or not op.content:
                raise InvalidOperation(f"insert of {type(op.content).__name__} into a {kind.name}")
        elif t is DeleteOp:
            if kind is not NodeKind.TEXT and kind is not NodeKind.LIST:
                raise InvalidOperation(f"delete in a {kind.name}")
        elif t is SetOp:
            assert isinstance(op, SetOp)
            if (kind is NodeKind.MAP and isinstance(op.key, str)) or (
                kind is NodeKind.REGISTER and op.key is None and type(op.value) is not NewNode
            ):
                pass
            else:
                raise InvalidOperation(f"set on a {kind.name}")
            check_timestamp(op.ts)
        elif kind is not NodeKind.COUNTER:
            raise InvalidOperation(f"add on a {kind.name}")

    # ------------------------------------------------------------- deltas

    def ops_since(self, version: Mapping[int, int] | None = None) -> builtins.list[Op]:
        """Every operation the holder of ``version`` lacks, per replica in seq order.

        ``version`` maps replica ids to counts of ops seen (``{}`` or None: everything).
        """
        version = version or {}
        if self.base and not all(version.get(r, 0) >= n for r, n in self.base.items()):
            raise ResyncNeeded("that version predates the compaction base: load a snapshot")
        out: builtins.list[Op] = []
        for client in range(1, len(self._replicas)):
            start = version.get(self._replicas[client], 0)
            if start < self._next[client]:
                out.extend(self._client_ops_since(client, start))
        return out

    def local_ops_since(self, seq: int) -> builtins.list[Op]:
        """This replica's own operations from its ``seq``-th on (what a local edit just made)."""
        me = self._me
        return _client_ops_since(self, me, seq) if seq < self._next[me] else []

    def _client_ops_since(self, client: int, start: int) -> builtins.list[Op]:
        """One replica's operations from seq ``start`` on, in seq order."""
        return _client_ops_since(self, client, start)

    def delta_since(self, version: Mapping[int, int] | None = None) -> bytes:
        """Encoded ops the holder of ``version`` lacks (see ``encoding`` for the format).

        Raises ResyncNeeded if ``version`` predates the compaction base: that replica must load
        ``encode_state()`` into a fresh document instead. Since the empty version (a new
        replica), the delta is the state in delta form (``encoding`` format version 3), which
        an empty document loads without integrating anything.
        """
        from cowrite.engine.encoding import encode_ops

        if not self.base and (not version or not any(version.values())):
            from cowrite.engine.state import encode_state

            return encode_state(self, as_delta=True)
        return encode_ops(self, self.ops_since(version))

    def encode_state(self) -> bytes:
        """The whole document with the history it keeps; ``load``/``merge`` read it back.

        An uncompacted document encodes as a state (``state``: items in document order, loads
        without integration, merges into any replica); a compacted one as a snapshot
        (``compaction``), loadable into an empty document only.
        """
        if self.base:
            from cowrite.engine.compaction import encode_snapshot

            return encode_snapshot(self)
        from cowrite.engine.state import encode_state

        return encode_state(self)

    def merge(self, data: Buffer, *, changes: bool = True) -> builtins.list[Change]:
        """Merge an encoded delta or state from any replica; idempotent, any order.

        Raises DecodeError for malformed bytes and InvalidOperation for ops that contradict
        the document; in both cases the document is unchanged by the bad ops.
        """
        if data[:4] == b"CWR\x02":  # an op delta: the common case, skip the dispatch below
            return _apply_ops(self, _decode_ops(self, data), changes=changes)
        from cowrite.engine.encoding import decode_ops

        if bytes(data[:3]) == b"CWS":
            if bytes(data[3:4]) != b"\x01":  # version 1 is a compacted snapshot
                from cowrite.engine.state_load import merge_state

                return merge_state(self, bytes(data), changes=changes)
            from cowrite.engine.compaction import load_snapshot

            load_snapshot(self, bytes(data))
            return []
        if bytes(data[:4]) == b"CWR\x03":
            from cowrite.engine.state_load import merge_state

            return merge_state(self, bytes(data), changes=changes)
        return self.apply_ops(decode_ops(self, data), changes=changes)

    @classmethod
    def load(
        cls, data: bytes | bytearray | memoryview, replica: int | None = None, **kwargs: Any
    ) -> Document:
        """A new replica holding the document encoded in ``data``."""
        doc = cls(replica, **kwargs)
        doc.merge(data, changes=False)
        return doc

    # ------------------------------------------------------------- checks

    def check_invariants(self) -> None:
        """Validate every sequence, the id index and the clocks; AssertionError when broken."""
        for state in self._nodes.values():
            if isinstance(state, Sequence):
                state.check_invariants()
        index = self.index
        for client in range(len(index.heads)):
            runs = list(index.runs(client))
            starts = [s for s, _ in runs]
            if starts != sorted(starts) or len(set(starts)) != len(starts):
                raise AssertionError("id index out of order")
            if index.heads[client] != [block[0] for block in index.starts[client]]:
                raise AssertionError("id index block heads are stale")
            for s, item in runs:
                if (item.id >> CLIENT_BITS) != s or (item.id & CLIENT_MASK) != client:
                    raise AssertionError("id index points at the wrong item")
                if s + len(item.content) > self._next[client] and client != SYSTEM:
                    raise AssertionError("an element beyond the version vector")
        for client, log in enumerate(self._log):
            seqs = [o.id >> CLIENT_BITS for o in log]
            if seqs != sorted(seqs):
                raise AssertionError("op log out of order")
            if seqs and seqs[-1] >= self._next[client]:
                raise AssertionError("op log beyond the version vector")


__all__ = [
    "DELETED",
    "Change",
    "Document",
    "NodeKind",
    "NodeRef",
    "NewNode",
    "Timestamp",
    "root_id",
]
