"""A long load lets other threads run (``engine/threads.py``): it offers the interpreter lock
every ``YIELD_EVERY`` items. Checked on the pure-Python build, whose module globals a test can
replace (the compiled modules resolve theirs once)."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import random
from cowrite.engine import Document, engine_build
from cowrite.engine import state_load
from cowrite.engine.threads import YIELD_EVERY
assert engine_build().startswith("pure"), engine_build()
calls = []
state_load.let_others_run = lambda: calls.append(1)
doc = Document(replica=1)
text = doc.text("t")
rng = random.Random(3)
for i in range(3 * YIELD_EVERY):  # inserts at random places: one item each
    text.insert(rng.randint(0, len(text)), "ab")
data = doc.encode_state()
loaded = Document.load(data, None)
assert str(loaded.text("t")) == str(text)
print(len(calls))
"""


def test_loading_many_items_offers_the_lock_to_other_threads() -> None:
    env = {"COWRITE_ENGINE": "pure", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) >= 3  # every YIELD_EVERY items, and between phases
