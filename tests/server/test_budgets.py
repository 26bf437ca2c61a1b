"""A native connection's budgets (``budgets.Budgets``): each kind of message is charged to its
own bucket, an edit by its size, and a refusal says which budget is spent."""

from __future__ import annotations

from cowrite import protocol as p
from cowrite.server.budgets import Budgets
from cowrite.server.config import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _edit(n_ops: int) -> p.Edit:
    op = {"type": "seq", "node": "text:body", "edit": ["x"]}
    raw = {"type": "edit", "doc": "d", "edit_id": "e", "version": 0, "ops": [op] * n_ops}
    msg = p.decode_client(p.encoder.encode(raw), 1 << 20)
    assert isinstance(msg, p.Edit)
    return msg


def _budgets(**limits: float) -> tuple[Budgets, Clock]:
    clock = Clock()
    return Budgets(Settings(data=":memory:", **limits), clock), clock


def test_each_kind_has_its_own_budget() -> None:
    budgets, clock = _budgets(edits_per_second=1, edit_burst=2, joins_per_second=1, join_burst=1)
    assert budgets.refusal(_edit(1)) is None
    assert budgets.refusal(_edit(1)) is None
    assert budgets.refusal(_edit(1)) == "too many edits: slow down"
    join = p.Join(doc="d")
    assert budgets.refusal(join) is None  # edits spent, joins not
    assert budgets.refusal(join) == "too many joins: slow down"
    presence = p.SetPresence(doc="d", cursor=None)
    assert budgets.refusal(presence) is None
    assert budgets.refusal(p.Leave(doc="d")) is None  # free
    clock.now += 1.0
    assert budgets.refusal(_edit(1)) is None  # refilled


def test_a_large_edit_costs_more_and_a_divergence_report_costs_one() -> None:
    budgets, _ = _budgets(edits_per_second=1, edit_burst=12)
    assert budgets.refusal(_edit(100)) is None  # 1 + 100 // 10 = 11 of 12
    assert budgets.edit()  # the 12th
    assert not budgets.edit()
    assert budgets.refusal(_edit(1)) == "too many edits: slow down"


def test_presence_floods_are_refused() -> None:
    budgets, _ = _budgets(presence_per_second=1, presence_burst=3)
    presence = p.SetPresence(doc="d", cursor=None)
    answers = [budgets.refusal(presence) for _ in range(5)]
    assert answers == [None, None, None, "too many presence updates", "too many presence updates"]
