"""pycrdt's own provider (``pycrdt.Provider``, the y-websocket dialect) works unchanged against
``/yjs/<name>``, next to a Hocuspocus client on the same document."""

from __future__ import annotations

from typing import Any

import pycrdt
import websockets

from cowrite.yjs import messages as m

from .conftest import RunningServer
from .test_yjs_server import Hocus, stored_text, text_of, until


class WebsocketChannel:
    """The ``pycrdt.Channel`` over a ``websockets`` connection (as pycrdt's docs show)."""

    def __init__(self, ws: Any, path: str) -> None:
        self._ws = ws
        self._path = path

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self) -> WebsocketChannel:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.recv()
        except websockets.ConnectionClosed:
            raise StopAsyncIteration from None

    async def send(self, message: bytes) -> None:
        await self._ws.send(message)

    async def recv(self) -> bytes:
        message = await self._ws.recv()
        assert isinstance(message, bytes)
        return message


async def test_pycrdt_provider_and_hocuspocus_converge(server: RunningServer) -> None:
    url = server.url.replace("http://", "ws://") + "/yjs/py"
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    text = doc.get("t", type=pycrdt.Text)
    ws = await websockets.connect(url, max_size=None)
    async with pycrdt.Provider(doc, WebsocketChannel(ws, "py")) as provider:
        await provider.synced.wait()
        text.insert(0, "python ")
        h = await Hocus.connect(server)
        hdoc = await h.open("py")
        await until(lambda: text_of(hdoc) == "python ")
        hdoc.get("t", type=pycrdt.Text).insert(7, "and hocus")
        await until(lambda: str(text) == "python and hocus")
        await until(lambda: len(h.of(m.HSyncStatus)) >= 2)
        await h.close()
        await ws.close()
    assert await stored_text(server, "py") == "python and hocus"
