"""lib0 codec and the two wire dialects: round trips, and every malformed input refused with
YjsProtocolError only."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cowrite.yjs import messages as m
from cowrite.yjs.lib0 import MAX_SAFE_INTEGER, Decoder, Encoder, YjsProtocolError, encode_var_uint


@given(st.integers(min_value=0, max_value=MAX_SAFE_INTEGER))
def test_var_uint_round_trip(n: int) -> None:
    data = encode_var_uint(n)
    dec = Decoder(data)
    assert dec.read_var_uint() == n
    assert dec.at_end()


def test_var_uint_known_encodings() -> None:
    # Values written by lib0's writeVarUint.
    assert encode_var_uint(0) == b"\x00"
    assert encode_var_uint(127) == b"\x7f"
    assert encode_var_uint(128) == b"\x80\x01"
    assert encode_var_uint(300) == b"\xac\x02"
    assert encode_var_uint(MAX_SAFE_INTEGER) == b"\xff\xff\xff\xff\xff\xff\xff\x0f"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "truncated"),
        (b"\x80", "truncated"),
        (b"\xff\xff", "truncated"),
        (b"\xff" * 8 + b"\x01", "varint_too_long"),
        (b"\xff\xff\xff\xff\xff\xff\xff\x10", "varint_too_long"),  # 2**53
        (b"\x80\x00", "varint_too_long"),  # a trailing zero group: never written by lib0
    ],
)
def test_var_uint_refusals(data: bytes, code: str) -> None:
    with pytest.raises(YjsProtocolError) as info:
        Decoder(data).read_var_uint()
    assert info.value.code == code


@given(st.text(st.characters(blacklist_categories=("Cs",))), st.binary())
def test_strings_and_bytes_round_trip(s: str, b: bytes) -> None:
    dec = Decoder(Encoder().write_var_string(s).write_var_bytes(b).to_bytes())
    assert dec.read_var_string() == s
    assert dec.read_var_bytes() == b
    dec.expect_end()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x05abc", "bad_length"),
        (b"\xff\xff\xff\xff\x0f", "bad_length"),  # 4 GiB claimed, nothing there
        (b"\x02\xc3\x28", "invalid_utf8"),
        (b"\x03\xed\xa0\x80", "invalid_utf8"),  # an encoded lone surrogate
        (b"\x02\xc0\x80", "invalid_utf8"),  # overlong NUL
    ],
)
def test_string_refusals(data: bytes, code: str) -> None:
    with pytest.raises(YjsProtocolError) as info:
        Decoder(data).read_var_string()
    assert info.value.code == code


_payload = st.binary(max_size=64)
_sync = st.one_of(
    st.builds(m.SyncStep1, _payload),
    st.builds(m.SyncStep2, _payload),
    st.builds(m.SyncUpdate, _payload),
)
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
_ymsg = st.one_of(
    st.builds(m.YSync, _sync),
    st.builds(m.YAwareness, _payload),
    st.just(m.YQueryAwareness()),
    st.builds(m.YPermissionDenied, _text),
)
_addr = _text
_hmsg = st.one_of(
    st.builds(m.HSync, _addr, _sync, st.booleans()),
    st.builds(m.HAwareness, _addr, _payload),
    st.builds(m.HAuthToken, _addr, _text, st.one_of(st.none(), _text)),
    st.builds(m.HAuthTokenRequest, _addr),
    st.builds(m.HPermissionDenied, _addr, _text),
    st.builds(m.HAuthenticated, _addr, st.sampled_from(["read-write", "readonly"])),
    st.builds(m.HQueryAwareness, _addr),
    st.builds(m.HStateless, _addr, _text, st.booleans()),
    st.builds(m.HClose, _addr, _text),
    st.builds(m.HSyncStatus, _addr, st.booleans()),
    st.just(m.HPing()),
    st.just(m.HPong()),
)


@given(_ymsg)
def test_ywebsocket_round_trip(msg: m.YWebsocketMessage) -> None:
    assert m.decode_ywebsocket(m.encode_ywebsocket(msg)) == msg


@given(_hmsg)
def test_hocuspocus_round_trip(msg: m.HocuspocusMessage) -> None:
    assert m.decode_hocuspocus(m.encode_hocuspocus(msg)) == msg


def test_known_frames() -> None:
    # y-protocols writeSyncStep1 of an empty doc: [0 sync, 0 step1, len 1, sv = 0 entries]
    assert m.encode_ywebsocket(m.YSync(m.SyncStep1(b"\x00"))) == b"\x00\x00\x01\x00"
    # Hocuspocus SyncStatus(true) for "doc"; Ping is one byte with no address.
    assert m.encode_hocuspocus(m.HSyncStatus("doc", True)) == b"\x03doc\x08\x01"
    assert m.encode_hocuspocus(m.HPing()) == b"\x09"
    # The provider's close message has no reason; the server's has one.
    assert m.decode_hocuspocus(b"\x03doc\x07") == m.HClose("doc", "")
    # The provider's Auth/Token carries its version after the token.
    frame = b"\x03doc\x02\x00\x03tok\x054.8.0"
    assert m.decode_hocuspocus(frame) == m.HAuthToken("doc", "tok", "4.8.0")
    assert m.document_name("doc\0session-1") == "doc"


@pytest.mark.parametrize(
    "frame",
    [
        b"\x04",  # unknown y-websocket type
        b"\x00\x03\x00",  # unknown sync type
        b"\x00\x00\x05ab",  # lying length
        b"\x00\x00\x01\x00\x00",  # trailing byte
        b"\x02\x01\x00",  # auth with an unknown sub type
        b"",
    ],
)
def test_ywebsocket_refusals(frame: bytes) -> None:
    with pytest.raises(YjsProtocolError):
        m.decode_ywebsocket(frame)


@pytest.mark.parametrize(
    "frame",
    [
        b"\x03doc\x0b",  # type 11
        b"\x03doc\x08\x02",  # sync status 2
        b"\x03doc\x02\x03",  # auth sub type 3
        b"\x03do",  # truncated address
        b"\x02\xc3\x28\x00",  # address is not UTF-8
        b"\x03doc\x03\x00",  # trailing byte after QueryAwareness
        b"\x0a\x0a",  # not a pong: a 10-byte address, truncated
    ],
)
def test_hocuspocus_refusals(frame: bytes) -> None:
    with pytest.raises(YjsProtocolError):
        m.decode_hocuspocus(frame)


def test_frame_size_limit_is_checked_first() -> None:
    frame = m.encode_ywebsocket(m.YSync(m.SyncUpdate(b"x" * 100)))
    with pytest.raises(YjsProtocolError) as info:
        m.decode_ywebsocket(frame, max_frame_bytes=50)
    assert info.value.code == "frame_too_large"
    with pytest.raises(YjsProtocolError) as info:
        m.decode_hocuspocus(b"\x03doc\x00" + frame[1:], max_frame_bytes=50)
    assert info.value.code == "frame_too_large"


@given(st.binary(max_size=300), st.text(max_size=40), st.booleans())
def test_per_update_frames_are_the_encoders_bytes(update: bytes, address: str, saved: bool) -> None:
    assert m.ywebsocket_update_frame(update) == m.encode_ywebsocket(m.YSync(m.SyncUpdate(update)))
    assert m.hocuspocus_update_frame(address, update) == m.encode_hocuspocus(
        m.HSync(address, m.SyncUpdate(update))
    )
    assert m.hocuspocus_sync_status_frame(address, saved) == m.encode_hocuspocus(
        m.HSyncStatus(address, saved)
    )


def _decoded(decode: Any, frame: bytes) -> Any:
    """What ``decode`` makes of ``frame``: the message, or the refusal's code."""
    try:
        return decode(frame)
    except YjsProtocolError as exc:
        return exc.code


