"""Compile the engine's hot modules with mypyc (``scripts/build-native`` runs this; optional).

The extension modules land beside their sources in ``src/cowrite/engine/`` (plus one shared
runtime library in ``src/``), and ``cowrite.engine.native`` picks them up on the next import; the
build writes the digest of the sources it compiled (``NATIVE_STAMP``) last, so an interrupted
build or a later source edit leaves the pure-Python modules in charge. ``--clean`` removes the
build. Needs a C compiler and either setuptools or Python 3.11's stdlib distutils; exits 1
(the pure modules keep working) when it cannot build.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.machinery
import importlib.util
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
ENGINE = SRC / "cowrite" / "engine"
GROUP = "cowrite_engine_native"


def _native_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_cowrite_native_probe", ENGINE / "native.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "_PureFinder"]
    return module


def _built_files() -> list[Path]:
    """Every extension module in the engine package and the shared runtime: also one that an
    older build compiled from another list (left there, it would shadow its source)."""
    out: set[Path] = set()
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        out.update(ENGINE.glob(f"*{suffix}"))
        out.add(SRC / f"{GROUP}__mypyc{suffix}")
    return sorted(p for p in out if p.exists())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clean", action="store_true", help="remove the compiled modules")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args()
    native = _native_module()
    stamp = ENGINE / native.NATIVE_STAMP
    built = _built_files()
    fresh = stamp.exists() and stamp.read_text(encoding="ascii").strip() == native.source_digest()
    if fresh and len(built) == len(native.COMPILED) + 1 and not (args.clean or args.force):
        print("build-native: the compiled engine modules are up to date")
        return 0
    stamp.unlink(missing_ok=True)
    for path in _built_files():
        path.unlink()
    if args.clean:
        print("build-native: removed the compiled engine modules (pure Python now)")
        return 0
    digest = native.source_digest()
    try:
        importlib.import_module("setuptools")  # mypyc builds through it when it is imported
    except ImportError:
        if sys.version_info >= (3, 12):
            print("build-native: needs setuptools on Python 3.12+; staying pure Python")
            return 1
        import mypyc.build

        # mypycify patches a setuptools command unconditionally; without setuptools (plain
        # distutils, Python 3.11) there is nothing to patch
        setattr(mypyc.build, "_setuptools_patch_applied", True)  # noqa: B010
    warnings.simplefilter("ignore", DeprecationWarning)
    from distutils.core import setup  # setuptools' shim when setuptools is imported

    from mypyc.build import mypycify

    os.chdir(ROOT)
    paths = [f"src/cowrite/engine/{name}.py" for name in native.COMPILED]
    try:
        extensions = mypycify(paths, opt_level="3", group_name=GROUP, target_dir="build/native")
        setup(
            name="cowrite-engine-native",
            package_dir={"": "src"},
            ext_modules=extensions,
            script_args=["-q", "build_ext", "--inplace", "--build-temp", "build/native"],
        )
    except (SystemExit, Exception) as exc:  # a compiler error: the pure modules stay
        print(f"build-native: failed ({exc}); staying pure Python")
        for path in _built_files():
            path.unlink()
        return 1
    stamp.write_text(digest + "\n", encoding="ascii")
    print(f"build-native: compiled {', '.join(native.COMPILED)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
