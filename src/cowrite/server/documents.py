"""The server-side document API: edit a document in-process, as one durable room input.

::

    async with app.state.cowrite.document("notes", user="importer") as doc:
        doc.text("body").insert(0, "Hello ")
        doc.map("meta").set("source", "import")
        doc.counter("views").add(1)
    # here the edits are durable, broadcast to every member, and ``doc.version`` is theirs

The handles mirror the SDK's (``doc.text(name)``, ``list``, ``map``, ``register``, ``counter``;
positions in code points) over named roots. Reads inside the block see the document as it was
when the block began plus the block's own edits. When the block ends without an exception the
edits are applied as *one* server edit based on that version (rebased over whatever members did
meanwhile, like a thin client's), stored, then broadcast (``remote`` from client ``"server"``,
with the given user as author); an exception in the block discards them. CRDT documents only
(a Yjs document raises RoomError ``bad_message``).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from cowrite import protocol as p
from cowrite.engine import InvalidOperation, ot
from cowrite.rooms.room import Outcome, Room, RoomError
from cowrite.server.hooks import Author
from cowrite.server.pipeline import Durable

if TYPE_CHECKING:
    from cowrite.server.hub import Hub, LoadedRoom

log = logging.getLogger("cowrite.hub")

SERVER_CLIENT_ID = "server"
DURABLE_TIMEOUT_S = 30.0

_DEFAULTS: dict[str, Any] = {"text": "", "list": [], "map": {}, "register": None, "counter": 0}


class ServerDocument:
    """A document's named roots as of ``base_version``, plus the edits made through it."""

    def __init__(self, document: str, room: Room) -> None:
        self.document = document
        self.base_version = room.version
        self.version: int | None = None
        """The room version of the edits once applied (None before, or without edits)."""
        self._values: dict[str, Any] = {}
        doc = room.doc
        for node, (name, kind) in doc.roots.items():
            self._values[f"{kind.name.lower()}:{name}"] = doc.node_json(node)
        self._seq: dict[str, ot.Op] = {}
        """Composed index edit per sequence node, in order of first edit."""
        self._other: list[p.EditOp] = []
        self._added: dict[str, int] = {}

    # --- handles ----------------------------------------------------------------------------

    def text(self, name: str) -> TextHandle:
        return TextHandle(self, _node("text", name))

    def list(self, name: str) -> ListHandle:
        return ListHandle(self, _node("list", name))

    def map(self, name: str) -> MapHandle:
        return MapHandle(self, _node("map", name))

    def register(self, name: str) -> RegisterHandle:
        return RegisterHandle(self, _node("register", name))

    def counter(self, name: str) -> CounterHandle:
        return CounterHandle(self, _node("counter", name))

    def to_json(self) -> dict[str, Any]:
        """The named roots' values (with this block's edits), by name."""
        return {node.partition(":")[2]: v for node, v in sorted(self._values.items())}

    # --- the backend of the handles ---------------------------------------------------------

    def value(self, node: str) -> Any:
        return self._values.get(node, _DEFAULTS[node.partition(":")[0]])

    def seq_edit(self, node: str, op: ot.Op) -> None:
        before = self.value(node)
        after = ot.apply(before, op)  # raises InvalidOperation when it does not fit
        self._values[node] = after
        prior = self._seq.get(node)
        self._seq[node] = op if prior is None else ot.compose(prior, op)

    def set_key(self, node: str, key: str | None, value: Any) -> None:
        if key is None:
            self._values[node] = value
        else:
            current = dict(self.value(node))
            current[key] = value
            self._values[node] = current
        self._other.append(p.SetKey(node=node, key=key, value=value))

    def delete_key(self, node: str, key: str) -> None:
        current = dict(self.value(node))
        current.pop(key, None)
        self._values[node] = current
        self._other.append(p.DeleteKey(node=node, key=key))

    def add(self, node: str, amount: int) -> None:
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise InvalidOperation("counters add integers")
        self._values[node] = self.value(node) + amount
        self._added[node] = self._added.get(node, 0) + amount

    @property
    def ops(self) -> builtins.list[p.EditOp]:
        """The block's edits as one batch of wire ops (one index edit per sequence node)."""
        out: builtins.list[p.EditOp] = [
            p.SeqEdit(node=node, edit=list(op)) for node, op in self._seq.items() if op
        ]
        out.extend(self._other)
        out.extend(p.CounterAdd(node=n, amount=a) for n, a in self._added.items() if a)
        return out


def _node(kind: str, name: str) -> str:
    if not isinstance(name, str) or not 0 < len(name) <= 100:
        raise InvalidOperation("a node name has 1-100 characters")
    return f"{kind}:{name}"


class _Handle:
    __slots__ = ("_doc", "node")

    def __init__(self, doc: ServerDocument, node: str) -> None:
        self._doc = doc
        self.node = node

    def to_json(self) -> Any:
        return self._doc.value(self.node)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.node!r})"