_SHAPED = st.one_of(
    st.binary(max_size=40),
    # the shapes the fast paths read (a sync update, awareness), with any bytes around and in them
    st.builds(
        lambda head, n, body: head + bytes([n]) + body,
        st.sampled_from([b"\x00\x02", b"\x00\x01", b"\x01\x02", b"\x00", b"\x01"]),
        st.integers(0, 255),
        st.binary(max_size=140),
    ),
    st.builds(
        lambda address, head, n, body: bytes([len(address)]) + address + head + bytes([n]) + body,
        st.binary(max_size=8) | st.sampled_from([b"doc", "d\u00e9".encode(), b"\xff\xfe"]),
        st.sampled_from([b"\x00\x02", b"\x00\x01", b"\x01\x02", b"\x04\x02", b"\x01"]),
        st.integers(0, 255),
        st.binary(max_size=140),
    ),
)


@given(_SHAPED, st.integers(1, 4))
def test_the_keystroke_fast_paths_read_every_frame_as_the_decoder(
    frame: bytes, max_address: int
) -> None:
    ywebsocket = _decoded(m.decode_ywebsocket, frame)
    hocuspocus = _decoded(lambda f: m.decode_hocuspocus(f, max_address_bytes=max_address), frame)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(m, "_ywebsocket_update", lambda frame: None)
        patch.setattr(m, "_hocuspocus_update", lambda frame, limit: None)
        assert _decoded(m.decode_ywebsocket, frame) == ywebsocket
        slow = _decoded(lambda f: m.decode_hocuspocus(f, max_address_bytes=max_address), frame)
        assert slow == hocuspocus
