"""The compiled (mypyc) build of the engine's hot modules and its pure-Python fallback.

Whichever build this process runs, the engine suites here test it; these tests add the other
one: with the compiled build active, the property suites run again in a subprocess forced to the
pure sources (``COWRITE_ENGINE=pure``), and a scripted session must give the same bytes both
ways. Without a compiled build (no ``scripts/build-native``) the suites already ran pure.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cowrite
from cowrite.cli import build_parser
from cowrite.engine import Document, engine_build
from cowrite.engine import native as native_mod

ROOT = Path(__file__).resolve().parents[2]
PROPERTY_SUITES = [
    "tests/engine/test_convergence.py",
    "tests/engine/test_sequence.py",
    "tests/engine/test_state.py",
    "tests/engine/test_encoding.py",
    "tests/engine/test_codec.py",
    "tests/engine/test_document.py",
    "tests/engine/test_causal_queue.py",
    "tests/engine/test_history.py",
    "tests/engine/test_history_index.py",
    "tests/engine/test_history_bulk.py",
]
COMPILED = engine_build() == "mypyc-compiled"
needs_compiled = pytest.mark.skipif(
    not COMPILED, reason="no compiled build (scripts/build-native): the suites ran pure Python"
)


def _python(code: str, env: dict[str, str], cwd: Path = ROOT) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return done.stdout.strip()


def test_the_active_build_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert engine_build() == "mypyc-compiled" or engine_build().startswith("pure Python")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--version"])
    assert f"(engine: {engine_build()})" in capsys.readouterr().out


def test_forcing_pure_python_imports_the_sources() -> None:
    out = _python(
        "import cowrite.engine as e, cowrite.engine.sequence as s, cowrite.engine.codec as c;"
        "print(e.engine_build()); print(s.__file__); print(c.__file__)",
        {"COWRITE_ENGINE": "pure"},
    )
    build, *files = out.splitlines()
    assert build.startswith("pure Python")
    assert all(f.endswith(".py") for f in files)


def _copy_package(tmp_path: Path) -> Path:
    src = Path(cowrite.__file__).resolve().parent
    dest = tmp_path / "cowrite"
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("*.so", "__pycache__", "*.sha256"))
    return dest


@pytest.mark.parametrize("stamp", [None, "0" * 64, "garbage\x00\n"])
def test_stale_or_garbage_extensions_are_never_loaded(tmp_path: Path, stamp: str | None) -> None:
    """An extension module beside a source it was not built from (no stamp, a stamp of other
    sources, a garbage stamp) is bypassed: here a garbage ``.so`` that would fail to load."""
    package = _copy_package(tmp_path)
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    (package / "engine" / f"sequence{suffix}").write_bytes(b"\x7fELF not a library")
    if stamp is not None:
        (package / "engine" / native_mod.NATIVE_STAMP).write_text(stamp)
    out = _python(
        "import cowrite.engine as e, cowrite.engine.sequence as s;"
        "d = e.Document(1); t = d.text('t'); t.insert(0, 'ok');"
        "print(e.engine_build()); print(s.__file__); print(str(t))",
        {"PYTHONPATH": str(tmp_path), "COWRITE_ENGINE": ""},
        cwd=tmp_path,
    )
    build, file, text = out.splitlines()
    assert build == "pure Python (the compiled modules are stale: rerun scripts/build-native)"
    assert file.endswith(".py") and file.startswith(str(tmp_path))
    assert text == "ok"


def test_without_extensions_the_build_is_pure(tmp_path: Path) -> None:
    _copy_package(tmp_path)
    out = _python(
        "import cowrite.engine as e; print(e.engine_build())",
        {"PYTHONPATH": str(tmp_path), "COWRITE_ENGINE": ""},
        cwd=tmp_path,
    )
    assert out == "pure Python"


SESSION = """
import hashlib, random
from cowrite.engine import Document, history
rng = random.Random(7)
docs = [Document(r + 1) for r in range(3)]
seen = []
for step in range(1500):
    if step % 100 == 0:
        seen.append(dict(docs[0].version))
    d = docs[rng.randrange(3)]
    t = d.text("t")
    n = len(str(t))
    if n and rng.random() < 0.3:
        p = rng.randrange(n)
        d.text("t").delete(p, min(n - p, rng.randrange(1, 4)))
    else:
        t.insert(rng.randrange(n + 1), rng.choice(["a", "bc", "\u00e9", "\U0001f600x"]))
    if step % 50 == 49:
        a, b = rng.sample(docs, 2)
        b.merge(a.delta_since(b.version), changes=False)
for d in docs:
    for o in docs:
        o.merge(d.encode_state(), changes=False)
state = docs[0].encode_state()
loaded = Document.load(state, 9)
out = [state, loaded.encode_state(), loaded.delta_since({}), str(loaded.text("t")).encode()]
past = Document.load(state, 10)  # history reads of a loaded document (its first index build)
out += [repr(history.value_at(past, v)).encode() for v in seen]
for d in history.diff(past, seen[3], seen[9], authored=True):
    spans = [(s.kind, s.count, s.content, s.replica, s.seq) for s in d.spans or []]
    out.append(repr((d.node, d.delta, spans)).encode())
print(hashlib.sha256(b"|".join(out)).hexdigest())
"""


@needs_compiled
def test_both_builds_give_the_same_bytes() -> None:
    compiled = _python(SESSION, {})
    pure = _python(SESSION, {"COWRITE_ENGINE": "pure"})
    assert compiled == pure
    assert len(compiled) == 64


@needs_compiled
@pytest.mark.slow
def test_property_suites_pass_on_the_pure_build() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *PROPERTY_SUITES],
        env={**os.environ, "COWRITE_ENGINE": "pure"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_a_document_round_trips_on_this_build() -> None:
    rng = random.Random(3)
    doc = Document(1)
    text = doc.text("t")
    for _ in range(300):
        text.insert(rng.randrange(len(str(text)) + 1), "xy")
    again = Document.load(doc.encode_state(), 2)
    assert str(again.text("t")) == str(text)
    assert (
        hashlib.sha256(again.encode_state()).digest() == hashlib.sha256(doc.encode_state()).digest()
    )
