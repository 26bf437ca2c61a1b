"""Load generator for pycrdt-websocket: pycrdt documents synced over the y-websocket protocol.

Runs as a ``benchmarks.load`` worker (same line protocol, same recorder). The client is
built from pycrdt's own y-sync functions (``create_sync_message``, ``handle_sync_message``,
``create_update_message``) and sends only its *local* updates, like y-websocket's browser
provider. (pycrdt's ``Provider`` also re-sends every update it receives, which would multiply
the server's input by the number of clients; that is a client artefact we keep out of a server
benchmark.)

Edit keys are Yjs item ids ``client:clock``: the sender knows the clock of its next character
(it only types ASCII, one clock per character); a receiver reads client and clock from the
header of each update message before applying it.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import sys
import time
from pathlib import Path

from pycrdt import (
    Doc,
    Text,
    TransactionEvent,
    create_sync_message,
    create_update_message,
    handle_sync_message,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout: benchmarks.load

from benchmarks.load import LETTERS, Recorder, WorkerSpec, worker_main
from benchmarks.wsclient import FastWebSocket

MSG_SYNC = 0
SYNC_STEP2 = 1
SYNC_UPDATE = 2


def read_var_uint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def update_head(message: bytes) -> tuple[int, int, int] | None:
    """(client, first clock, number of structs) at the head of a y-sync update message (v1)."""
    _length, pos = read_var_uint(message, 2)  # [0 sync][2 update][varuint len][update]
    clients, pos = read_var_uint(message, pos)
    if clients < 1:
        return None
    structs, pos = read_var_uint(message, pos)
    client, pos = read_var_uint(message, pos)
    clock, pos = read_var_uint(message, pos)
    return client, clock, structs


class PycrdtClient:
    def __init__(self, index: int, doc: str, spec: WorkerSpec, rec: Recorder) -> None:
        self.index = index
        self.doc = doc
        self.url = f"{spec.url}/{doc}"
        self.rec = rec
        self.char = LETTERS[index % len(LETTERS)]
        self.rng = random.Random(spec.seed * 1_000_003 + index)
        self.ydoc: Doc[Text] = Doc()
        self.text = self.ydoc.get("body", type=Text)
        self.clock = 0
        self.keystrokes = 0
        self.errors: list[str] = []
        self._local = False
        self._outgoing: list[bytes] = []
        self._ws: FastWebSocket | None = None
        self._synced: asyncio.Future[None] | None = None
        self._closed = False
        self.ydoc.observe(self._on_transaction)

    def _on_transaction(self, event: TransactionEvent) -> None:
        if self._local:
            self._outgoing.append(event.update)

    async def connect(self) -> None:
        self._synced = asyncio.get_running_loop().create_future()
        ws = await FastWebSocket.connect(self.url, self._on_frame)
        self._ws = ws
        ws.closed.add_done_callback(self._on_closed)
        ws.send_binary(create_sync_message(self.ydoc))
        await asyncio.wait_for(self._synced, 120)

    def _on_closed(self, fut: asyncio.Future[str]) -> None:
        if not self._closed:
            self._closed = True
            self.errors.append(fut.result())
        if self._synced is not None and not self._synced.done():
            self._synced.set_exception(ConnectionError("closed before sync"))

    def _on_frame(self, message: bytes, is_text: bool) -> None:
        t = time.monotonic_ns()
        if len(message) < 2 or message[0] != MSG_SYNC:
            return  # awareness
        try:
            if message[1] == SYNC_UPDATE:
                head = update_head(message)
                # the server echoes a client's own updates back to it: not a delivery
                if head is not None and head[0] != self.ydoc.client_id:
                    client, clock, structs = head
                    for i in range(structs):
                        self.rec.received(f"{client}:{clock + i}", t)
            reply = handle_sync_message(message[1:], self.ydoc)
            if reply is not None and self._ws is not None:
                self._ws.send_binary(reply)
        except Exception as exc:
            self.errors.append(f"client: {type(exc).__name__}: {exc}")
            return
        synced = self._synced
        if message[1] == SYNC_STEP2 and synced is not None and not synced.done():
            synced.set_result(None)

    async def type_char(self, t_ns: int) -> None:
        if self._closed or self._ws is None:
            return
        pos = self.rng.randrange(len(self.text) + 1)
        self.rec.sent(f"{self.ydoc.client_id}:{self.clock}", self.doc, t_ns)
        self.clock += 1
        self.keystrokes += 1
        self._local = True
        try:
            self.text.insert(pos, self.char)
        finally:
            self._local = False
        out, self._outgoing = self._outgoing, []
        for update in out:
            try:
                self._ws.send_binary(create_update_message(update))
            except Exception as exc:
                self.errors.append(f"send: {type(exc).__name__}: {exc}")
                self._closed = True

    def text_length(self) -> int:
        return len(self.text)

    def settled(self) -> bool:
        return True  # the protocol has no acknowledgement

    def text_digest(self) -> str:
        return hashlib.sha1(str(self.text).encode()).hexdigest()

    def connected(self) -> bool:
        return self._ws is not None and not self._closed

    async def close(self) -> None:
        self._closed = True
        if self._ws is not None:
            await self._ws.close()


def _factory(index: int, doc: str, spec: WorkerSpec, rec: Recorder) -> PycrdtClient:
    return PycrdtClient(index, doc, spec, rec)


if __name__ == "__main__":
    sys.exit(worker_main({"pycrdt": _factory}))
