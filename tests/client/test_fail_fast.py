"""The SDK fails at once, with the server's reason, when retrying cannot help: an invalid document
id, or a URL whose path is not the WebSocket endpoint (HTTP 403/404 at the handshake)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cowrite.client import ServerError, connect
from cowrite.server.config import Settings

sys.path.insert(0, str(Path(__file__).parent))  # test_e2e.py, next to this file
from test_e2e import Server, eventually

PATIENT = {"connect_timeout_s": 60.0, "backoff_base_s": 0.05, "backoff_max_s": 0.5}
"""A timeout far beyond the test's own: a session that retried would fail the test by timing out
(pytest-timeout), not with the error asserted."""

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    running = Server(Settings(data=str(tmp_path / "cowrite.db")))
    await running.start()
    yield running
    await running.stop()


@pytest.mark.parametrize("doc", ["has spaces", "..", "x" * 129, "ü"])
async def test_an_invalid_document_id_fails_with_the_servers_reason(
    server: Server, doc: str
) -> None:
    with pytest.raises(ServerError) as info:
        async with connect(server.url, doc=doc, **PATIENT):
            pass
    assert info.value.code.value == "bad_message"
    assert "doc" in info.value.message


@pytest.mark.parametrize("path", ["/wrong", "/api/ws", "/ws/extra"])
async def test_a_url_that_is_not_the_endpoint_fails_with_the_http_status(
    server: Server, path: str
) -> None:
    url = f"ws://127.0.0.1:{server.port}{path}"
    with pytest.raises(ConnectionError) as info:
        async with connect(url, doc="d", **PATIENT):
            pass
    text = str(info.value)
    assert "HTTP 403" in text and url in text and "/ws" in text
    assert "InvalidStatus" not in text and "Response(" not in text  # said, not a repr


async def test_a_key_keeps_chat_authorship_across_sessions(server: Server) -> None:
    """Without auth the SDK proves who wrote a message by its ``key``: a later session (another
    process, say) given the same key may edit it; one with another key may not."""
    async with connect(server.url, doc="k", key="a-long-enough-secret", **PATIENT) as first:
        await first.chat.send("typo")
        await eventually(lambda: bool(first.chat.messages))
        message = first.chat.messages[0]
    async with connect(server.url, doc="k", key="a-long-enough-secret", **PATIENT) as again:
        await again.chat.edit(message.id, "fixed")
        await eventually(lambda: any(m.text == "fixed" for m in again.chat.messages))
    errors: list[ServerError] = []
    async with connect(server.url, doc="k", key="somebody-else-entirely", **PATIENT) as other:
        other.on("error", errors.append)
        await other.chat.edit(message.id, "hijacked")
        await eventually(lambda: bool(errors))
    assert errors[0].code.value == "forbidden"
