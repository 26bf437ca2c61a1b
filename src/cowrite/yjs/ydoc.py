"""A pycrdt document on the per-update path, without the Python wrapper's per-call costs.

pycrdt's ``Doc`` opens a Python transaction object around every call (``apply_update``,
``get_state``: about 1 µs each, as much as Yrs' own work for a keystroke) and wraps every observer
call in two more Python frames. ``YjsDocument.apply_client_update`` makes three such calls and one
observer call per update, on every keystroke of every client, so ``FastDoc`` makes them on the
Rust document underneath (``pycrdt.Doc._doc``: ``create_transaction``, ``apply_update(txn,
update)``, ``get_state(txn)``, ``observe(callback)``), which pycrdt 0.12 to 0.14 have kept.
Everything else (REST read-outs, snapshots, catch-up diffs) uses pycrdt's public API.

``fast_api_available()`` says whether the installed pycrdt still has those internals; when it
does not, ``FastDoc`` goes through the public API (same results, the wrapper's cost): a pycrdt
upgrade can make this slower, never wrong. ``tests/yjs/test_ydoc.py`` checks both paths.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pycrdt


def _probe() -> bool:
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    raw = getattr(doc, "_doc", None)
    if raw is None or getattr(doc, "_Model", None) is not None:
        return False
    try:
        txn = raw.create_transaction()
        try:
            raw.apply_update(txn, b"\x00\x00")
            state = raw.get_state(txn)
            txn.commit()
        finally:
            txn.drop()
        sub = raw.observe(lambda event: event.update)
        sub.drop()
    except Exception:
        return False
    return isinstance(state, bytes)


_FAST = _probe()


def fast_api_available() -> bool:
    """Whether the installed pycrdt has the internals ``FastDoc`` calls (see the module)."""
    return _FAST


class FastDoc:
    """A ``pycrdt.Doc`` (``doc``) with its per-update calls made without the wrapper.

    Caller's contract: no other transaction is open on ``doc`` during a call (the server never
    holds one); exceptions are Yrs' own (``apply_update`` raises for bytes it cannot read, or a
    ``PanicException``), as with the public API.
    """

    __slots__ = ("_raw", "doc")

    def __init__(self, doc: pycrdt.Doc[Any] | None = None, *, fast: bool | None = None) -> None:
        self.doc: pycrdt.Doc[Any] = doc if doc is not None else pycrdt.Doc()
        use = _FAST if fast is None else fast and _FAST
        self._raw: Any = self.doc._doc if use else None

    def apply_update(self, update: bytes) -> None:
        raw = self._raw
        if raw is None:
            self.doc.apply_update(update)
            return
        txn = raw.create_transaction()
        try:
            raw.apply_update(txn, update)
            txn.commit()
        finally:
            txn.drop()

    def get_state(self) -> bytes:
        raw = self._raw
        if raw is None:
            return self.doc.get_state()
        txn = raw.create_transaction()
        try:
            state: bytes = raw.get_state(txn)
        finally:
            txn.commit()
            txn.drop()
        return state

    def observe_updates(self, sink: Callable[[bytes], None]) -> Callable[[], None]:
        """Call ``sink`` with the update of every transaction (Yrs' own encoding of what it
        changed; the empty update ``b"\\x00\\x00"`` when nothing integrated). Returns the
        function that ends the subscription."""
        raw = self._raw
        if raw is None:
            sub = self.doc.observe(lambda event: sink(event.update))
            return lambda: self.doc.unobserve(sub)
        raw_sub = raw.observe(lambda event: sink(event.update))
        return raw_sub.drop  # type: ignore[no-any-return]
