"""``benchmarks.fanout_cost``: both halves run and measure something (a smoke test: no timed
assertions)."""

from __future__ import annotations

import pytest

from benchmarks import fanout_cost


async def test_the_python_half_sends_through_the_real_connection_path() -> None:
    assert await fanout_cost._python(receivers=3, size=50, ticks=5) > 0


def test_the_write_half_writes_to_real_sockets_read_by_a_child() -> None:
    for threads in (False, True):
        assert fanout_cost._write(3, 50, ticks=3, gap_ms=0.0, threads=threads) >= 0


def test_main_prints_both(capsys: pytest.CaptureFixture[str]) -> None:
    assert fanout_cost.main(["--receivers", "2", "--ticks", "8", "--gap-ms", "0"]) == 0
    out = capsys.readouterr().out
    assert "python" in out and "socket write" in out
