"""``cowrite serve``'s garbage-collector policy (in a subprocess: it changes the whole process)."""

from __future__ import annotations

import subprocess
import sys

from cowrite.server.gcpolicy import FULL_COLLECTION_EVERY, YOUNG_COLLECTION_EVERY


def test_the_policy_freezes_startup_objects_and_makes_collections_rare() -> None:
    code = (
        "import gc\n"
        "from cowrite.server.gcpolicy import tune_for_latency\n"
        "before = gc.get_threshold()\n"
        "tune_for_latency()\n"
        "after = gc.get_threshold()\n"
        "assert gc.get_freeze_count() > 1000, gc.get_freeze_count()\n"
        "assert after[1] == before[1], (before, after)\n"
        "print(after[0], after[2])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    young, full = (int(x) for x in out.stdout.split())
    assert (young, full) == (YOUNG_COLLECTION_EVERY, FULL_COLLECTION_EVERY)
