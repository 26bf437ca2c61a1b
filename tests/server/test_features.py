"""The server's ``features`` message, right after ``welcome``: what it understands beyond the base
protocol (``revive``: docs/protocol.md T11 "Revivals"), so newer clients use it only here."""

from __future__ import annotations

from typing import Any

from cowrite import protocol as p
from tests.server.conftest import RawClient


async def test_features_follow_the_welcome_and_name_revive(server: Any) -> None:
    client = await RawClient.connect(server.ws_url, "c")  # took the welcome
    features = await client.expect("features")
    assert features["features"] == list(p.FEATURES)
    assert "revive" in features["features"]
    await client.close()
