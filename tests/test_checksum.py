"""The thin-client checksum: the shared vectors, and Python and JavaScript agreeing on random
texts (astral characters, lone surrogates)."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cowrite import protocol as p

ROOT = Path(__file__).resolve().parents[1]
VECTORS = json.loads((ROOT / "tests" / "checksum_vectors.json").read_text("utf-8"))["vectors"]
NODE = shutil.which("node")

RUNNER = """
import { textChecksum } from %s;
let data = "";
process.stdin.on("data", (c) => (data += c));
process.stdin.on("end", () => {
  process.stdout.write(JSON.stringify(JSON.parse(data).map(textChecksum)));
});
"""

# code points a text can hold (lone surrogates included: they count as U+FFFD on both sides)
CHARS = st.one_of(
    st.sampled_from(["a", "é", "中", "😀", "👍🏽", "\n", "\r", "\x00", "\U0010ffff", "\ufffd"]),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    st.characters(),
)


def _valid_in_both(text: str) -> bool:
    """False for a high surrogate followed by a low one: JSON (and JavaScript) would read the
    two as one astral character, Python keeps two code points. No document holds either."""
    return not any(
        "\ud800" <= a <= "\udbff" and "\udc00" <= b <= "\udfff" for a, b in itertools.pairwise(text)
    )


TEXTS = st.lists(CHARS, max_size=40).map("".join).filter(_valid_in_both)


def test_python_matches_the_shared_vectors() -> None:
    assert any(ord(c) > 0xFFFF for v in VECTORS for c in v["text"])  # astral characters
    assert any("\ud800" <= c <= "\udfff" for v in VECTORS for c in v["text"])  # lone surrogates
    for v in VECTORS:
        assert p.text_checksum(v["text"]) == v["checksum"], v["name"]
    assert p.text_checksum("123456789") == 0xCBF43926  # the standard CRC-32 check value


@pytest.mark.skipif(NODE is None, reason="node is not installed")
@settings(max_examples=10, deadline=None)
@given(st.lists(TEXTS, min_size=1, max_size=60))
def test_python_and_javascript_agree_on_random_texts(texts: list[str]) -> None:
    assert NODE is not None
    module = json.dumps((ROOT / "web" / "src" / "checksum.js").as_uri())
    done = subprocess.run(
        [NODE, "--input-type=module", "-e", RUNNER % module],
        input=json.dumps(texts, ensure_ascii=True),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(done.stdout) == [p.text_checksum(t) for t in texts]
