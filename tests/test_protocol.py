"""The wire protocol: validation on entry and the published schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cowrite import protocol as p

SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "protocol.schema.json"


def test_published_schema_matches_the_types() -> None:
    generated = json.loads(json.dumps(p.json_schema(), sort_keys=True))
    assert json.loads(SCHEMA.read_text()) == generated, (
        "run `cowrite schema --output docs/protocol.schema.json`"
    )


def test_valid_edit_decodes_to_typed_ops() -> None:
    msg = p.decode_client(
        b'{"type":"edit","doc":"d","edit_id":"1","version":3,'
        b'"ops":[{"type":"seq","node":"text:t","edit":[2,"x",-1]},{"type":"add","node":"counter:c","amount":2}]}',
        10_000,
    )
    assert isinstance(msg, p.Edit)
    assert isinstance(msg.ops[0], p.SeqEdit) and msg.ops[0].edit == [2, "x", -1]
    assert isinstance(msg.ops[1], p.CounterAdd)


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [
        (b"{not json", "malformed JSON"),
        (b'{"type":"nope"}', "type"),
        (b'{"type":"join"}', "doc"),
        (b'{"type":"join","doc":"d","extra":1}', "extra"),
        (b'{"type":"join","doc":"bad id!"}', "doc"),
        (b'{"type":"edit","doc":"d","edit_id":"1","version":-1,"ops":[]}', "version"),
        (b'{"type":"edit","doc":"d","edit_id":"1","version":0,"ops":[]}', "ops"),
        (b'{"type":"chat_send","doc":"d","text":""}', "text"),
        (b"[1,2,3]", "object"),
        # the inputs added for chat keys and divergence reports
        (b'{"type":"hello","client_id":"c","key":"short"}', "key"),
        (b'{"type":"hello","client_id":"c","key":"' + b"k" * 129 + b'"}', "key"),
        (b'{"type":"hello","client_id":"c","key":7}', "key"),
        (b'{"type":"diverged","doc":"d","version":-1,"node":"text:t"}', "version"),
        (b'{"type":"diverged","doc":"d","version":1}', "node"),
        (b'{"type":"diverged","doc":"..","version":1,"node":"text:t"}', "doc"),
    ],
)
def test_bad_frames_are_refused_with_a_precise_reason(frame: bytes, fragment: str) -> None:
    with pytest.raises(p.ProtocolError) as exc:
        p.decode_client(frame, 10_000)
    assert exc.value.code is p.ErrorCode.BAD_MESSAGE
    assert fragment in exc.value.message


def test_oversize_frame_is_too_large() -> None:
    with pytest.raises(p.ProtocolError) as exc:
        p.decode_client(b" " * 101, 100)
    assert exc.value.code is p.ErrorCode.TOO_LARGE
