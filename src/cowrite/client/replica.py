"""The replica client of one document, sans I/O: a full CRDT copy that works offline.

The client holds an engine ``Document``. Local edits change it at once; ``take_sync`` hands out
a ``sync`` carrying the operations the server may lack (``delta_since`` the best known lower bound
of the server's version vector), one at a time; ``remote_sync`` deltas and the ``joined`` delta
are merged (``Document.merge`` is idempotent, so duplicates and replays are harmless). Offline,
edits accumulate in the document; on reconnect the client joins with its version vector, the
server answers with what the client lacks and its own vector, and the client sends what the server
lacks. Nothing is lost or applied twice because every operation carries its id.

``server_known`` only ever under-approximates what the server holds: it comes from ``joined``,
grows when an ack confirms a sync, and when a merged server delta reveals that the server holds
some replica's operations up to a count (the server applies each replica's operations in order,
so it holds every earlier one too).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from typing import Any

from cowrite import protocol as p
from cowrite.client.values import Kind, empty_value, kind_of_node_id, parse_kind
from cowrite.engine import (
    DELETED,
    Change,
    Document,
    InvalidOperation,
    NewNode,
    NodeKind,
    NodeRef,
    VersionVector,
    apply_index_edit,
    map_entries,
    map_value,
    ot,
)
from cowrite.rooms.wire import node_from_wire, node_to_wire

_KINDS: dict[str, NodeKind] = {k.name.lower(): k for k in NodeKind}


class ReplicaDocState:
    """One document held as a full CRDT replica. Inputs ``local_*``/``on_*``, output ``take_sync``.

    ``document`` may be given to resume from a persisted replica (``Document.load``); it must keep
    its replica id across sessions (a fresh random one is fine for a fresh document).
    """

    def __init__(
        self,
        doc: str,
        client_id: str,
        document: Document | None = None,
        *,
        edit_id_prefix: str = "",
    ) -> None:
        self.doc = doc
        self.client_id = client_id
        self.document = document if document is not None else Document()
        self.server_known: VersionVector = {}
        self.version: int | None = None
        """The server's edit version as last heard (for cursors and diagnostics only)."""
        self.rights: list[str] = []
        self.joined = False
        self.rejoin_needed = False
        self.inflight: tuple[str, VersionVector] | None = None
        self._sent: VersionVector = {}
        self._prefix = edit_id_prefix or secrets.token_hex(6)
        self._edits = 0

    # ------------------------------------------------------------- reading

    @property
    def synced(self) -> bool:
        """Every operation of this replica is acknowledged by the server."""
        return self.inflight is None and not _ahead(self.document.version, self.server_known)

    def kind(self, node: str) -> Kind | None:
        kind = kind_of_node_id(node)
        if kind is not None:
            return kind
        try:
            return parse_kind(self.document.kind_of(self._node(node)).name.lower())
        except InvalidOperation:
            return None

    def value(self, node: str, kind: Kind | None = None) -> Any:
        """The current value of ``node`` in the wire form (``{"$node": id}`` for nested nodes)."""
        known = self.kind(node) or kind
        try:
            nid = self._node(node, create=False)
        except InvalidOperation:
            return empty_value(known) if known is not None else None
        doc = self.document
        state_kind = doc.kind_of(nid)
        if state_kind is NodeKind.TEXT:
            return doc.node_json(nid)
        if state_kind is NodeKind.LIST:
            return [self._wire_value(v) for v in doc.sequence(nid).value()]
        if state_kind is NodeKind.MAP:
            return {k: self._wire_value(v) for k, v in map_entries(doc, nid).items()}
        return doc.node_json(nid)

    def node_id(self, node: int) -> str:
        """The wire id of an engine node id."""
        return node_to_wire(self.document, node)

    # --------------------------------------------------------- local edits

    def local_edit(self, node: str, op: ot.Op) -> None:
        """Apply an index op to a text or list node (as CRDT inserts and deletes)."""
        nid = self._node(node)
        op = [_list_values(c) if isinstance(c, list) else c for c in ot.normalize(op)]
        apply_index_edit(self.document, nid, op)

    def local_set(self, node: str, key: str | None, value: Any) -> None:
        self.document.set(self._node(node), key, _from_wire(value))

    def local_delete(self, node: str, key: str) -> None:
        self.document.set(self._node(node), key, DELETED)

    def local_add(self, node: str, amount: int) -> None:
        self.document.add(self._node(node), amount)

    # ------------------------------------------------------------- sending

    def join_message(self, *, create: bool = False) -> p.Join:
        self.joined = False
        self.rejoin_needed = False
        self.inflight = None
        self._sent = {}
        state = {str(r): n for r, n in self.document.version.items()}
        return p.Join(doc=self.doc, mode="replica", state=state, create=create)

    def take_sync(self) -> p.Sync | None:
        """The ``sync`` to send now (ops the server may lack), or None."""
        if not self.joined or self.inflight is not None:
            return None
        basis = _vv_max(self.server_known, self._sent)
        have = self.document.version
        if not _ahead(have, basis):
            return None
        delta = self.document.delta_since(basis)
        self._edits += 1
        edit_id = f"{self._prefix}-{self._edits}"
        self.inflight = (edit_id, dict(have))
        self._sent = dict(have)
        return p.Sync(doc=self.doc, delta=base64.b64encode(delta).decode(), edit_id=edit_id)

    # ------------------------------------------------------------ receiving

    def on_joined(self, msg: p.Joined) -> list[Change]:
        self.joined = True
        self.rejoin_needed = False
        self.rights = list(msg.rights)
        self.version = msg.version
        changes = self._merge(msg.delta) if msg.delta else []
        if msg.state is not None:
            self.server_known = {int(k): v for k, v in msg.state.items()}
        return changes

    def on_remote_sync(self, msg: p.RemoteSync) -> list[Change]:
        if self.version is None or msg.version > self.version:
            self.version = msg.version
        return self._merge(msg.delta)

    def on_ack(self, msg: p.Ack) -> None:
        if self.inflight is not None and msg.edit_id == self.inflight[0]:
            self.server_known = _vv_max(self.server_known, self.inflight[1])
            self.inflight = None
            if self.version is None or msg.version > self.version:
                self.version = msg.version

    def on_error(self, msg: p.Error) -> str:
        """``retry``, ``rejoin``, ``rejected`` or ``ignore`` (as ``thin.ErrorOutcome.action``)."""
        if self.inflight is not None and msg.edit_id == self.inflight[0]:
            self.inflight = None
            if msg.code in (p.ErrorCode.RATE_LIMITED, p.ErrorCode.UNAVAILABLE):
                self._sent = {}
                return "retry"
            return "rejected"  # the same delta would be refused again: keep it until a rejoin
        if msg.code is p.ErrorCode.NOT_JOINED:
            self.request_rejoin()
            return "rejoin"
        return "ignore"

    def on_resync(self) -> None:
        self.request_rejoin()

    def on_disconnect(self) -> None:
        self.joined = False
        self.inflight = None
        self._sent = {}

    def request_rejoin(self, *, snapshot: bool = False) -> None:
        self.rejoin_needed = True
        self.joined = False

    # ------------------------------------------------------------ internals

    def _merge(self, delta: str) -> list[Change]:
        doc = self.document
        before = doc.version
        changes = doc.merge(base64.b64decode(delta))
        for replica, count in doc.version.items():
            if count > before.get(replica, 0) and count > self.server_known.get(replica, 0):
                self.server_known[replica] = count
        return changes

    def _node(self, node: str, *, create: bool = True) -> int:
        return node_from_wire(self.document, node, create_roots=create)

    def _wire_value(self, value: Any) -> Any:
        if type(value) is NodeRef:
            return {"$node": self.node_id(value.id)}
        return value

    def change_to_wire(self, change: Change) -> p.EditOp:
        """An engine change event as the wire op a thin client would have seen."""
        node = self.node_id(change.node)
        kind = change.kind
        if kind is NodeKind.TEXT or kind is NodeKind.LIST:
            edit = [
                [self._wire_value(v) for v in c] if isinstance(c, list) else c for c in change.delta
            ]
            return p.SeqEdit(node=node, edit=edit)
        if kind is NodeKind.COUNTER:
            return p.CounterAdd(node=node, amount=change.delta[0] if change.delta else 0)
        if kind is NodeKind.REGISTER:
            return p.SetKey(node=node, value=self.document.node_json(change.node))
        assert change.key is not None
        value = map_value(self.document, change.node, change.key)
        if value is DELETED:
            return p.DeleteKey(node=node, key=change.key)
        return p.SetKey(node=node, key=change.key, value=self._wire_value(value))


def _from_wire(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1 and "$new" in value:
        kind = _KINDS.get(value["$new"]) if isinstance(value["$new"], str) else None
        if kind is None:
            raise InvalidOperation(f"unknown node kind {value['$new']!r}")
        return NewNode(kind)
    return value


def _list_values(values: list[Any]) -> list[Any]:
    return [_from_wire(v) for v in values]


def _ahead(a: Mapping[int, int], b: Mapping[int, int]) -> bool:
    """True when ``a`` holds an operation ``b`` lacks."""
    return any(n > b.get(r, 0) for r, n in a.items())


def _vv_max(a: Mapping[int, int], b: Mapping[int, int]) -> VersionVector:
    out = dict(a)
    for r, n in b.items():
        if n > out.get(r, 0):
            out[r] = n
    return out
