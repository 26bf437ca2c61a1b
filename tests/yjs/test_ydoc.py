"""FastDoc: the per-update pycrdt calls without the wrapper give what the public API gives, on
the internals path and on the public fallback alike."""

from __future__ import annotations

import random
from typing import Any

import pycrdt
import pytest

from cowrite.yjs.ydoc import FastDoc, fast_api_available


def _keystrokes(n: int) -> list[bytes]:
    writer: pycrdt.Doc[Any] = pycrdt.Doc(client_id=3)
    text = writer.get("t", type=pycrdt.Text)
    out = []
    for k in range(n):
        before = writer.get_state()
        text.insert(k % 3, "x")
        out.append(writer.get_update(before))
    return out


def test_the_locked_pycrdt_has_the_internals() -> None:
    # Else the server silently pays the wrapper's cost on every update (see ydoc.py).
    assert fast_api_available()


@pytest.mark.parametrize("fast", [True, False])
def test_calls_and_observer_match_the_public_api(fast: bool) -> None:
    reference: pycrdt.Doc[Any] = pycrdt.Doc()
    seen_public: list[bytes] = []
    reference.observe(lambda event: seen_public.append(event.update))
    doc = FastDoc(fast=fast)
    seen: list[bytes] = []
    stop = doc.observe_updates(seen.append)
    updates = _keystrokes(20)
    for u in updates:
        reference.apply_update(u)
        doc.apply_update(u)
        assert doc.get_state() == reference.get_state()
    assert seen == seen_public
    assert str(doc.doc.get("t", type=pycrdt.Text)) == str(reference.get("t", type=pycrdt.Text))
    stop()
    doc.apply_update(_keystrokes(21)[-1])
    assert len(seen) == len(seen_public)  # unsubscribed


@pytest.mark.parametrize("fast", [True, False])
def test_garbage_raises_and_changes_nothing(fast: bool) -> None:
    doc = FastDoc(fast=fast)
    doc.apply_update(_keystrokes(1)[0])
    state = doc.get_state()
    rnd = random.Random(3)
    for bad in [b"", b"\xff" * 9, *(rnd.randbytes(rnd.randint(1, 30)) for _ in range(50))]:
        try:
            doc.apply_update(bad)
        except BaseException as exc:  # pyo3's PanicException is a BaseException
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
    assert doc.get_state() == state  # (what does not decode, or waits, adds no clock)
