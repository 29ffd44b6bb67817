"""Unit tests of the engine's building blocks: hashes, arithmetic helpers, externs, PRE."""

from __future__ import annotations

import zlib

import pytest

from pyoffload.embedded.engine import InvalidValue, MeterConfig, NotFound
from pyoffload.embedded.engine.externs import (
    GREEN,
    RED,
    YELLOW,
    CounterArray,
    MeterArray,
    RegisterArray,
)
from pyoffload.embedded.engine.hashes import csum16, identity, make_hash, xor16
from pyoffload.embedded.engine.pre import Pre
from pyoffload.embedded.engine.runtime import _div, _fmt_log, _look, _mod, _sat, _sgn, _tcm, _usat

CHECK = b"123456789"


@pytest.mark.parametrize(
    ("algo", "expected"),
    [
        ("crc16", 0xBB3D),  # CRC-16/ARC
        ("crc16_custom", 0xBB3D),  # BMv2's default custom config is CRC-16/ARC too
        ("crc32", 0xCBF43926),
        ("crc32_custom", 0xCBF43926),
        ("crcCCITT", 0x29B1),
        ("xor16", 0x3132 ^ 0x3334 ^ 0x3536 ^ 0x3738 ^ 0x3900),
        ("identity", int.from_bytes(CHECK[:8], "big")),
    ],
)
def test_hash_check_values(algo: str, expected: int) -> None:
    assert make_hash(algo, "test")(CHECK) == expected


def test_csum16_fast_path_matches_reference() -> None:
    fast = make_hash("csum16", "test")
    for data in [b"", b"\x00", b"\xff\xff", b"\x00\x00\x00\x00", bytes(range(255)), CHECK]:
        assert fast(data) == csum16(data), data


def test_crc32_matches_zlib_on_odd_sizes() -> None:
    fn = make_hash("crc32", "t")
    for n in range(0, 40, 7):
        data = bytes(range(n))
        assert fn(data) == zlib.crc32(data)


def test_identity_and_xor_short_inputs() -> None:
    assert identity(b"\x01\x02") == 0x0102
    assert xor16(b"\xab") == 0xAB00


def test_unknown_hash_is_refused() -> None:
    from pyoffload.embedded.engine import UnsupportedConstruct

    with pytest.raises(UnsupportedConstruct, match="toeplitz"):
        make_hash("toeplitz", "calc x")


def test_arithmetic_helpers() -> None:
    assert _sgn(0xFF, 8) == -1
    assert _sgn(0x7F, 8) == 127
    assert _tcm(257, 8) == 1
    assert _tcm(-129, 8) == 127
    assert _usat(300, 8) == 255 and _usat(-3, 8) == 0
    assert _sat(200, 8) == 127 and _sat(-200, 8) == -128
    assert _div(7, 0) == 0 and _mod(7, 0) == 0
    assert _div(-7, 2) == -3 and _mod(-7, 2) == -1
    assert _look(b"\xab\xcd", 0, 4, 8) == 0xBC
    assert _look(b"\xab", 0, 0, 16) == 0xAB00  # past the end reads as zero
    assert _fmt_log("a={} b={}", (1, 2)) == "a=1 b=2"


def test_register_is_compact_and_truncates() -> None:
    r = RegisterArray("r", 1 << 20, 32)
    assert r.cells.itemsize * len(r.cells) <= 4 * (1 << 20)  # type: ignore[union-attr]
    r.put(5, (1 << 32) + 7)
    assert r.read(5) == 7
    r.put(1 << 20, 1)  # out of range on the packet path: ignored
    assert r.get(1 << 20) == 0
    with pytest.raises(InvalidValue, match="index"):
        r.read(1 << 20)
    with pytest.raises(InvalidValue, match="fit"):
        r.write(0, 1 << 32)
    wide = RegisterArray("w", 4, 128)
    wide.put(1, (1 << 127) | 5)
    assert wide.read(1) == (1 << 127) | 5


def test_counter_array() -> None:
    c = CounterArray("c", 4)
    c.count(1, 100)
    c.count(1, 50)
    c.count(9, 50)  # ignored
    assert c.read(1) == (150, 2)
    c.write(1, 0, 0)
    assert c.read(1) == (0, 0)


class FakeClock:
    def __init__(self) -> None:
        self.ns = 0

    def __call__(self) -> int:
        return self.ns


def test_meter_two_rate_three_colour_packets() -> None:
    clock = FakeClock()
    m = MeterArray("m", 2, True, clock, 0)
    assert m.execute(0, 100) == GREEN  # unconfigured: green
    # 1 packet/s committed with burst 2, 2 packets/s peak with burst 3
    m.set_config(0, MeterConfig(cir=1, cburst=2, pir=2, pburst=3))
    colors = [m.execute(0, 64) for _ in range(4)]
    assert colors == [GREEN, GREEN, YELLOW, RED]
    clock.ns += 1_000_000_000  # one second: +1 committed, +2 peak tokens
    assert [m.execute(0, 64) for _ in range(3)] == [GREEN, YELLOW, RED]
    assert m.get_config(0) == MeterConfig(1, 2, 2, 3)
    m.reset_config(0)
    assert m.execute(0, 64) == GREEN


def test_meter_bytes_and_validation() -> None:
    clock = FakeClock()
    m = MeterArray("m", 1, False, clock, 0)
    m.set_config(0, MeterConfig(cir=1000, cburst=1500, pir=2000, pburst=3000))
    assert m.execute(0, 1500) == GREEN
    assert m.execute(0, 1500) == YELLOW
    assert m.execute(0, 100) == RED
    with pytest.raises(InvalidValue, match="PIR"):
        m.set_config(0, MeterConfig(cir=10, cburst=1, pir=5, pburst=1))
    with pytest.raises(InvalidValue, match="index"):
        m.set_config(3, MeterConfig(1, 1, 1, 1))


def test_pre_groups_and_sessions() -> None:
    pre = Pre()
    pre.set_multicast_group(7, [(1, 0), (2, 5)])
    assert pre.multicast_group(7) == [(1, 0), (2, 5)]
    assert pre.replicate(8) == ()
    with pytest.raises(InvalidValue):
        pre.set_multicast_group(0, [])
    with pytest.raises(InvalidValue, match="twice"):
        pre.set_multicast_group(3, [(1, 0), (1, 0)])
    pre.set_clone_session(5, [(3, 1)], class_of_service=2, packet_length_bytes=64)
    assert pre.clone_session(5).replicas == ((3, 1),)
    pre.delete_clone_session(5)
    with pytest.raises(NotFound):
        pre.delete_clone_session(5)
