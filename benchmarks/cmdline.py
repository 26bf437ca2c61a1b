"""Command-line handling shared by the load benchmarks (``benchmarks.server``,
``benchmarks.cluster``): comma-separated option values, ``--notes``, and the command a
report names so that the run can be reproduced.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence
from pathlib import Path


def comma_list(text: str) -> list[str]:
    """The non-empty items of ``a,b,c``."""
    return [item.strip() for item in text.split(",") if item.strip()]


def comma_ints(
    parser: argparse.ArgumentParser, option: str, text: str, *, least: int, too_few: str
) -> list[int]:
    """The integers of ``option``'s value ``1,2,3``; exits through ``parser.error`` unless
    there is one and each is at least ``least`` (``too_few`` says so)."""
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        parser.error(f"{option}: comma-separated integers")
    if not values or min(values) < least:
        parser.error(f"{option}: {too_few}")
    return values


def shown_command(
    prefix: str, args: Sequence[str], private: Sequence[str], flags: Sequence[str] = ()
) -> str:
    """The command that reproduces a run: ``prefix`` and ``args`` without the options that name
    local files (``private``, with their values) and the ``flags`` that only steer output."""
    shown: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a in private:
            skip = True
            continue
        if a in flags or a.startswith(tuple(f"{option}=" for option in private)):
            continue
        shown.append(a)
    return prefix + (" " + shlex.join(shown) if shown else "")


def read_notes(path: Path | None) -> str:
    """``--notes``: markdown appended to the section."""
    return path.read_text(encoding="utf-8") if path else ""
