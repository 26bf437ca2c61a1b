"""Lifecycle hooks: the application's Python code, run when things happen to connections and
documents (``create_app(settings, extensions=[...])``). See ``docs/extending.md``.

An extension is an ``Extension`` subclass overriding the hooks it wants (every method defaults to
doing nothing), or ``Callbacks(on_change=fn, ...)`` for plain functions (sync or async). Each hook
takes one typed, frozen event. Extensions run in registration order.

Two sorts of hook:

* **Gates**, awaited where they happen, each call bounded by ``hook_timeout_s``:
  ``on_connect`` (raise to refuse the connection), ``on_authenticate`` (return an ``Identity``,
  ``None`` to let the next extension decide, raise to refuse), ``on_load_document`` (may seed a
  new document; raising or timing out is logged and the document loads without the seed). A gate
  holds up only its own connection or document.
* **Notifications** (everything else): queued, never awaited by a room or a connection. Each
  document (or connection) has its own queue and task, so its events arrive in order, and a hook
  that hangs holds up only its own key's later events, for at most ``hook_timeout_s`` per call.
  Raising is logged (with the document, session and extension) and counted; nothing else happens.

Every failure counts in ``cowrite_hook_failures_total{hook, extension, reason}`` (``error``,
``timeout``, or ``refused``: a gate raised ``Refused``/``AuthError``); events dropped from a
full queue in ``cowrite_hook_dropped_total``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from prometheus_client import Counter
from starlette.requests import HTTPConnection

from cowrite import protocol as p
from cowrite.server.auth import AuthError, Identity, verify

if TYPE_CHECKING:
    from cowrite.rooms.state import Outcome
    from cowrite.server.documents import ServerDocument

__all__ = [
    "AuthRequest",
    "Author",
    "Callbacks",
    "Change",
    "ChangeSummary",
    "Changes",
    "ChatPosted",
    "Connect",
    "Disconnect",
    "DocumentCreated",
    "DocumentDeleted",
    "Extension",
    "Hooks",
    "Identity",
    "JwtAuth",
    "LoadDocument",
    "Refused",
    "Stateless",
    "Stored",
    "Unload",
]

log = logging.getLogger("cowrite.hooks")

Endpoint = Literal["ws", "y-websocket", "hocuspocus", "rest"]
QUEUE_LIMIT = 10_000
"""Events waiting for one key's hooks; beyond it the oldest is dropped (and counted)."""

# ------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Connect:
    """A WebSocket was accepted, before any message is read."""

    session: str
    endpoint: Endpoint
    path: str
    client: str | None
    """``host:port`` of the peer (as the ASGI server saw it)."""
    headers: Mapping[str, str]
    query: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """A credential to check: the native ``hello``'s token (``document`` None: the connection's
    identity), the y-websocket ``token`` query parameter or a Hocuspocus Auth message (for
    ``document``), or a REST request's bearer token (``session`` "rest"; ``document`` from the
    path, None for the document list and create)."""

    token: str | None
    document: str | None
    session: str
    endpoint: Endpoint


@dataclass(frozen=True, slots=True)
class LoadDocument:
    """A document is being loaded into memory (nobody sees it before the hooks return)."""

    document: str
    kind: str
    """``crdt`` or ``yjs``."""
    created: bool
    """The document did not exist: this load created it (empty)."""
    doc: ServerDocument | None
    """For ``crdt`` documents: edit it like the SDK's document (``doc.text("body").insert``);
    the edits become the document's first update, before any client sees it."""
    yjs_updates: list[bytes] | None = None
    """For ``yjs`` documents: append Yjs updates (``pycrdt.Doc.get_update()`` of the
    application's copy) to apply, before any client sees it (validated like a client's)."""


@dataclass(frozen=True, slots=True)
class Author:
    user_id: str
    name: str = ""
    client_id: str = ""


@dataclass(frozen=True, slots=True)
class ChangeSummary:
    ops: int = 0
    """Operations in the change (0 for a replica delta or a Yjs update)."""
    nodes: tuple[str, ...] = ()
    """Wire ids of the nodes changed (``text:body``, ``#r.s``), when known."""
    inserted: int = 0
    """Characters/items inserted into sequences."""
    deleted: int = 0
    """Characters/items deleted from sequences."""
    keys: int = 0
    """Map keys and registers written or deleted, counters added to."""
    bytes: int = 0
    """Size of the stored update."""


@dataclass(frozen=True, slots=True)
class Change:
    """One update of a document, after it is durable (on the instance that applied it)."""

    document: str
    version: int
    seq: int | None
    author: Author | None
    """Who made it (None when unknown: replicated from another instance are not reported)."""
    source: Literal["thin", "replica", "yjs", "server"]
    summary: ChangeSummary
    at_ms: int


