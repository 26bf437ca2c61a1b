"""A long load lets other threads run (``engine/threads.py``): it calls ``pace`` every
``PACE_EVERY`` items, and ``pace`` drops the interpreter lock once it has been held ``SLICE_S``.
The load is checked on the pure-Python build, whose module globals a test can replace (the
compiled modules resolve theirs once); no assertion here depends on how fast the machine is."""

from __future__ import annotations

import gc
import subprocess
import sys
import time

from cowrite.engine import collector_paused, observe_holds, thaw_frozen, threads

CODE = """
import random
from cowrite.engine import Document, engine_build
from cowrite.engine import state_load
from cowrite.engine.threads import PACE_EVERY
assert engine_build().startswith("pure"), engine_build()
from cowrite.engine import load_passes
paces = []
drops = []
state_load.pace = load_passes.pace = lambda: paces.append(1)
state_load.let_others_run = lambda: drops.append(1)
doc = Document(replica=1)
text = doc.text("t")
rng = random.Random(3)
n = 40 * PACE_EVERY
for i in range(n):  # inserts at random places: one item each
    text.insert(rng.randint(0, len(text)), "ab")
data = doc.encode_state()
loaded = Document.load(data, None)
assert str(loaded.text("t")) == str(text)
print(n, len(paces), len(drops))
"""


def test_loading_many_items_paces_every_few_items() -> None:
    env = {"COWRITE_ENGINE": "pure", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    items, paces, drops = map(int, done.stdout.split()[-3:])
    # each pass over the items (decode, index, sort, check the origins) paces every
    # PACE_EVERY items, so a pass longer than that never runs without a chance to drop
    assert paces >= 4 * items // threads.PACE_EVERY
    assert drops >= 2  # and between the phases


BUILD = """
import random
from cowrite.engine import Document, engine_build
from cowrite.engine import runs, sequence, tree
assert engine_build().startswith("pure"), engine_build()
calls = {"tree": 0, "index": 0, "value": 0}
def counter(name):
    def pace():
        calls[name] += 1
    return pace
tree.pace, runs.pace, sequence.pace = counter("tree"), counter("index"), counter("value")
doc = Document(replica=1)
text = doc.text("t")
rng = random.Random(5)
for i in range(6000):  # one item each
    text.insert(rng.randint(0, len(text)), "ab")
loaded = Document.load(doc.encode_state(), None)
seq = loaded.sequence(loaded.text("t").id)
leaves = 0
leaf = seq.first
while leaf is not None:
    leaves += 1
    leaf = leaf.next
built = dict(calls)
assert seq.value() == str(text) and calls["value"] == 0  # not paced unless asked
assert seq.value(paced=True) == str(text)
print(leaves, built["tree"], built["index"], calls["value"])
"""


def test_the_tree_the_id_index_and_a_paced_read_offer_the_lock() -> None:
    env = {"COWRITE_ENGINE": "pure", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", BUILD], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    leaves, tree, index, value = map(int, done.stdout.split()[-4:])
    assert leaves > 10
    assert tree >= leaves  # per leaf built (and per node)
    assert index >= 6000 // 256  # per block of the id index
    assert value >= leaves  # per leaf read


def test_pace_drops_the_lock_once_the_slice_is_spent() -> None:
    holds: list[float] = []
    with observe_holds(holds.append):
        threads.start_slice()
        deadline = time.perf_counter() + threads.SLICE_S
        while time.perf_counter() < deadline:  # the slice spent, on the CPU
            pass
        threads.pace()
        assert len(holds) == 1
        assert holds[0] >= 0  # the thread's CPU time in that slice
    threads.let_others_run()  # nobody observes now
    assert len(holds) == 1


def test_collector_paused_freezes_what_the_load_built_until_thawed() -> None:
    thaw_frozen()
    enabled = gc.isenabled()
    gc.enable()
    interval = sys.getswitchinterval()
    try:
        with collector_paused():
            with collector_paused():  # nested (two loads at once): one pause
                assert not gc.isenabled()
            assert not gc.isenabled()
            assert sys.getswitchinterval() <= threads.LOAD_SWITCH_INTERVAL_S
            built = [[] for _ in range(1000)]
        assert gc.isenabled()
        assert sys.getswitchinterval() == interval
        assert gc.get_freeze_count() >= len(built)
        thaw_frozen()
        assert gc.get_freeze_count() == 0
    finally:
        thaw_frozen()
        if not enabled:
            gc.disable()
