"""Per-header-type extract (bytes -> PHV slots) and emit (PHV slots -> bytes) functions.

Fixed-size header types get generated code: one `int.from_bytes` and a shift
and mask per field. Header types with a varbit field use a generic path.
"""

from __future__ import annotations

from collections.abc import Callable

from .codegen import Namespace
from .errors import PipelineLoadError
from .model import HeaderType
from .runtime import ParserErr

Extract = Callable[[list[int], int, bytes, int, int], int]  # (f, base, data, pos, err) -> used
Emit = Callable[[list[int], int], bytes]  # (f, base) -> bytes


def _field_offsets(ht: HeaderType, vl_bits: int) -> list[tuple[int, int, int, bool]]:
    """(index, shift, width, signed) of each field, shifts counted from the LSB."""
    widths = [vl_bits if i == ht.vl_index else w for i, (_, w, _) in enumerate(ht.fields)]
    total = sum(widths)
    out = []
    pos = total
    for i, (_, _, s) in enumerate(ht.fields):
        pos -= widths[i]
        out.append((i, pos, widths[i], s))
    return out


class HeaderCodec:
    """Extract and emit functions for one header type."""

    def __init__(self, ht: HeaderType, ns: Namespace) -> None:
        self.ht = ht
        bits = ht.fixed_bits
        if ht.vl_index is None and bits % 8:
            # metadata types may be of any width; only packet headers must be whole bytes
            self.nbytes = -1
        else:
            self.nbytes = bits // 8
        self.extract: Extract
        self.emit: Emit
        if ht.vl_index is None and self.nbytes >= 0:
            self.extract, self.emit = self._generate(ns)
        else:
            self.extract = self._extract_vl_unusable
            self.emit = self._emit_generic

    def _generate(self, ns: Namespace) -> tuple[Extract, Emit]:
        n = self.nbytes
        body = [
            f"if len(d) - pos < {n}: raise ParserErr(err)",
            f"v = int.from_bytes(d[pos:pos + {n}], 'big')",
        ]
        parts = []
        for i, shift, w, s in _field_offsets(self.ht, 0):
            if w == 0:
                body.append(f"f[b + {i + 1}] = 0")
                continue
            m = (1 << w) - 1
            val = f"(v >> {shift}) & {m}" if shift else f"v & {m}"
            body.append(f"f[b + {i + 1}] = _sgn({val}, {w})" if s else f"f[b + {i + 1}] = {val}")
            parts.append(
                f"((f[b + {i + 1}] & {m}) << {shift})" if shift else f"(f[b + {i + 1}] & {m})"
            )
        body += ["f[b] = 1", f"return {n}"]
        ext = ns.compile_function("extract", "f, b, d, pos, err", body, f"extract {self.ht.name}")
        joined = " | ".join(parts) if parts else "0"
        emit = ns.compile_function(
            "emit", "f, b", [f"return ({joined}).to_bytes({n}, 'big')"], f"emit {self.ht.name}"
        )
        return ext, emit

    def extract_vl(self, f: list[int], b: int, d: bytes, pos: int, nbits: int, err: int) -> int:
        """Extract a header whose varbit field is `nbits` wide; return bytes consumed."""
        n = (self.ht.fixed_bits + nbits) // 8
        if len(d) - pos < n:
            raise ParserErr(err)
        v = int.from_bytes(d[pos : pos + n], "big")
        for i, shift, w, s in _field_offsets(self.ht, nbits):
            x = (v >> shift) & ((1 << w) - 1) if w else 0
            if s and w:
                x -= (x >> (w - 1)) << w
            f[b + 1 + i] = x
        f[b + 1 + len(self.ht.fields)] = nbits
        f[b] = 1
        return n

    def vl_bits(self, f: list[int], b: int) -> int:
        if self.ht.vl_index is None:
            return 0
        return f[b + 1 + len(self.ht.fields)]

    def size(self, f: list[int], b: int) -> int:
        """Bytes this header occupies in the packet right now."""
        return (self.ht.fixed_bits + self.vl_bits(f, b)) // 8

    def _emit_generic(self, f: list[int], b: int) -> bytes:
        vl = self.vl_bits(f, b)
        total = self.ht.fixed_bits + vl
        v = 0
        for i, shift, w, _ in _field_offsets(self.ht, vl):
            if w:
                v |= (f[b + 1 + i] & ((1 << w) - 1)) << shift
        if total % 8:
            raise PipelineLoadError(f"header type {self.ht.name} is not a whole number of bytes")
        return v.to_bytes(total // 8, "big")

    def _extract_vl_unusable(self, f: list[int], b: int, d: bytes, pos: int, err: int) -> int:
        if self.ht.vl_index is not None:
            # a plain extract of a varbit header extracts the varbit field as empty
            return self.extract_vl(f, b, d, pos, 0, err)
        raise PipelineLoadError(f"header type {self.ht.name} is not a whole number of bytes")


def stack_push(f: list[int], bases: tuple[int, ...], w: int, nxt: int, num: int, hdr: bool) -> None:
    """BMv2's P4_16 `push_front(num)`: elements swap places, so those pushed off the end
    come round to the front with their bits, then the first `num` are marked invalid.

    `hdr` False is a header-union stack, where BMv2 marks nothing invalid (its
    HeaderUnion::mark_invalid does nothing): the elements just rotate."""
    size = len(bases)
    if num <= 0 or size == 0:
        return
    f[nxt] = min(size, f[nxt] + num)
    for i in range(size - 1, num - 1, -1):
        a, b = bases[i], bases[i - num]
        f[a : a + w], f[b : b + w] = f[b : b + w], f[a : a + w]
    if hdr:
        for i in range(min(size, num)):
            f[bases[i]] = 0


def stack_pop(f: list[int], bases: tuple[int, ...], w: int, nxt: int, num: int, hdr: bool) -> None:
    """BMv2's P4_16 `pop_front(num)`: swaps down by `num`, the last `num` marked invalid
    (headers) or left as they are (header unions, as `stack_push` says)."""
    size = len(bases)
    if num <= 0 or size == 0:
        return
    f[nxt] -= min(f[nxt], num)
    kept = size - num if num < size else 0
    for i in range(kept):
        a, b = bases[i], bases[i + num]
        f[a : a + w], f[b : b + w] = f[b : b + w], f[a : a + w]
    if hdr:
        for i in range(kept, size):
            f[bases[i]] = 0