@dataclass(frozen=True, slots=True)
class Changes:
    """The changes of a document since the last ``on_change_debounced``: after
    ``change_debounce_s`` without changes, or ``change_max_wait_s`` after the first."""

    document: str
    version: int
    changes: int
    authors: tuple[str, ...]
    """User ids, in order of first change."""
    first_ms: int
    last_ms: int


@dataclass(frozen=True, slots=True)
class Stored:
    """A group commit wrote these updates of the document to the store."""

    document: str
    seqs: tuple[int, ...]
    version: int


@dataclass(frozen=True, slots=True)
class Disconnect:
    session: str
    endpoint: Endpoint
    user_id: str
    documents: tuple[str, ...]
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Unload:
    document: str


@dataclass(frozen=True, slots=True)
class Stateless:
    """A Hocuspocus stateless message other than ``cowrite.chat.*``. ``reply(payload)`` sends a
    stateless message back to that connection's document."""

    document: str
    session: str
    user_id: str
    payload: str
    reply: Callable[[str], None] = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class DocumentCreated:
    document: str
    kind: str
    by: str | None
    """User id of who created it (None: a load that created it, by whoever joined)."""


@dataclass(frozen=True, slots=True)
class DocumentDeleted:
    document: str
    by: str


@dataclass(frozen=True, slots=True)
class ChatPosted:
    document: str
    message: p.ChatMessage


def connect_event(ws: HTTPConnection, session: str, endpoint: Endpoint) -> Connect:
    client = f"{ws.client.host}:{ws.client.port}" if ws.client is not None else None
    return Connect(session, endpoint, ws.url.path, client, dict(ws.headers), dict(ws.query_params))


class Refused(Exception):
    """Raised by ``on_connect``/``on_authenticate`` (or any exception there) refuses; the
    client is told ``str(exc)``."""


def change_of(
    document: str, outcome: Outcome, seq: int | None, author: Author | None, now_ms: int
) -> Change:
    """The ``Change`` event of a durable outcome: its source and a summary of its ops."""
    remote = next((m for m, _ in outcome.broadcast if isinstance(m, p.Remote)), None)
    size = len(outcome.persist or b"")
    source: Literal["thin", "replica", "yjs", "server"]
    if remote is None:
        relayed = any(isinstance(m, p.RemoteSync) for m, _ in outcome.broadcast)
        source = "replica" if relayed else "yjs"
        return Change(
            document, outcome.version, seq, author, source, ChangeSummary(bytes=size), now_ms
        )
    inserted = deleted = keys = 0
    nodes: dict[str, None] = {}
    for op in remote.ops:
        nodes.setdefault(op.node)
        if isinstance(op, p.SeqEdit):
            for c in op.edit:
                if isinstance(c, int):
                    deleted += -c if c < 0 else 0
                else:
                    inserted += len(c)
        else:
            keys += 1
    source = "server" if remote.client_id == "server" else "thin"
    summary = ChangeSummary(len(remote.ops), tuple(nodes), inserted, deleted, keys, size)
    return Change(document, outcome.version, seq, author, source, summary, now_ms)


# --------------------------------------------------------------------------- extensions


class Extension:
    """Override the hooks you need; every one defaults to nothing. ``name`` appears in logs
    and metrics (default: the class name)."""

    name: str = ""

    async def on_startup(self) -> None:
        """The server started (before it accepts connections)."""

    async def on_shutdown(self) -> None:
        """The server stops (after the rooms are drained and the last notifications run)."""

    async def on_connect(self, event: Connect) -> None:
        """Raise to refuse the connection (it is closed with ``str(exc)``)."""

    async def on_authenticate(self, event: AuthRequest) -> Identity | None:
        """Who the credential names and their rights; None: not mine (the next decides);
        raise to refuse."""
        return None

    async def on_load_document(self, event: LoadDocument) -> None:
        """Seed a new document (``event.doc``) from the application's storage."""

    async def on_create_document(self, event: DocumentCreated) -> None: ...
    async def on_change(self, event: Change) -> None: ...
    async def on_change_debounced(self, event: Changes) -> None: ...
    async def on_store(self, event: Stored) -> None: ...
    async def on_chat(self, event: ChatPosted) -> None: ...
    async def on_stateless(self, event: Stateless) -> None: ...
    async def on_disconnect(self, event: Disconnect) -> None: ...
    async def on_unload(self, event: Unload) -> None: ...
    async def on_delete_document(self, event: DocumentDeleted) -> None: ...


