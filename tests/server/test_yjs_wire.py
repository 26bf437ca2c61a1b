"""yjs_wire: what the endpoints read of a frame before its session does (the budget's message
type and the Hocuspocus address), on real frames and on garbage."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cowrite.server.yjs_wire import address_of, message_type, peek
from cowrite.yjs import messages as m
from cowrite.yjs.lib0 import Decoder, YjsProtocolError


def test_real_frames_of_both_dialects() -> None:
    update = m.encode_ywebsocket(m.YSync(m.SyncUpdate(b"\x00\x00")))
    awareness = m.encode_ywebsocket(m.YAwareness(b"\x00"))
    assert peek(update, "y-websocket") == (0, "")
    assert peek(awareness, "y-websocket") == (1, "")
    h_update = m.encode_hocuspocus(m.HSync("doc\x00s1", m.SyncUpdate(b"\x00\x00")))
    token = m.encode_hocuspocus(m.HAuthToken("doc", "t"))
    assert peek(h_update, "hocuspocus") == (0, "doc\x00s1")
    assert peek(token, "hocuspocus") == (2, "doc")
    assert peek(m.PING_FRAME, "hocuspocus") == (None, None)  # no address: replies go at once
    assert peek(m.encode_hocuspocus(m.HSync("é" * 600, m.SyncUpdate(b""))), "hocuspocus") == (
        None,
        None,
    )  # an address over 1 kB is unreadable here (the session refuses the frame)


@given(st.binary(max_size=64), st.sampled_from(["y-websocket", "hocuspocus"]))
def test_garbage_is_read_without_raising_and_as_the_separate_readers_read_it(
    frame: bytes, dialect: str
) -> None:
    kind, address = peek(frame, dialect)  # type: ignore[arg-type]
    assert kind is None or isinstance(kind, int)
    assert kind == message_type(frame, dialect)  # type: ignore[arg-type]
    assert address == address_of(frame, dialect)  # type: ignore[arg-type]
    if dialect == "y-websocket":
        assert address == ""
    elif len(frame) == 1:
        assert address is None  # ping / pong
    else:
        try:
            expected: str | None = Decoder(frame).read_var_string(1024)
        except YjsProtocolError:
            expected = None
        assert address == expected
