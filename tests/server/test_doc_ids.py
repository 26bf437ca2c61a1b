"""Document ids ``.`` and ``..`` name no document: URLs and paths give them a meaning of their own
(``/api/documents/..`` is the API root to any client that normalises paths)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cowrite.adapters.store.base import validate_doc_id


@pytest.mark.parametrize("doc", [".", ".."])
async def test_dot_ids_are_refused_everywhere(server: Any, raw: Any, doc: str) -> None:
    c = await raw(server.ws_url, "c")
    await c.send({"type": "join", "doc": doc, "create": True})
    err = await c.expect("error")
    assert err["code"] == "bad_message" and "doc" in err["message"]
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        r = await http.post("/api/documents", json={"id": doc})
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
        assert (await http.get("/api/documents")).json()["documents"] == []
    with pytest.raises(ValueError):
        validate_doc_id(doc)
    for fine in ("...", ".a", "a.", "a..b", "~", "-"):
        assert validate_doc_id(fine) == fine