class TextHandle(_Handle):
    __slots__ = ()

    def insert(self, pos: int, text: str) -> None:
        self.splice(pos, 0, text)

    def delete(self, pos: int, count: int) -> None:
        self.splice(pos, count, "")

    def splice(self, pos: int, delete: int, text: str) -> None:
        if not isinstance(text, str):
            raise InvalidOperation("text nodes take str content")
        self._doc.seq_edit(self.node, ot.from_splice(pos, delete, text))

    def apply(self, op: ot.Op) -> None:
        """An index op (``cowrite.engine.ot`` format: retain n, delete -n, insert str)."""
        self._doc.seq_edit(self.node, op)

    def __str__(self) -> str:
        value = self._doc.value(self.node)
        return value if isinstance(value, str) else ""

    def __len__(self) -> int:
        return len(str(self))


class ListHandle(_Handle):
    __slots__ = ()

    def insert(self, pos: int, values: list[Any]) -> None:
        if not isinstance(values, list):
            raise InvalidOperation("insert takes a list of values")
        self._doc.seq_edit(self.node, ot.from_splice(pos, 0, list(values)))

    def append(self, value: Any) -> None:
        self.insert(len(self), [value])

    def delete(self, pos: int, count: int = 1) -> None:
        self._doc.seq_edit(self.node, ot.from_splice(pos, count, []))

    def to_list(self) -> builtins.list[Any]:
        value = self._doc.value(self.node)
        return value if isinstance(value, list) else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.to_list())

    def __len__(self) -> int:
        return len(self.to_list())


class MapHandle(_Handle):
    __slots__ = ()

    def set(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise InvalidOperation("map keys are strings")
        self._doc.set_key(self.node, key, value)

    def delete(self, key: str) -> None:
        self._doc.delete_key(self.node, key)

    def to_dict(self) -> dict[str, Any]:
        value = self._doc.value(self.node)
        return value if isinstance(value, dict) else {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_dict().get(key, default)


class RegisterHandle(_Handle):
    __slots__ = ()

    def set(self, value: Any) -> None:
        self._doc.set_key(self.node, None, value)

    @property
    def value(self) -> Any:
        return self._doc.value(self.node)


class CounterHandle(_Handle):
    __slots__ = ()

    def add(self, amount: int = 1) -> None:
        self._doc.add(self.node, amount)

    @property
    def value(self) -> int:
        value = self._doc.value(self.node)
        return value if isinstance(value, int) else 0


# ---------------------------------------------------------------------------- applying


def apply_edits(
    hub: Hub, lr: LoadedRoom, doc: ServerDocument, user: p.User
) -> tuple[Outcome, asyncio.Future[Durable]] | None:
    """Apply ``doc``'s edits to the room as one server edit and submit it (None: no edits).
    Raises RoomError when they do not fit (nothing applied)."""
    ops = doc.ops
    if not ops:
        return None
    t0 = time.monotonic()
    outcome = lr.crdt.apply_server_edit(
        ops,
        hub.now_ms(),
        client_id=SERVER_CLIENT_ID,
        edit_id=f"api-{uuid.uuid4().hex[:16]}",
        author=user,
        base_version=doc.base_version,
    )
    hub.edits_applied += 1
    hub.metrics.edits.labels("server").inc()
    done = hub.submit_durable(lr, outcome, t0, author=Author(user.id, user.name, SERVER_CLIENT_ID))
    doc.version = outcome.version
    return outcome, done


def seed_yjs(hub: Hub, lr: LoadedRoom, updates: builtins.list[bytes]) -> None:
    """``on_load_document``'s Yjs updates: applied like a client's, then stored (the room is
    not visible yet: nobody to send them to)."""
    from cowrite.rooms.yjs_room import YjsRoom
    from cowrite.yjs import YjsProtocolError

    room = lr.room
    if not isinstance(room, YjsRoom):
        return
    for update in updates:
        try:
            effective = room.shared.doc.apply_client_update(update)
        except YjsProtocolError as exc:
            log.error("on_load_document's Yjs update refused: %s", exc, extra={"doc": room.doc_id})
            continue
        if effective is not None:
            author = Author("server", "server", SERVER_CLIENT_ID)
            outcome = room.persisted(effective, ("server", "server"), hub.now_ms(), how="server")
            hub.submit(lr, outcome, None, time.monotonic(), author=author)


@contextlib.asynccontextmanager
async def open_document(
    hub: Hub,
    document: str,
    *,
    user: str = "server",
    name: str = "",
    create: bool = False,
    timeout_s: float = DURABLE_TIMEOUT_S,
) -> AsyncIterator[ServerDocument]:
    """See the module docstring. Raises RoomError (``unknown_document`` without ``create``,
    ``bad_message`` for a Yjs document, ``invalid_edit`` for edits that do not fit),
    ``NotDurable`` when the store refused them, TimeoutError when they are applied but not yet
    durable after ``timeout_s`` (they stay submitted)."""
    lr = await hub.open_room(document, create=create)
    try:
        doc = ServerDocument(document, lr.crdt)
        yield doc
        if not doc.ops:
            return
        current = hub.rooms.get(document)
        if current is not lr:  # unloaded while the block ran: versions go on in the store
            if hub.cluster is not None:
                raise RoomError(p.ErrorCode.STALE_VERSION, f"{document} was reloaded: retry")
            hub._schedule_unload(document, lr)
            lr = await hub.open_room(document, create=False)
        applied = apply_edits(hub, lr, doc, p.User(id=user, name=name or user))
        if applied is not None:
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(applied[1])
    finally:
        hub._schedule_unload(document, lr)
