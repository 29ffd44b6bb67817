"""Bytestring codec: the spec's tables of valid and invalid encodings."""

from __future__ import annotations

import pytest
from finsy.proto import rpc_code

from pyoffload.embedded.p4runtime.codec import decode_int, decode_uint, encode_int, encode_uint
from pyoffload.embedded.p4runtime.errors import StatusError


@pytest.mark.parametrize(
    ("width", "data", "value"),
    [
        (8, b"\x63", 99),
        (16, b"\x00\x63", 99),
        (16, b"\x63", 99),
        (16, b"\x30\x64", 0x3064),
        (16, b"\x00\x30\x64", 0x3064),
        (12, b"\x00\x63", 99),
        (12, b"\x00\x00\x63", 99),
        (9, b"\x01\xff", 511),
        (48, b"\x00" * 6, 0),
    ],
)
def test_valid_unsigned(width: int, data: bytes, value: int) -> None:
    assert decode_uint(data, width, "f") == value


@pytest.mark.parametrize(
    ("width", "data"),
    [(8, b"\x01\x63"), (8, b""), (16, b"\x01\x00\x63"), (12, b"\x10\x63"),
     (12, b"\x01\x00\x63"), (12, b"\x00\x40\x63"), (9, b"\x02\x00")],
)
def test_invalid_unsigned_names_the_field(width: int, data: bytes) -> None:
    with pytest.raises(StatusError) as info:
        decode_uint(data, width, "table t: match field 'hdr.x'")
    assert info.value.code == rpc_code.INVALID_ARGUMENT
    assert "hdr.x" in info.value.message


@pytest.mark.parametrize(
    ("width", "data", "value"),
    [(8, b"\x63", 99), (8, b"\x9d", -99), (8, b"\xff\x9d", -99), (12, b"\xfd\x1d", -739),
     (16, b"\x00\x00", 0), (16, b"\x00", 0)],
)
def test_valid_signed(width: int, data: bytes, value: int) -> None:
    assert decode_int(data, width, "f") == value


@pytest.mark.parametrize(("width", "data"), [(8, b"\x00\x9d"), (12, b"\x8d\x1d"), (16, b"")])
def test_invalid_signed(width: int, data: bytes) -> None:
    with pytest.raises(StatusError):
        decode_int(data, width, "f")


def test_encoding_is_canonical() -> None:
    assert encode_uint(0) == b"\x00"
    assert encode_uint(99, 16) == b"\x63"
    assert encode_uint(0x3064) == b"\x30\x64"
    assert encode_uint(511, 9) == b"\x01\xff"
    assert encode_int(-99) == b"\x9d"
    assert encode_int(-739) == b"\xfd\x1d"
    assert encode_int(0) == b"\x00"
    assert encode_int(128) == b"\x00\x80"
    with pytest.raises(ValueError):
        encode_uint(512, 9)


@pytest.mark.parametrize("value", [0, 1, 255, 256, 2**47 + 5, 2**128 - 1])
def test_round_trip(value: int) -> None:
    assert decode_uint(encode_uint(value), 128, "f") == value
    assert decode_int(encode_int(-value), 130, "f") == -value
