"""The server's copy of a Yjs document, read the way a new y-websocket client would: a fresh
connection to ``<url>/<doc>`` sends sync step 1 with an empty pycrdt ``Doc`` and applies the
server's sync step 2 (``benchmarks.results.check_server_texts`` compares it with the clients').
"""

from __future__ import annotations

import asyncio

from pycrdt import Doc, Text, create_sync_message, handle_sync_message

from benchmarks.wsclient import FastWebSocket

MSG_SYNC = 0
SYNC_STEP2 = 1


async def fetch_yjs_text(url: str, doc: str, root: str = "body", timeout: float = 30.0) -> str:
    """The text of root ``root`` of document ``doc`` on the y-websocket server at ``url``
    (cowrite: ``ws://host:port/yjs``)."""
    ydoc: Doc[Text] = Doc()
    text = ydoc.get(root, type=Text)
    synced: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_frame(message: bytes, is_text: bool) -> None:
        if is_text or len(message) < 2 or message[0] != MSG_SYNC or synced.done():
            return  # awareness, or after the sync
        try:
            handle_sync_message(message[1:], ydoc)
        except Exception as exc:
            synced.set_exception(exc)
            return
        if message[1] == SYNC_STEP2:
            synced.set_result(None)

    ws = await FastWebSocket.connect(f"{url}/{doc}", on_frame)
    try:
        ws.send_binary(create_sync_message(ydoc))
        await asyncio.wait_for(synced, timeout)
        return str(text)
    finally:
        await ws.close()
