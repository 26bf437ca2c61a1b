"""Which build of the engine's hot modules runs: compiled by mypyc, or the pure-Python sources.

``scripts/build-native`` (optional: it needs a C compiler) compiles the modules named in
``COMPILED`` with mypyc into extension modules beside their sources. Python imports an extension
module before a ``.py`` of the same name, so once built they replace the pure code with no other
change; without the build (a fresh ``uv sync --frozen``, no compiler) the ``.py`` files run. Both
are the same source, so the pure code is the fallback and the reference the tests compare with.

This module runs first when ``cowrite.engine`` is imported and makes the pure sources win again
when the extensions must not be used:

- ``COWRITE_ENGINE=pure`` in the environment (the tests run the property suites both ways);
- the extensions are stale: the build records a digest of the sources it compiled
  (``NATIVE_STAMP``), and a source edited since then would otherwise be silently shadowed.

``engine_build()`` says which build is active (``cowrite --version``, the benchmark headers).
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

COMPILED = (
    "apply",
    "authorship",
    "codec",
    "decoding",
    "encoding",
    "history",
    "history_bulk",
    "load_passes",
    "oplog",
    "runs",
    "sequence",
    "state",
    "state_load",
    "tree",
)
"""The engine modules ``scripts/build-native`` compiles (profiles: the sequence, the id index,
the codec and the state/delta paths; see docs/architecture.md, "The compiled hot path")."""

ENV = "COWRITE_ENGINE"
NATIVE_STAMP = "native-build.sha256"
_HERE = Path(__file__).resolve().parent
_PACKAGE = __name__.rpartition(".")[0]


def source_digest() -> str:
    """SHA-256 over the compiled modules' sources, in ``COMPILED`` order (what the build
    writes to ``NATIVE_STAMP``)."""
    h = hashlib.sha256()
    for name in COMPILED:
        h.update(name.encode())
        h.update((_HERE / f"{name}.py").read_bytes())
    return h.hexdigest()


def _extensions() -> list[Path]:
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    return [_HERE / f"{n}{s}" for n in COMPILED for s in suffixes if (_HERE / f"{n}{s}").exists()]


class _PureFinder(importlib.abc.MetaPathFinder):
    """Finds the compiled modules' ``.py`` sources ahead of their extension modules."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != _PACKAGE or name not in COMPILED:
            return None
        return importlib.util.spec_from_file_location(fullname, _HERE / f"{name}.py")


def _choose() -> str:
    """Decide (once, before any compiled module is imported) and describe the build."""
    if not _extensions():
        return "pure Python"
    if os.environ.get(ENV, "") == "pure":
        reason = f"{ENV}=pure"
    else:
        try:
            stamp = (_HERE / NATIVE_STAMP).read_text(encoding="ascii").strip()
        except OSError:
            stamp = ""
        if stamp == source_digest():
            return "mypyc-compiled"
        reason = "the compiled modules are stale: rerun scripts/build-native"
    sys.meta_path.insert(0, _PureFinder())
    return f"pure Python ({reason})"


_BUILD = _choose()


def engine_build() -> str:
    """``"mypyc-compiled"`` or ``"pure Python"`` (with why, if extensions exist but are not
    used), as decided when the engine was first imported."""
    loaded = sys.modules.get(f"{_PACKAGE}.sequence")
    if _BUILD.startswith("mypyc") and loaded is not None:
        file = getattr(loaded, "__file__", "") or ""
        if file.endswith(".py"):  # pragma: no cover - imported before the decision
            return "pure Python"
    return _BUILD


__all__ = ["COMPILED", "ENV", "NATIVE_STAMP", "engine_build", "source_digest"]
