"""Ops waiting for their dependencies: a run that grew between two deltas is not lost."""

from __future__ import annotations

import itertools

from cowrite.engine.document import Document


def test_a_grown_run_waiting_beside_its_shorter_self_is_applied() -> None:
    a = Document(1, now_ms=lambda: 0)
    a.map("m").set("k", 0)
    d1 = a.delta_since({})
    v1 = a.version
    a.text("t").insert(0, "a")
    d2 = a.delta_since(v1)
    v2 = a.version
    a.text("t").insert(1, "a")  # extends the run of the first "a": the delta re-sends it whole
    d3 = a.delta_since(v2)
    for order in itertools.permutations([d1, d2, d3]):
        b = Document(2, now_ms=lambda: 0)
        for delta in order:
            b.merge(delta)
        assert b.to_json() == a.to_json(), order
        assert b.pending_ops == 0
        b.check_invariants()
