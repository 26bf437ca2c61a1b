"""The `Room.edit` micro-benchmark: its edits, head and stale, all apply (none is refused) and
it reports every size and phase."""

from __future__ import annotations

import sys

import pytest

from benchmarks import room_edit


def test_room_edit_reports_every_size_and_phase(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["room_edit", "--sizes", "300,900", "--docs", "2", "--edits", "120", "--repeat", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    room_edit.main()
    out = capsys.readouterr().out
    for label in ("head µs", "stale µs", "300", "900", "digest", "plan", "delta", "checksum"):
        assert label in out
