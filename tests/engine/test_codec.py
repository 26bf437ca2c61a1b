"""The binary codec: round trips, compaction, and decoders that only ever raise DecodeError."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cowrite.engine.codec import (
    I64_MAX,
    I64_MIN,
    U64_MAX,
    Reader,
    Writer,
    compress,
    decompress,
    read_bool_rle,
    read_delta_rle,
    read_str_column,
    read_uint_rle,
    write_bool_rle,
    write_delta_rle,
    write_str_column,
    write_uint_rle,
)
from cowrite.engine.errors import DecodeError

# --------------------------------------------------------------------------------------------
# Strategies

U64_EDGES = [0, 1, 127, 128, 255, 16383, 16384, 2**32 - 1, 2**63 - 1, 2**63, U64_MAX]
I64_EDGES = [0, 1, -1, 63, -64, 64, -65, I64_MAX, I64_MIN, I64_MAX - 1, I64_MIN + 1]
STR_EDGES = ["", "a", "\ud800", "\udfff", "\ud83d\ude00", "😀", "👩‍👩‍👧", "\x00", "é", "\U0010ffff"]

u64s = st.integers(0, U64_MAX) | st.sampled_from(U64_EDGES)
i64s = st.integers(I64_MIN, I64_MAX) | st.sampled_from(I64_EDGES)
# st.characters() with no filters includes lone surrogates; mix in the edge cases explicitly.
texts = st.lists(st.characters() | st.sampled_from(STR_EDGES)).map("".join)


def runs_of(elements: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    """Lists with long runs of equal values as well as plain random lists."""
    runs = st.lists(st.tuples(elements, st.integers(1, 40)), max_size=12)
    return runs.map(lambda rs: [v for v, n in rs for _ in range(n)]) | st.lists(elements)


small_u64s = st.integers(0, 300) | u64s
uint_columns = runs_of(small_u64s)
int_columns = runs_of(st.integers(-300, 300) | i64s) | st.lists(
    st.integers(-5, 5), max_size=60
).map(lambda ds: [sum(ds[:i]) for i in range(len(ds))])
bool_columns = runs_of(st.booleans())
str_columns = runs_of(texts | st.sampled_from(STR_EDGES))


# --------------------------------------------------------------------------------------------
# Writer / Reader round trips


@given(u64s)
@example(0)
@example(2**63 - 1)
@example(U64_MAX)
def test_uint_round_trips_across_the_full_unsigned_64_bit_range(n: int) -> None:
    w = Writer()
    w.uint(n)
    r = Reader(w.getvalue())
    assert r.uint() == n
    r.expect_end()
    assert len(w) <= 10


@given(i64s)
@example(0)
@example(I64_MAX)
@example(I64_MIN)
def test_sint_round_trips_across_the_full_signed_64_bit_range(n: int) -> None:
    w = Writer()
    w.sint(n)
    r = Reader(w.getvalue())
    assert r.sint() == n
    assert r.at_end()


@given(st.binary())
def test_bytes_round_trip_with_a_length_prefix(b: bytes) -> None:
    w = Writer()
    w.bytes_(b)
    w.bytes_(bytearray(b))
    w.bytes_(memoryview(b))
    r = Reader(w.getvalue())
    assert [r.bytes_(), r.bytes_(), r.bytes_()] == [b, b, b]
    r.expect_end()


@given(texts)
@example("")
@example("\ud800")
@example("😀")
@example("\ud83d\ude00")
def test_str_round_trips_including_emoji_and_lone_surrogates(s: str) -> None:
    w = Writer()
    w.str_(s)
    r = Reader(w.getvalue())
    assert r.str_() == s
    r.expect_end()


@given(st.binary(), st.binary())
def test_raw_bytes_round_trip_without_a_length(a: bytes, b: bytes) -> None:
    w = Writer()
    w.raw(a)
    w.raw(b)
    assert len(w) == len(a) + len(b)
    r = Reader(memoryview(w.getvalue()))
    assert r.remaining() == len(a) + len(b)
    assert r.raw(len(a)) == a
    assert r.raw(len(b)) == b
    assert r.at_end()


def test_reader_accepts_bytes_bytearray_and_memoryview() -> None:
    w = Writer()
    w.uint(300)
    data = w.getvalue()
    for buf in (data, bytearray(data), memoryview(data)):
        assert Reader(buf).uint() == 300


def test_uint_uses_one_byte_below_128_and_ten_bytes_for_the_64_bit_maximum() -> None:
    for n, size in [(0, 1), (127, 1), (128, 2), (16383, 2), (16384, 3), (U64_MAX, 10)]:
        w = Writer()
        w.uint(n)
        assert len(w) == size, n


def test_writer_rejects_negative_and_over_64_bit_unsigned_values() -> None:
    w = Writer()
    with pytest.raises(ValueError):
        w.uint(-1)
    with pytest.raises(ValueError):
        w.uint(U64_MAX + 1)
    assert len(w) == 0


def test_writer_rejects_signed_values_outside_the_64_bit_range() -> None:
    w = Writer()
    with pytest.raises(ValueError):
        w.sint(I64_MAX + 1)
    with pytest.raises(ValueError):
        w.sint(I64_MIN - 1)
    assert len(w) == 0


def test_uint_above_max_value_is_a_decode_error() -> None:
    w = Writer()
    w.uint(1000)
    with pytest.raises(DecodeError):
        Reader(w.getvalue()).uint(max_value=999)
    assert Reader(w.getvalue()).uint(max_value=1000) == 1000


def test_varint_of_eleven_continuation_bytes_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        Reader(b"\x80" * 11 + b"\x00").uint()
    with pytest.raises(DecodeError):
        Reader(b"\xff" * 11).uint()
    with pytest.raises(DecodeError):
        Reader(b"\x80" * 10 + b"\x00").uint()


def test_tenth_varint_byte_carrying_more_than_64_bits_is_a_decode_error() -> None:
    assert Reader(b"\xff" * 9 + b"\x01").uint() == U64_MAX
    with pytest.raises(DecodeError):
        Reader(b"\xff" * 9 + b"\x02").uint()


def test_truncated_varint_is_a_decode_error() -> None:
    for data in (b"", b"\x80", b"\xff\xff"):
        with pytest.raises(DecodeError):
            Reader(data).uint()
        with pytest.raises(DecodeError):
            Reader(data).sint()


def test_length_prefix_beyond_the_remaining_bytes_is_a_decode_error() -> None:
    w = Writer()
    w.uint(2**60)
    w.raw(b"abc")
    with pytest.raises(DecodeError):
        Reader(w.getvalue()).bytes_()
    with pytest.raises(DecodeError):
        Reader(w.getvalue()).str_()


def test_bytes_and_str_longer_than_max_len_are_decode_errors() -> None:
    w = Writer()
    w.str_("hello")
    with pytest.raises(DecodeError):
        Reader(w.getvalue()).str_(max_len=4)
    with pytest.raises(DecodeError):
        Reader(w.getvalue()).bytes_(max_len=4)
    assert Reader(w.getvalue()).str_(max_len=5) == "hello"


def test_invalid_utf8_string_is_a_decode_error() -> None:
    for bad in (b"\xff", b"\xc3", b"\xe2\x82", b"\xc0\x80"):
        w = Writer()
        w.bytes_(bad)
        with pytest.raises(DecodeError):
            Reader(w.getvalue()).str_()


def test_raw_beyond_the_end_is_a_decode_error_and_negative_is_a_value_error() -> None:
    r = Reader(b"ab")
    with pytest.raises(DecodeError):
        r.raw(3)
    assert r.remaining() == 2
    with pytest.raises(ValueError) as info:
        r.raw(-1)
    assert not isinstance(info.value, DecodeError)


def test_expect_end_with_trailing_bytes_is_a_decode_error() -> None:
    r = Reader(b"\x01\x02")
    assert r.uint() == 1
    assert not r.at_end()
    with pytest.raises(DecodeError):
        r.expect_end()
    assert r.uint() == 2
    r.expect_end()


# --------------------------------------------------------------------------------------------
# count()


def test_count_claiming_2_to_the_60_items_is_a_decode_error() -> None:
    w = Writer()
    w.uint(2**60)
    w.raw(b"\x00" * 100)
    with pytest.raises(DecodeError):
        Reader(w.getvalue()).count()
    with pytest.raises(DecodeError):
        Reader(w.getvalue()).count(max_count=10**6, per_item_min_bytes=0)
    for read in (read_uint_rle, read_delta_rle, read_bool_rle, read_str_column):
        with pytest.raises(DecodeError):
            read(Reader(w.getvalue()), 10**6)


def test_count_above_the_remaining_bytes_is_a_decode_error() -> None:
    w = Writer()
    w.uint(4)
    w.raw(b"abc")
    with pytest.raises(DecodeError):
        Reader(w.getvalue()).count()
    w.raw(b"d")
    assert Reader(w.getvalue()).count() == 4


def test_count_scales_the_plausibility_check_by_bytes_per_item() -> None:
    w = Writer()
    w.uint(3)
    w.raw(b"\x00" * 8)
    with pytest.raises(DecodeError):
        Reader(w.getvalue()).count(per_item_min_bytes=3)
    assert Reader(w.getvalue()).count(per_item_min_bytes=2) == 3


def test_count_above_max_count_is_a_decode_error() -> None:
    w = Writer()
    w.uint(5)
    w.raw(b"\x00" * 10)
    with pytest.raises(DecodeError):
        Reader(w.getvalue()).count(max_count=4)
    assert Reader(w.getvalue()).count(max_count=5) == 5


def test_count_of_zero_byte_items_needs_an_explicit_max_count() -> None:
    w = Writer()
    w.uint(1000)
    with pytest.raises(ValueError) as info:
        Reader(w.getvalue()).count(per_item_min_bytes=0)
    assert not isinstance(info.value, DecodeError)
    assert Reader(w.getvalue()).count(max_count=1000, per_item_min_bytes=0) == 1000


# --------------------------------------------------------------------------------------------
# Columns: round trips


def _round_trip(
    write: Callable[[Writer, Any], None],
    read: Callable[[Reader, int], list[Any]],
    values: list[Any],
) -> bytes:
    w = Writer()
    write(w, values)
    w.uint(42)  # the column must stop exactly at its own end
    data = w.getvalue()
    r = Reader(data)
    assert read(r, len(values)) == values
    assert r.uint() == 42
    r.expect_end()
    return data


@given(uint_columns)
@example([])
@example([0, U64_MAX, 2**63 - 1])
@example([7, 7])
@example([1, 2, 2, 3, 3, 3])
def test_uint_rle_round_trips(values: list[int]) -> None:
    _round_trip(write_uint_rle, read_uint_rle, values)


@given(int_columns)
@example([])
@example([I64_MIN, I64_MAX, I64_MIN, 0, I64_MAX])
@example([I64_MAX, I64_MIN])
@example([5, 6, 7, 8])
def test_delta_rle_round_trips_including_deltas_that_wrap_64_bits(values: list[int]) -> None:
    _round_trip(write_delta_rle, read_delta_rle, values)


@given(bool_columns)
@example([])
@example([True])
@example([False])
@example([True, True, False])
def test_bool_rle_round_trips(values: list[bool]) -> None:
    _round_trip(write_bool_rle, read_bool_rle, values)


@given(str_columns)
@example([])
@example([""])
@example(["\ud800", "😀", "", "\udfff\ud800"])
@example(["\ud83d", "\ude00"])
def test_str_column_round_trips_including_emoji_and_lone_surrogates(values: list[str]) -> None:
    _round_trip(write_str_column, read_str_column, values)


def test_bool_rle_treats_truthy_values_as_true() -> None:
    w = Writer()
    write_bool_rle(w, [0, 1, 2, 0, ""])  # type: ignore[list-item]
    assert read_bool_rle(Reader(w.getvalue()), 5) == [False, True, True, False, False]


def test_column_writers_reject_out_of_range_values() -> None:
    with pytest.raises(ValueError):
        write_uint_rle(Writer(), [1, -1])
    with pytest.raises(ValueError):
        write_uint_rle(Writer(), [U64_MAX + 1])
    with pytest.raises(ValueError):
        write_delta_rle(Writer(), [0, I64_MAX + 1])
    with pytest.raises(ValueError):
        write_delta_rle(Writer(), [I64_MIN - 1])


# --------------------------------------------------------------------------------------------
# Columns: compaction


def _encoded_size(write: Callable[[Writer, Any], None], values: list[Any]) -> int:
    w = Writer()
    write(w, values)
    return len(w)


def test_ten_thousand_equal_values_rle_to_under_ten_bytes() -> None:
    assert _encoded_size(write_uint_rle, [7] * 10_000) < 10
    assert _encoded_size(write_uint_rle, [U64_MAX] * 10_000) < 20
    assert _encoded_size(write_delta_rle, [-123456] * 10_000) < 15


def test_counting_up_delta_rles_to_under_ten_bytes() -> None:
    assert _encoded_size(write_delta_rle, list(range(10_000))) < 10
    assert _encoded_size(write_delta_rle, [5, 6, 7, 8]) <= 5
    assert _encoded_size(write_delta_rle, list(range(10**12, 10**12 + 10_000))) < 16


def test_non_repeating_small_uints_cost_about_one_byte_each() -> None:
    values = [i % 100 for i in range(1000)]
    assert _encoded_size(write_uint_rle, values) <= 1000 + 6


def test_bool_runs_cost_a_byte_or_so_per_run() -> None:
    assert _encoded_size(write_bool_rle, [False] * 100_000) <= 6
    assert _encoded_size(write_bool_rle, [True] * 100_000) <= 7
    assert _encoded_size(write_bool_rle, ([True] * 100 + [False] * 100) * 50) < 110


def test_str_column_stores_equal_lengths_once() -> None:
    values = [f"k{i:04d}" for i in range(10_000)]
    blob = sum(len(s) for s in values)
    assert _encoded_size(write_str_column, values) < blob + 12


def test_hundred_thousand_element_columns_round_trip() -> None:
    n = 100_000
    _round_trip(write_uint_rle, read_uint_rle, [i * 7919 % 1000 for i in range(n)])
    _round_trip(write_delta_rle, read_delta_rle, [i * 3 - (i % 5) for i in range(n)])
    _round_trip(write_bool_rle, read_bool_rle, [i % 7 < 3 for i in range(n)])
    _round_trip(write_str_column, read_str_column, [chr(97 + i % 26) * (i % 4) for i in range(n)])


# --------------------------------------------------------------------------------------------
# Columns: hostile encodings


def test_column_longer_than_max_items_is_a_decode_error() -> None:
    cases: list[tuple[Callable[[Writer, Any], None], Callable[[Reader, int], Any], list[Any]]] = [
        (write_uint_rle, read_uint_rle, [1, 2, 3, 3, 3]),
        (write_delta_rle, read_delta_rle, [1, 2, 3, 4, 5]),
        (write_bool_rle, read_bool_rle, [True, False, False, True, True]),
        (write_str_column, read_str_column, ["a", "b", "", "c", "d"]),
    ]
    for write, read, values in cases:
        w = Writer()
        write(w, values)
        with pytest.raises(DecodeError):
            read(Reader(w.getvalue()), len(values) - 1)


def test_run_longer_than_the_column_is_a_decode_error() -> None:
    w = Writer()
    w.uint(5)  # five items ...
    w.uint((2**40 - 1) << 1)  # ... but a repeat run of 2**40 copies
    w.uint(9)
    with pytest.raises(DecodeError):
        read_uint_rle(Reader(w.getvalue()), 10**6)

    w = Writer()
    w.uint(5)
    w.uint(2**40)
    with pytest.raises(DecodeError):
        read_bool_rle(Reader(w.getvalue()), 10**6)


def test_literal_run_with_more_values_than_bytes_is_a_decode_error() -> None:
    w = Writer()
    w.uint(1000)
    w.uint(((1000 - 1) << 1) | 1)  # a literal run of 1000 values ...
    w.raw(b"\x01\x02")  # ... with two bytes behind it
    with pytest.raises(DecodeError):
        read_uint_rle(Reader(w.getvalue()), 1000)


def test_empty_bool_run_after_the_first_is_a_decode_error() -> None:
    w = Writer()
    for n in (3, 1, 0, 2):
        w.uint(n)
    with pytest.raises(DecodeError):
        read_bool_rle(Reader(w.getvalue()), 10)


def test_str_column_lengths_that_disagree_with_the_blob_are_a_decode_error() -> None:
    for lengths, blob in [([1, 1], "abc"), ([2, 2], "abc"), ([U64_MAX, 1], "ab"), ([1], "")]:
        w = Writer()
        write_uint_rle(w, lengths)
        w.bytes_(blob.encode())
        with pytest.raises(DecodeError):
            read_str_column(Reader(w.getvalue()), 10)


def test_str_column_with_invalid_utf8_is_a_decode_error() -> None:
    w = Writer()
    write_uint_rle(w, [1])
    w.bytes_(b"\xff")
    with pytest.raises(DecodeError):
        read_str_column(Reader(w.getvalue()), 10)


def test_hostile_delta_column_decodes_within_the_64_bit_range() -> None:
    w = Writer()
    write_uint_rle(w, [U64_MAX - 1] * 50)  # 50 deltas of I64_MAX each
    values = read_delta_rle(Reader(w.getvalue()), 50)
    assert all(I64_MIN <= v <= I64_MAX for v in values)


# --------------------------------------------------------------------------------------------
# Decoder fuzz: truncations, byte flips and garbage raise DecodeError and nothing else

Sample = tuple[int, int, bytes, str, list[int], list[int], list[bool], list[str]]

samples = st.tuples(
    u64s, i64s, st.binary(max_size=20), texts, uint_columns, int_columns, bool_columns, str_columns
)
MAX_ITEMS = 1000


def encode_sample(s: Sample) -> bytes:
    w = Writer()
    w.uint(s[0])
    w.sint(s[1])
    w.bytes_(s[2])
    w.str_(s[3])
    write_uint_rle(w, s[4])
    write_delta_rle(w, s[5])
    write_bool_rle(w, s[6])
    write_str_column(w, s[7])
    w.uint(len(s[7]))
    for x in s[7]:
        w.str_(x)
    return w.getvalue()


def decode_sample(data: bytes) -> tuple[Sample, list[str]]:
    r = Reader(data)
    out = (
        r.uint(),
        r.sint(),
        r.bytes_(),
        r.str_(),
        read_uint_rle(r, MAX_ITEMS),
        read_delta_rle(r, MAX_ITEMS),
        read_bool_rle(r, MAX_ITEMS),
        read_str_column(r, MAX_ITEMS),
    )
    strs = [r.str_() for _ in range(r.count())]
    r.expect_end()
    return out, strs


def decodes_or_raises_decode_error(decode: Callable[[bytes], object], data: bytes) -> None:
    """Anything but DecodeError propagates and fails the test."""
    with contextlib.suppress(DecodeError):
        decode(data)


@given(samples)
def test_composite_encoding_round_trips(s: Sample) -> None:
    assert decode_sample(encode_sample(s)) == (s, s[7])


@settings(deadline=None)
@given(samples)
def test_every_truncation_decodes_or_raises_decode_error(s: Sample) -> None:
    data = encode_sample(s)
    for i in range(len(data)):
        with pytest.raises(DecodeError):
            decode_sample(data[:i])  # expect_end makes every strict prefix invalid


@settings(deadline=None)
@given(samples, st.data())
def test_random_byte_flips_decode_or_raise_decode_error(s: Sample, data: st.DataObject) -> None:
    buf = bytearray(encode_sample(s))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(buf) - 1), st.integers(1, 255))))
    for pos, mask in flips:
        buf[pos] ^= mask
    decodes_or_raises_decode_error(decode_sample, bytes(buf))


COLUMN_DECODERS: list[Callable[[bytes], object]] = [
    lambda b: Reader(b).uint(),
    lambda b: Reader(b).sint(),
    lambda b: Reader(b).bytes_(),
    lambda b: Reader(b).str_(),
    lambda b: Reader(b).count(),
    lambda b: read_uint_rle(Reader(b), MAX_ITEMS),
    lambda b: read_delta_rle(Reader(b), MAX_ITEMS),
    lambda b: read_bool_rle(Reader(b), MAX_ITEMS),
    lambda b: read_str_column(Reader(b), MAX_ITEMS),
    lambda b: decompress(b, 10_000),
    decode_sample,
]


@settings(deadline=None)
@given(st.binary(max_size=300))
@example(b"\xff" * 64)
@example(b"\x80" * 64)
def test_random_garbage_decodes_or_raises_decode_error(data: bytes) -> None:
    for decode in COLUMN_DECODERS:
        decodes_or_raises_decode_error(decode, data)


@settings(deadline=None)
@given(st.binary(max_size=2000), st.data())
def test_corrupt_compressed_data_decodes_or_raises_decode_error(
    payload: bytes, data: st.DataObject
) -> None:
    packed = bytearray(compress(payload))
    for i in range(len(packed)):
        with pytest.raises(DecodeError):
            decompress(bytes(packed[:i]), len(payload))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(packed) - 1), st.integers(1, 255))))
    for pos, mask in flips:
        packed[pos] ^= mask
    decodes_or_raises_decode_error(lambda b: decompress(b, len(payload) + 100), bytes(packed))


# --------------------------------------------------------------------------------------------
# Compression


@given(st.binary(max_size=5000), st.integers(0, 9))
def test_compression_round_trips(payload: bytes, level: int) -> None:
    assert decompress(compress(payload, level), len(payload)) == payload


def test_decompress_limit_is_exact() -> None:
    payload = b"abc" * 1000
    assert decompress(compress(payload), 3000) == payload
    with pytest.raises(DecodeError, match="exceeds"):
        decompress(compress(payload), 2999)
    assert decompress(compress(b""), 0) == b""
    with pytest.raises(DecodeError):
        decompress(compress(b"x"), 0)


@pytest.mark.timeout(60)
def test_zip_bomb_is_a_decode_error_without_inflating_it() -> None:
    bomb = compress(b"\0" * 50_000_000)
    assert len(bomb) < 100_000
    start = time.perf_counter()
    with pytest.raises(DecodeError, match="exceeds"):
        decompress(bomb, max_output=1_000_000)
    assert time.perf_counter() - start < 2.0


def test_trailing_bytes_after_compressed_data_are_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        decompress(compress(b"hello") + b"\x00", 100)


def test_truncated_or_garbage_compressed_data_is_a_decode_error() -> None:
    packed = compress(b"hello world" * 100)
    for data in (b"", packed[:1], packed[:-1], packed[:10], b"not zlib at all"):
        with pytest.raises(DecodeError):
            decompress(data, 10_000)


def test_negative_max_output_is_a_value_error() -> None:
    with pytest.raises(ValueError) as info:
        decompress(compress(b""), -1)
    assert not isinstance(info.value, DecodeError)