HOOKS = (
    "on_startup",
    "on_shutdown",
    "on_connect",
    "on_authenticate",
    "on_load_document",
    "on_create_document",
    "on_change",
    "on_change_debounced",
    "on_store",
    "on_chat",
    "on_stateless",
    "on_disconnect",
    "on_unload",
    "on_delete_document",
)


class Callbacks(Extension):
    """Plain functions as an extension: ``Callbacks(on_change=fn)``; each takes the event
    and may be a coroutine function."""

    def __init__(self, name: str = "callbacks", **hooks: Callable[..., Any]) -> None:
        unknown = set(hooks) - set(HOOKS)
        if unknown:
            raise TypeError(f"unknown hooks: {', '.join(sorted(unknown))}")
        self.name = name
        self._fns = hooks
        for hook, fn in hooks.items():
            setattr(self, hook, _wrap(fn))

    def implements(self, hook: str) -> bool:
        return hook in self._fns


def _wrap(fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    async def call(*args: Any) -> Any:
        result = fn(*args)
        if inspect.isawaitable(result):
            result = await result
        return result

    return call


class JwtAuth(Extension):
    """The built-in check: an HS256 token signed with the server's secret (``auth.verify``)."""

    name = "jwt"

    def __init__(self, secret: str) -> None:
        self.secret = secret

    async def on_authenticate(self, event: AuthRequest) -> Identity | None:
        return verify(event.token, self.secret)


def implements(ext: Extension, hook: str) -> bool:
    if isinstance(ext, Callbacks):
        return ext.implements(hook)
    return getattr(type(ext), hook) is not getattr(Extension, hook)


# ------------------------------------------------------------------------------- runner


@dataclass
class _Debounce:
    version: int
    changes: int
    authors: dict[str, None]
    first_ms: int
    last_ms: int
    first: float
    timer: asyncio.TimerHandle | None = None


class Hooks:
    """Runs the extensions' hooks (one per server; ``hub.hooks``)."""

    def __init__(
        self,
        extensions: list[Extension],
        registry: Any = None,
        *,
        timeout_s: float = 10.0,
        debounce_s: float = 2.0,
        max_wait_s: float = 10.0,
        secret: str | None = None,
    ) -> None:
        self.extensions = list(extensions)
        if secret:
            self.extensions.append(JwtAuth(secret))
        self.timeout_s = timeout_s
        self.debounce_s = debounce_s
        self.max_wait_s = max_wait_s
        self._by_hook = {h: [e for e in self.extensions if implements(e, h)] for h in HOOKS}
        self._queues: dict[str, collections.deque[tuple[str, Any]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._debounced: dict[str, _Debounce] = {}
        kw: dict[str, Any] = {} if registry is None else {"registry": registry}
        self.failures = Counter(
            "cowrite_hook_failures",
            "Hook calls that raised or timed out",
            ["hook", "extension", "reason"],
            **kw,
        )
        self.dropped = Counter(
            "cowrite_hook_dropped", "Hook events dropped from a full queue", ["hook"], **kw
        )

    def wants(self, hook: str) -> bool:
        return bool(self._by_hook[hook])

    @property
    def wants_changes(self) -> bool:
        return self.wants("on_change") or self.wants("on_change_debounced")

    @property
    def custom_auth(self) -> bool:
        """An extension other than the built-in JWT check decides who connects."""
        return any(not isinstance(e, JwtAuth) for e in self._by_hook["on_authenticate"])

    @property
    def authenticates(self) -> bool:
        """Some extension (or the secret) decides who connects; otherwise everyone is anonymous."""
        return self.wants("on_authenticate")

    # --- gates ----------------------------------------------------------------------------

    async def _call(self, ext: Extension, hook: str, event: Any, ids: dict[str, Any]) -> Any:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await getattr(ext, hook)(event)
        except TimeoutError:
            self._failed(ext, hook, "timeout", ids, None)
            raise Refused(f"{hook} timed out") from None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            refused = isinstance(exc, Refused | AuthError)
            self._failed(ext, hook, "refused" if refused else "error", ids, exc)
            raise

    def _failed(
        self, ext: Extension, hook: str, reason: str, ids: dict[str, Any], exc: Exception | None
    ) -> None:
        name = ext.name or type(ext).__name__
        self.failures.labels(hook, name, reason).inc()
        if isinstance(exc, Refused | AuthError):
            log.info("%s refused: %s", hook, exc, extra={**ids, "extension": name})
            return
        log.error(
            "hook %s %s",
            hook,
            "timed out" if exc is None else "failed",
            exc_info=exc,
            extra={**ids, "extension": name, "hook": hook},
        )

    async def connect(self, event: Connect) -> None:
        """Raises (``Refused`` or the hook's exception) when an extension refuses."""
        for ext in self._by_hook["on_connect"]:
            await self._call(ext, "on_connect", event, {"session": event.session})

    async def authenticate(self, event: AuthRequest) -> Identity:
        """The first identity an extension returns; raises (``Refused``, ``AuthError`` or the
        hook's exception) when one refuses or none answers."""
        ids = {"session": event.session, "doc": event.document}
        for ext in self._by_hook["on_authenticate"]:
            identity = await self._call(ext, "on_authenticate", event, ids)
            if identity is not None:
                if not isinstance(identity, Identity):
                    raise Refused(f"{ext.name or type(ext).__name__} returned no Identity")
                return identity
        raise Refused("no extension accepted the credential")

    async def load_document(self, event: LoadDocument) -> bool:
        """Run ``on_load_document``; False when one raised or timed out (logged, counted)."""
        ok = True
        for ext in self._by_hook["on_load_document"]:
            try:
                await self._call(ext, "on_load_document", event, {"doc": event.document})
            except Exception:
                ok = False
        return ok

    async def lifecycle(self, hook: Literal["on_startup", "on_shutdown"]) -> None:
        for ext in self._by_hook[hook]:
            try:
                async with asyncio.timeout(self.timeout_s):
                    await getattr(ext, hook)()
            except TimeoutError:
                self._failed(ext, hook, "timeout", {}, None)
            except Exception as exc:
                self._failed(ext, hook, "error", {}, exc)

    # --- notifications --------------------------------------------------------------------

    def notify(self, hook: str, event: Any, key: str) -> None:
        """Queue ``event`` for ``hook`` on ``key``'s queue (a document or a session)."""
        if not self._by_hook[hook]:
            return
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = collections.deque()
        if len(queue) >= QUEUE_LIMIT:
            dropped, _ = queue.popleft()
            self.dropped.labels(dropped).inc()
        queue.append((hook, event))
        if key not in self._workers:
            self._workers[key] = asyncio.get_running_loop().create_task(self._work(key))

    async def _work(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                hook, event = queue.popleft()
                ids = {
                    "doc": getattr(event, "document", None),
                    "session": getattr(event, "session", None),
                }
                for ext in self._by_hook[hook]:
                    with contextlib.suppress(Exception):  # logged and counted by _call
                        await self._call(ext, hook, event, ids)
        finally:
            del self._workers[key]
            if queue:  # cancelled with events left: they are dropped
                for hook, _ in queue:
                    self.dropped.labels(hook).inc()
            del self._queues[key]

    def created(self, document: str, kind: str, by: str | None) -> None:
        self.notify("on_create_document", DocumentCreated(document, kind, by), document)

    def deleted(self, document: str, by: str) -> None:
        self.notify("on_delete_document", DocumentDeleted(document, by), document)

    def change(self, event: Change) -> None:
        """``on_change`` now, and ``on_change_debounced`` later."""
        self.notify("on_change", event, event.document)
        if not self._by_hook["on_change_debounced"]:
            return
        d = self._debounced.get(event.document)
        user = event.author.user_id if event.author is not None else ""
        if d is None:
            d = self._debounced[event.document] = _Debounce(
                event.version, 0, {}, event.at_ms, event.at_ms, time.monotonic()
            )
        d.version = max(d.version, event.version)
        d.changes += 1
        d.last_ms = event.at_ms
        if user:
            d.authors.setdefault(user)
        if d.timer is not None:
            d.timer.cancel()
        delay = min(self.debounce_s, max(0.0, d.first + self.max_wait_s - time.monotonic()))
        loop = asyncio.get_running_loop()
        d.timer = loop.call_later(delay, self.flush_changes, event.document)

    def flush_changes(self, document: str) -> None:
        """Send the document's pending ``on_change_debounced`` now (unload, shutdown)."""
        d = self._debounced.pop(document, None)
        if d is None:
            return
        if d.timer is not None:
            d.timer.cancel()
        event = Changes(document, d.version, d.changes, tuple(d.authors), d.first_ms, d.last_ms)
        self.notify("on_change_debounced", event, document)

    async def close(self) -> None:
        """Flush debounced changes and give queued notifications ``timeout_s`` to finish."""
        for document in list(self._debounced):
            self.flush_changes(document)
        workers = list(self._workers.values())
        if workers:
            _, pending = await asyncio.wait(workers, timeout=self.timeout_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        await self.lifecycle("on_shutdown")
