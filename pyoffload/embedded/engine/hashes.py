"""BMv2's hash algorithms, by their BMv2 JSON names, each bytes -> int.

The CRCs use BMv2's parameters (crc16 = CRC-16/ARC, crc32 = the Ethernet CRC,
the *_custom variants start with the same defaults), csum16 is the Internet
checksum, xor16 folds 16-bit words, identity reads the first 8 bytes.
"""

from __future__ import annotations

import random as _random
import zlib
from collections.abc import Callable

from .errors import UnsupportedConstruct

HashFn = Callable[[bytes], int]


def _reflect(v: int, n: int) -> int:
    r = 0
    for _ in range(n):
        r = (r << 1) | (v & 1)
        v >>= 1
    return r


def _crc_table(width: int, poly: int) -> list[int]:
    top = 1 << (width - 1)
    mask = (1 << width) - 1
    table = []
    for dividend in range(256):
        rem = dividend << (width - 8)
        for _ in range(8):
            rem = ((rem << 1) ^ poly) if rem & top else (rem << 1)
        table.append(rem & mask)
    return table


_REFLECT8 = [_reflect(i, 8) for i in range(256)]


def make_crc(width: int, poly: int, init: int, xor_out: int, refin: bool, refout: bool) -> HashFn:
    """A table-driven CRC with BMv2's `crc_custom` parameterisation."""
    table = _crc_table(width, poly)
    mask = (1 << width) - 1
    shift = width - 8

    def crc(buf: bytes) -> int:
        rem = init
        for byte in buf:
            b = _REFLECT8[byte] if refin else byte
            rem = (table[b ^ (rem >> shift)] ^ (rem << 8)) & mask
        return (_reflect(rem, width) if refout else rem) ^ xor_out

    return crc


def crc32(buf: bytes) -> int:
    return zlib.crc32(buf) & 0xFFFFFFFF


def csum16(buf: bytes) -> int:
    """Ones' complement of the ones' complement sum of 16-bit big-endian words."""
    if len(buf) & 1:
        buf = buf + b"\x00"
    s = sum(int.from_bytes(buf[i : i + 2], "big") for i in range(0, len(buf), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def _csum16_fast(buf: bytes) -> int:
    if len(buf) & 1:
        buf = buf + b"\x00"
    s = int.from_bytes(buf, "big")
    # the sum of 16-bit words modulo 0xffff equals the value modulo 0xffff
    if s == 0:
        return 0xFFFF
    r = s % 0xFFFF
    if r == 0:
        r = 0xFFFF
    return (~r) & 0xFFFF


def xor16(buf: bytes) -> int:
    v = 0
    n = len(buf)
    for i in range(0, n - n % 2, 2):
        v ^= (buf[i] << 8) | buf[i + 1]
    if n % 2:
        v ^= buf[n - 1] << 8
    return v


def xor32(buf: bytes) -> int:
    v = 0
    n = len(buf)
    full = n - n % 4
    for i in range(0, full, 4):
        v ^= int.from_bytes(buf[i : i + 4], "big")
    if n % 4:
        v ^= int.from_bytes(buf[full:], "big") << (8 * (4 - n % 4))
    return v


def identity(buf: bytes) -> int:
    return int.from_bytes(buf[:8], "big")


def _random_hash(buf: bytes) -> int:
    return _random.getrandbits(64)


class _RoundRobin:
    def __init__(self) -> None:
        self.idx = 0

    def __call__(self, buf: bytes) -> int:
        self.idx += 1
        return self.idx - 1


def make_hash(algo: str, ctx: str) -> HashFn:
    """The hash function BMv2 registers under `algo`; refuse names BMv2 does not know."""
    if algo == "crc16" or algo == "crc16_custom":
        return make_crc(16, 0x8005, 0, 0, True, True)
    if algo == "crc32":
        return crc32
    if algo == "crc32_custom":
        return make_crc(32, 0x04C11DB7, 0xFFFFFFFF, 0xFFFFFFFF, True, True)
    if algo == "crc8_custom":
        return make_crc(8, 0x07, 0, 0, False, False)
    if algo == "crcCCITT":
        return make_crc(16, 0x1021, 0xFFFF, 0, False, False)
    if algo in ("csum16", "cksum16"):
        return _csum16_fast
    if algo == "xor16":
        return xor16
    if algo == "xor32":
        return xor32
    if algo == "identity":
        return identity
    if algo == "random":
        return _random_hash
    if algo == "round_robin":
        return _RoundRobin()
    raise UnsupportedConstruct(f"hash algorithm '{algo}'", ctx)
