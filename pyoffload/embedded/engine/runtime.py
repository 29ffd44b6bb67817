"""Helpers that generated code calls: BMv2's arithmetic corner cases, packet errors."""

from __future__ import annotations

__all__ = [
    "ParserErr",
    "PipelineAbort",
    "_div",
    "_fmt_log",
    "_look",
    "_mod",
    "_sat",
    "_sgn",
    "_shl",
    "_stack_pop",
    "_stack_push",
    "_tcm",
    "_usat",
]

MAX_SHIFT = 4096


class ParserErr(Exception):
    """Raised inside a parser state to stop parsing with a P4 error code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class PipelineAbort(Exception):
    """A failed assert/assume: BMv2 aborts the switch; the engine drops the packet."""


def _sgn(v: int, w: int) -> int:
    """Truncate `v` to a `w`-bit two's complement value."""
    v &= (1 << w) - 1
    if v >> (w - 1):
        v -= 1 << w
    return v


def _tcm(v: int, w: int) -> int:
    """BMv2 `two_comp_mod`."""
    if w <= 0:
        return 0
    return _sgn(v, w)


def _usat(v: int, w: int) -> int:
    """Unsigned saturating cast to `w` bits."""
    hi = (1 << w) - 1
    return 0 if v < 0 else (hi if v > hi else v)


def _sat(v: int, w: int) -> int:
    """Signed saturating cast to `w` bits."""
    hi = (1 << (w - 1)) - 1
    lo = -(1 << (w - 1))
    return lo if v < lo else (hi if v > hi else v)


def _div(a: int, b: int) -> int:
    """Division truncating towards zero; a zero divisor gives 0 instead of a crash."""
    if b == 0:
        return 0
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _mod(a: int, b: int) -> int:
    """Remainder with the sign of the dividend (C semantics); zero divisor gives 0."""
    if b == 0:
        return 0
    return a - _div(a, b) * b


def _shl(a: int, b: int) -> int:
    """Left shift by a run-time amount, bounded so a huge amount cannot exhaust memory."""
    if b > MAX_SHIFT:
        b = MAX_SHIFT
    return a << b


def _look(d: bytes, pos: int, bitoff: int, width: int) -> int:
    """`width` bits at `bitoff` bits past byte `pos`; bytes past the end read as zero."""
    start = pos + (bitoff >> 3)
    nbytes = ((bitoff & 7) + width + 7) >> 3
    chunk = d[start : start + nbytes]
    if len(chunk) < nbytes:
        chunk = chunk + bytes(nbytes - len(chunk))
    v = int.from_bytes(chunk, "big")
    return (v >> (nbytes * 8 - (bitoff & 7) - width)) & ((1 << width) - 1)


def _stack_push(f: list[int], bases: tuple[int, ...], w: int, nxt: int, num: int) -> None:
    """P4_16 `push_front(num)`: shift elements up by `num`, the first `num` become invalid."""
    size = len(bases)
    if num <= 0 or size == 0:
        return
    f[nxt] = min(size, f[nxt] + num)
    for i in range(size - 1, num - 1, -1):
        s = bases[i - num]
        f[bases[i] : bases[i] + w] = f[s : s + w]
    for i in range(min(size, num)):
        f[bases[i]] = 0


def _stack_pop(f: list[int], bases: tuple[int, ...], w: int, nxt: int, num: int) -> None:
    """P4_16 `pop_front(num)`: shift elements down by `num`, the last `num` become invalid."""
    size = len(bases)
    if num <= 0 or size == 0:
        return
    f[nxt] -= min(f[nxt], num)
    i = 0
    while i < size - num:
        s = bases[i + num]
        f[bases[i] : bases[i] + w] = f[s : s + w]
        i += 1
    while i < size:
        f[bases[i]] = 0
        i += 1


def _fmt_log(fmt: str, args: tuple[int, ...]) -> str:
    """BMv2 log_msg: each `{}` in `fmt` is replaced by the next argument."""
    parts = fmt.split("{}")
    out = [parts[0]]
    for i, rest in enumerate(parts[1:]):
        out.append(str(args[i]) if i < len(args) else "{}")
        out.append(rest)
    return "".join(out)
