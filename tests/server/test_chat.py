"""Chat over real WebSockets: history on join, live messages, editing and deleting one's own,
pagination, and text stored verbatim."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))  # protocol_clients.py, next to this file
from protocol_clients import ThinClient, running


async def _say(client: ThinClient, text: str) -> dict[str, Any]:
    await client.send({"type": "chat_send", "doc": client.doc, "text": text})
    return (await client.expect("chat", where=lambda m: m["message"]["text"] == text))["message"]


async def test_history_on_join_and_live_messages(server: Any) -> None:
    a = await ThinClient.connect(server.ws_url, "a", "room", user={"name": "Ada"})
    sent = [await _say(a, f"message {i}") for i in range(3)]
    assert [m["id"] for m in sent] == [1, 2, 3]
    assert sent[0]["author_name"] == "Ada" and sent[0]["author_id"] == a.welcome["user"]["id"]
    b = await ThinClient.connect(server.ws_url, "b", "room")
    assert [m["text"] for m in b.joined["chat"]] == ["message 0", "message 1", "message 2"]
    live = await _say(a, "live")
    got = await b.expect("chat")
    assert got["message"] == live and got["doc"] == "room"
    await a.close()
    await b.close()


async def test_edit_and_delete_own_messages_only(server: Any) -> None:
    a = await ThinClient.connect(server.ws_url, "a", "room")
    b = await ThinClient.connect(server.ws_url, "b", "room")
    mine = await _say(a, "typo")
    await b.expect("chat")
    await a.send({"type": "chat_edit", "doc": "room", "id": mine["id"], "text": "fixed"})
    edited = (await b.expect("chat"))["message"]
    assert edited["id"] == mine["id"] and edited["text"] == "fixed"
    assert edited["edited_ms"] >= mine["created_ms"]
    await b.send({"type": "chat_edit", "doc": "room", "id": mine["id"], "text": "hijack"})
    error = await b.expect("error")
    assert error["code"] == "forbidden" and error["doc"] == "room"
    await b.send({"type": "chat_delete", "doc": "room", "id": mine["id"]})
    assert (await b.expect("error"))["code"] == "forbidden"
    await b.send({"type": "chat_edit", "doc": "room", "id": 999, "text": "nothing"})
    assert (await b.expect("error"))["code"] == "not_found"
    await a.send({"type": "chat_delete", "doc": "room", "id": mine["id"]})
    deleted = (await b.expect("chat"))["message"]
    assert deleted["deleted"] is True and deleted["text"] == ""
    await a.send({"type": "chat_edit", "doc": "room", "id": mine["id"], "text": "undead"})
    assert (await a.expect("error"))["code"] == "not_found"
    c = await ThinClient.connect(server.ws_url, "c", "room")
    assert c.joined["chat"] == [deleted]  # history shows the gap
    for x in (a, b, c):
        await x.close()


async def test_without_auth_a_message_belongs_to_whoever_holds_the_key(server: Any) -> None:
    """Without auth, authorship is proven by the hello's ``key`` (never sent to anyone), not by the
    ``client_id`` every edit exposes: copying someone's client_id does not make you them."""
    key = "k" * 32
    a = await ThinClient.connect(server.ws_url, "a", "room", key=key)
    mine = await _say(a, "mine")
    assert mine["author_id"] == a.welcome["user"]["id"]
    assert mine["author_id"] != "a" and key not in mine["author_id"]
    for hello in ({}, {"key": "m" * 32}):  # a's client_id, without or with another key
        mallory = await ThinClient.connect(server.ws_url, "a", "room", **hello)
        assert mallory.welcome["user"]["id"] != mine["author_id"]
        await mallory.send({"type": "chat_edit", "doc": "room", "id": mine["id"], "text": "pwned"})
        assert (await mallory.expect("error"))["code"] == "forbidden"
        await mallory.send({"type": "chat_delete", "doc": "room", "id": mine["id"]})
        assert (await mallory.expect("error"))["code"] == "forbidden"
        await mallory.close()
    await a.close()
    again = await ThinClient.connect(server.ws_url, "a2", "room", key=key)  # a after a reload
    await again.send({"type": "chat_edit", "doc": "room", "id": mine["id"], "text": "still mine"})
    assert (await again.expect("chat"))["message"]["text"] == "still mine"
    await again.close()


async def test_history_pages_back_with_has_more(server: Any) -> None:
    a = await ThinClient.connect(server.ws_url, "a", "long")
    for i in range(7):
        await _say(a, f"m{i}")
    await a.send({"type": "chat_history", "doc": "long", "limit": 3})
    page = await a.expect("chat_page")
    assert [m["text"] for m in page["messages"]] == ["m6", "m5", "m4"]  # newest first
    assert page["has_more"] is True
    await a.send(
        {"type": "chat_history", "doc": "long", "limit": 3, "before": page["messages"][-1]["id"]}
    )
    page = await a.expect("chat_page")
    assert [m["text"] for m in page["messages"]] == ["m3", "m2", "m1"] and page["has_more"]
    await a.send(
        {"type": "chat_history", "doc": "long", "limit": 3, "before": page["messages"][-1]["id"]}
    )
    page = await a.expect("chat_page")
    assert [m["text"] for m in page["messages"]] == ["m0"] and page["has_more"] is False
    await a.send({"type": "chat_history", "doc": "long", "limit": 0})
    assert (await a.expect("error"))["code"] == "bad_message"
    await a.send({"type": "chat_history", "doc": "elsewhere"})
    assert (await a.expect("error"))["code"] == "not_joined"
    await a.close()


async def test_markup_is_stored_and_sent_verbatim(server: Any) -> None:
    a = await ThinClient.connect(server.ws_url, "a", "xss")
    b = await ThinClient.connect(server.ws_url, "b", "xss")
    text = '<script>alert("x")</script> <img src=x onerror=alert(1)> &amp; & "q" \'s\' 🙂'
    sent = await _say(a, text)
    assert sent["text"] == text
    assert (await b.expect("chat"))["message"]["text"] == text
    await b.send({"type": "chat_history", "doc": "xss"})
    assert (await b.expect("chat_page"))["messages"][0]["text"] == text
    c = await ThinClient.connect(server.ws_url, "c", "xss")
    assert c.joined["chat"][0]["text"] == text
    for x in (a, b, c):
        await x.close()


async def test_chat_counts_against_the_write_rate_limit(make_settings: Any) -> None:
    async with running(make_settings(edits_per_second=5, edit_burst=5)) as server:
        a = await ThinClient.connect(server.ws_url, "a", "flood")
        for i in range(12):
            await a.send({"type": "chat_send", "doc": "flood", "text": f"spam {i}"})
        await a.wait_for(lambda: len(a.errors) + sum(m["type"] == "chat" for m in a.inbox) == 12)
        assert {e["code"] for e in a.errors} == {"rate_limited"}
        assert 5 <= sum(m["type"] == "chat" for m in a.inbox) <= 7
        await a.close()
