"""Loading a state whose body is decompressed in several steps (``state_load._inflate``): the
same document, and damaged bytes at any point refused with ``DecodeError``."""

from __future__ import annotations

import random

import pytest

from cowrite.engine import DecodeError, Document
from cowrite.engine.state_load import _INFLATE_STEP


def _big_state() -> tuple[Document, bytes]:
    doc = Document(replica=1)
    text = doc.text("t")
    rng = random.Random(5)
    words = [
        "".join(rng.choice("abcdefghij") for _ in range(rng.randint(1, 9))) for _ in range(500)
    ]
    body = " ".join(rng.choice(words) for _ in range(3 * _INFLATE_STEP // 5))
    text.insert(0, body)
    for _ in range(200):  # some runs, so the columns are not trivial
        text.insert(rng.randint(0, len(text)), "xy")
    data = doc.encode_state()
    assert data[4] == 1  # zlib
    return doc, data


def test_a_body_of_several_steps_loads_the_same_document() -> None:
    doc, data = _big_state()
    loaded = Document.load(data, 2)
    assert str(loaded.text("t")) == str(doc.text("t"))
    assert len(str(doc.text("t"))) > 2 * _INFLATE_STEP  # decompressed in more than one step


@pytest.mark.parametrize("keep", [0.1, 0.3, 0.5, 0.7, 0.9, 0.99])
def test_a_truncated_body_of_several_steps_is_refused(keep: float) -> None:
    _, data = _big_state()
    with pytest.raises(DecodeError):
        Document.load(data[: int(len(data) * keep)], 2)


@pytest.mark.parametrize("at", [0.2, 0.5, 0.8])
def test_garbage_in_the_compressed_body_is_refused(at: float) -> None:
    _, data = _big_state()
    k = int(len(data) * at)
    garbage = bytes(random.Random(k).randrange(256) for _ in range(64))
    with pytest.raises(DecodeError):
        Document.load(data[:k] + garbage + data[k + 64 :], 2)
