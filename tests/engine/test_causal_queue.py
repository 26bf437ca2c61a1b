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
    a.text("t").insert(1, "a")  # extends the run of the first "a"
    d3 = a.delta_since(v1)  # the run, grown: same first id as in d2, longer
    assert len(d3) > len(d2)
    for order in itertools.permutations([d1, d2, d3]):  # d3 and d2 may both wait for d1
        b = Document(2, now_ms=lambda: 0)
        for delta in order:
            b.merge(delta)
        assert b.to_json() == a.to_json(), order
        assert b.pending_ops == 0
        b.check_invariants()


def test_a_delta_carries_only_the_new_part_of_a_grown_run() -> None:
    a = Document(1, now_ms=lambda: 0)
    a.text("t").insert(0, "abc")
    v = a.version
    a.text("t").insert(3, "def")  # the same run grows
    b = Document(2, now_ms=lambda: 0)
    b.merge(a.delta_since({}))
    from cowrite.engine.encoding import decode_ops

    (op,) = decode_ops(b, a.delta_since(v))
    assert op.content == "def"  # type: ignore[union-attr]
    b.merge(a.delta_since(v))
    assert b.to_json() == a.to_json()
