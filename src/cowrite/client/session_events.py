"""Events of a session (a mixin of ``DocumentSession`` and ``YjsSession``): ``on(name, callback)``
subscribes, ``_emit`` calls the callbacks (see ``connection``'s and ``yjs``'s docstrings for the
events and their payloads). A session names its events as a ``Literal`` type argument.

A callback's exception is logged, never raised into the session; a coroutine function's
result runs as a task of the session (``_tasks``, cancelled at ``close``), and its failure is
logged too.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeAlias, TypeVar

log = logging.getLogger("cowrite.client")

EventName: TypeAlias = Literal["change", "presence", "chat", "status", "error", "diverged"]
Callback: TypeAlias = Callable[[Any], Any]
E = TypeVar("E", bound=str)


class SessionEvents(Generic[E]):
    """Subscription and dispatch of a session's events, named by the ``Literal`` type ``E``."""

    _EVENTS: ClassVar[tuple[str, ...]]
    """The names ``E`` stands for (``get_args`` of it): set by each session class."""

    if TYPE_CHECKING:
        _listeners: dict[str, list[Callback]]
        _tasks: set[asyncio.Task[Any]]

        def _ids(self) -> dict[str, object]: ...

    def on(self, event: E, callback: Callback) -> Callable[[], None]:
        """Call ``callback(payload)`` on each ``event`` (the session module's docstring).

        Returns a function that unsubscribes. Exceptions in callbacks are logged, not raised; a
        coroutine function's result runs as a task. ``ValueError`` for an unknown event.
        """
        if event not in self._EVENTS:
            raise ValueError(f"unknown event {event!r}")
        callbacks = self._listeners.setdefault(event, [])
        callbacks.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                callbacks.remove(callback)

        return unsubscribe

    def _emit(self, event: str, payload: Any) -> None:
        for callback in list(self._listeners.get(event, ())):
            try:
                result = callback(payload)
            except Exception:
                log.exception("a %r listener failed", event, extra=self._ids())
                continue
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(self._listener_done)

    def _listener_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a listener task failed", exc_info=task.exception(), extra=self._ids())
