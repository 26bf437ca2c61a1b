"""A bounded lib0 codec: the integer, string and byte-array encodings of the Yjs wire protocols.

Every integer is a ``varUint`` (7 bits per byte, least significant first, high bit = more bytes);
``varString`` is a varUint byte length + UTF-8; ``varByteArray`` is a varUint length + bytes.

Contract for callers: a :class:`Decoder` over untrusted bytes raises only :class:`YjsProtocolError`
(truncated input, a length larger than what is left, an over-long varint, invalid UTF-8) and never
allocates more than the input it was given (lengths are checked against the bytes present before
anything is sliced).
"""

from __future__ import annotations

# lib0's readVarUint rejects integers beyond JavaScript's safe range; so do we.
MAX_SAFE_INTEGER = (1 << 53) - 1
# 53 bits need 8 varint bytes (7 bits each).
MAX_VARUINT_BYTES = 8


class YjsProtocolError(Exception):
    """A frame, message or update that cannot be accepted.

    ``code`` is a stable machine-readable word (``truncated``, ``varint_too_long``, ``bad_length``,
    ``invalid_utf8``, ``trailing_bytes``, ``unknown_type``, ``frame_too_large``, ``invalid_update``,
    ``invalid_awareness``, ``limit``...); ``reason`` is for humans and logs.
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class Decoder:
    """Reads lib0 values from ``data`` starting at ``pos``; see the module contract."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = bytes(data)
        self.pos = pos

    def remaining(self) -> int:
        """Bytes not yet read."""
        return len(self.data) - self.pos

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def expect_end(self, what: str = "message") -> None:
        """Raise ``trailing_bytes`` unless everything was read."""
        if not self.at_end():
            raise YjsProtocolError("trailing_bytes", f"{self.remaining()} bytes after the {what}")

    def read_u8(self) -> int:
        if self.pos >= len(self.data):
            raise YjsProtocolError("truncated", "expected one more byte")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def read_var_uint(
        self, max_bytes: int = MAX_VARUINT_BYTES, max_value: int = MAX_SAFE_INTEGER
    ) -> int:
        """A varUint of at most ``max_bytes`` bytes and at most ``max_value`` (default 2**53 - 1:
        lib0's limit; Yrs client ids and clocks inside updates may use ``max_bytes=10,
        max_value=2**64 - 1``)."""
        data = self.data
        pos = self.pos
        if pos < len(data) and data[pos] < 0x80:  # one byte: most lengths, types and counts
            self.pos = pos + 1
            return data[pos]  # max_value is never below 127
        value = 0
        shift = 0
        for count in range(max_bytes):
            if self.pos >= len(data):
                raise YjsProtocolError("truncated", "varUint runs past the end")
            byte = data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                if count > 0 and byte == 0:
                    # lib0 never writes a trailing zero group; accepting it would give one value
                    # several encodings, which nothing legitimate needs.
                    raise YjsProtocolError("varint_too_long", "varUint with a trailing zero byte")
                if value > max_value:
                    raise YjsProtocolError("varint_too_long", f"varUint beyond {max_value}")
                return value
            shift += 7
        raise YjsProtocolError("varint_too_long", f"varUint longer than {max_bytes} bytes")

    def read_length(self, what: str) -> int:
        """A varUint length that must fit in what is left of the input."""
        n = self.read_var_uint()
        if n > self.remaining():
            raise YjsProtocolError(
                "bad_length", f"{what} claims {n} bytes, {self.remaining()} are left"
            )
        return n

    def read_var_bytes(self) -> bytes:
        """A varByteArray (its length is checked before slicing)."""
        n = self.read_length("byte array")
        start = self.pos
        self.pos += n
        return self.data[start : self.pos]

    def read_var_string(self, max_bytes: int | None = None) -> str:
        """A varString: strict UTF-8 (lone surrogates and overlong forms are refused)."""
        n = self.read_length("string")
        if max_bytes is not None and n > max_bytes:
            raise YjsProtocolError("limit", f"string of {n} bytes (limit {max_bytes})")
        start = self.pos
        self.pos += n
        try:
            return self.data[start : self.pos].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise YjsProtocolError("invalid_utf8", f"string is not UTF-8 ({exc.reason})") from None

    def read_rest(self) -> bytes:
        """Everything not yet read."""
        rest = self.data[self.pos :]
        self.pos = len(self.data)
        return rest


class Encoder:
    """Writes lib0 values; :meth:`to_bytes` returns the frame."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def write_u8(self, value: int) -> Encoder:
        self._buf.append(value & 0xFF)
        return self

    def write_var_uint(self, value: int) -> Encoder:
        write_var_uint(self._buf, value)
        return self

    def write_var_string(self, value: str) -> Encoder:
        data = value.encode("utf-8")
        write_var_uint(self._buf, len(data))
        self._buf += data
        return self

    def write_var_bytes(self, value: bytes) -> Encoder:
        write_var_uint(self._buf, len(value))
        self._buf += value
        return self

    def write_raw(self, value: bytes) -> Encoder:
        self._buf += value
        return self

    def to_bytes(self) -> bytes:
        return bytes(self._buf)


def write_var_uint(buf: bytearray, value: int) -> None:
    """Append ``value`` (0 <= value < 2**64) as a varUint."""
    if 0 <= value < 0x80:
        buf.append(value)
        return
    if value < 0 or value >= 1 << 64:
        raise ValueError(f"varUint out of range: {value}")
    while value >= 0x80:
        buf.append((value & 0x7F) | 0x80)
        value >>= 7
    buf.append(value)


def encode_var_uint(value: int) -> bytes:
    buf = bytearray()
    write_var_uint(buf, value)
    return bytes(buf)
