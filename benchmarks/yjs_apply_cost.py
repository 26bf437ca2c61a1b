"""What one keystroke costs cowrite's Yjs document, against the number of clients in its history.

``python -m benchmarks.yjs_apply_cost`` builds ``YjsDocument``s that ``N`` different Yjs clients
have edited (every browser page load is a new Yjs client id, so long-lived documents collect
thousands), then times ``apply_client_update`` (what the server runs for every incoming update:
validation on the twin, then the real document) for a burst of one-character inserts. The cost
per update should not grow with ``N``; it prints one line per ``N``. Also: encoding an update
frame for one receiver (done once per receiver).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import pycrdt

from cowrite.yjs import messages as m
from cowrite.yjs.document import YjsDocument


def edited_by(clients: int) -> YjsDocument:
    """A document with one character from each of ``clients`` Yjs clients."""
    doc = YjsDocument()
    for i in range(clients):
        src: pycrdt.Doc[pycrdt.Text] = pycrdt.Doc(client_id=1000 + i)
        if i:
            src.apply_update(doc.encode_snapshot())
        text = src.get("body", type=pycrdt.Text)
        before = src.get_state()
        text.insert(0, "x")
        doc.apply_client_update(src.get_update(before))
    return doc


def keystrokes(doc: YjsDocument, n: int) -> list[bytes]:
    """``n`` one-character updates of a new client that has synced ``doc``."""
    writer: pycrdt.Doc[pycrdt.Text] = pycrdt.Doc(client_id=7)
    writer.apply_update(doc.encode_snapshot())
    text = writer.get("body", type=pycrdt.Text)
    out = []
    for k in range(n):
        before = writer.get_state()
        text.insert(k % 5, "y")
        out.append(writer.get_update(before))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.yjs_apply_cost", description=__doc__
    )
    parser.add_argument("--clients", default="1,50,500,2000", help="history sizes to try")
    parser.add_argument("--updates", type=int, default=300, help="keystrokes timed per size")
    args = parser.parse_args(argv)
    update = b""
    for n in (int(x) for x in args.clients.split(",")):
        doc = edited_by(n)
        updates = keystrokes(doc, args.updates)
        update = updates[0]
        t0 = time.perf_counter()
        for u in updates:
            doc.apply_client_update(u)
        per = (time.perf_counter() - t0) / len(updates)
        print(f"{n:6} clients in the history: apply_client_update {per * 1e6:8.1f} µs per update")
    rounds = 20_000
    t0 = time.perf_counter()
    for _ in range(rounds):
        m.encode_ywebsocket(m.YSync(m.SyncUpdate(update)))
    per = (time.perf_counter() - t0) / rounds
    print(f"one receiver's y-websocket update frame: {per * 1e6:.2f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
