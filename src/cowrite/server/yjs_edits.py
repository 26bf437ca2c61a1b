"""Server-side edits of a Yjs document (REST ``POST /api/documents/{id}/edits``, ``rest_edits``).

The edits are made on a copy of the document (``pycrdt``) as one transaction, by a fresh Yjs
client; the resulting update is validated and applied like a client's
(``YjsDocument.apply_client_update``), stored, then sent to every connection of the document and
to the other instances, as any update. Text positions arrive in code points; ``pycrdt.Text``
counts UTF-8 bytes, so each position is converted against the text as it is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pycrdt

from cowrite import protocol as p
from cowrite.engine import InvalidOperation, ot
from cowrite.rooms.room import RoomError
from cowrite.rooms.yjs_room import YjsRoom
from cowrite.server.hooks import Author
from cowrite.server.pipeline import Durable
from cowrite.yjs import YjsProtocolError

if TYPE_CHECKING:
    from cowrite.server.hub import Hub

DURABLE_TIMEOUT_S = 30.0


@dataclass
class YjsEdit:
    """``text`` with ``op`` (computed from the current text), or ``map`` with ``set``/``unset``."""

    where: str
    text: str | None = None
    op: Callable[[str], ot.Op] | None = None
    map: str | None = None
    set: dict[str, Any] = field(default_factory=dict)
    unset: list[str] = field(default_factory=list)


def _byte(text: str, pos: int) -> int:
    try:
        return len(text[:pos].encode())
    except UnicodeEncodeError:
        raise InvalidOperation("the text holds a lone surrogate") from None


def _apply_text(ytext: pycrdt.Text, current: str, op: ot.Op) -> None:
    ot.apply(current, op)  # raises InvalidOperation when it does not fit
    pos = 0
    for c in op:
        if isinstance(c, int) and c > 0:
            pos += c
        elif isinstance(c, int):
            start, end = _byte(current, pos), _byte(current, pos - c)
            del ytext[start:end]
            current = current[:pos] + current[pos - c :]
        elif isinstance(c, str):
            ytext.insert(_byte(current, pos), c)
            current = current[:pos] + c + current[pos:]
            pos += len(c)


def update_of(state: bytes, edits: list[YjsEdit]) -> bytes:
    """The update that makes ``edits`` on a document whose state is ``state``."""
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    doc.apply_update(state)
    before = doc.get_state()
    with doc.transaction():
        for edit in edits:
            try:
                if edit.text is not None and edit.op is not None:
                    ytext = doc.get(edit.text, type=pycrdt.Text)
                    current = str(ytext)
                    _apply_text(ytext, current, edit.op(current))
                elif edit.map is not None:
                    ymap = doc.get(edit.map, type=pycrdt.Map)
                    for key, value in edit.set.items():
                        ymap[key] = value
                    for key in edit.unset:
                        if key in ymap:
                            del ymap[key]
            except InvalidOperation as exc:
                raise InvalidOperation(f"{edit.where}: {exc}") from None
            except (TypeError, ValueError) as exc:
                raise InvalidOperation(f"{edit.where}: {exc}") from None
    update: bytes = doc.get_update(before)
    return update


async def apply_yjs_edits(
    hub: Hub, document: str, edits: list[YjsEdit], user: Author
) -> int | None:
    """Apply ``edits`` to the Yjs ``document`` as one update; its version once durable (None
    when it changed nothing).
    Raises InvalidOperation (nothing applied), RoomError, NotDurable, TimeoutError."""
    lr = await hub.open_room(document, create=False, kind="yjs")
    try:
        room = lr.room
        if not isinstance(room, YjsRoom):
            raise RoomError(p.ErrorCode.BAD_MESSAGE, f"{document} is not a Yjs document")
        t0 = time.monotonic()
        update = update_of(room.shared.doc.encode_snapshot(), edits)
        try:
            effective = room.shared.doc.apply_client_update(update)
        except YjsProtocolError as exc:
            raise InvalidOperation(f"the edit does not fit: {exc.reason}") from None
        if effective is None:
            return None
        outcome = room.persisted(effective, (user.user_id, user.name), hub.now_ms(), how="server")
        outcome.frames.extend(room.update_frames(effective, None))
        hub.edits_applied += 1
        hub.metrics.edits.labels("server").inc()
        done: asyncio.Future[Durable] = hub.submit_durable(lr, outcome, t0, author=user)
        async with asyncio.timeout(DURABLE_TIMEOUT_S):
            await asyncio.shield(done)
        return outcome.version
    finally:
        hub._schedule_unload(document, lr)
