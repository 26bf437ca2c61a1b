"""The asyncio shell's pure helpers: URLs and frame decoding."""

from __future__ import annotations

import logging

import pytest

from cowrite import protocol as p
from cowrite.client.connection import _decode, websocket_url


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("ws://127.0.0.1:8000", "ws://127.0.0.1:8000/ws"),
        ("ws://127.0.0.1:8000/", "ws://127.0.0.1:8000/ws"),
        ("http://example.com", "ws://example.com/ws"),
        ("https://example.com/collab/ws?x=1", "wss://example.com/collab/ws?x=1"),
        ("ws://h/ws", "ws://h/ws"),
    ],
)
def test_websocket_url_points_at_the_endpoint(given: str, expected: str) -> None:
    assert websocket_url(given) == expected


def test_a_frame_is_one_message_or_an_array_of_them() -> None:
    assert _decode('{"type":"ping","nonce":1}') == [p.Ping(nonce=1)]
    batch = b' [{"type":"ping","nonce":2},{"type":"resync","doc":"d","reason":"x"}]'
    assert _decode(batch) == [p.Ping(nonce=2), p.Resync(doc="d", reason="x")]


def test_unknown_server_messages_are_skipped_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="cowrite.client"):
        msgs = _decode('[{"type":"from_the_future"},{"type":"ping","nonce":3}]')
    assert msgs == [p.Ping(nonce=3)]
    assert "does not understand" in caplog.text
