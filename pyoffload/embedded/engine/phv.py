"""PHVs recycled the way BMv2 recycles them, so invalid headers read what BMv2 reads.

BMv2 keeps a pool of PHVs per pipeline (last in, first out). A packet takes one
when it is created and gives it back when it is destroyed; giving it back only
marks every header invalid, empties varbit fields and rewinds the stacks. The
fields of headers keep their bits: a header the next packet does not extract
still holds what an earlier packet put there, and a program that reads it (or
emits a header it copied from it) sees those bits. Only metadata are zeroed, when
a packet enters the switch (`reset_metadata`); `setValid()` on an invalid header
zeroes that header. Copies (multicast, clones) take a PHV of their own and copy
the valid headers and the metadata into it (`copy_headers`), so their invalid
headers hold whatever that PHV last held.
"""

from __future__ import annotations

from .model import Layout


class PhvPool:
    """BMv2's PHV pool for one loaded pipeline (not thread-safe: `process` is not)."""

    def __init__(self, lay: Layout) -> None:
        self._init = lay.init
        self._free: list[list[int]] = []
        headers = list(lay.headers.values())
        self._meta = [(h.base + 1, h.base + h.nslots) for h in headers if h.metadata]
        self._zero = {hi - lo: [0] * (hi - lo) for lo, hi in self._meta}
        # what giving a PHV back clears: validity bits, varbit widths, stack indices
        clear = [h.base for h in headers if not h.metadata]
        clear += [h.vl_slot for h in headers if h.htype.vl_index is not None]
        self._next = [s.next_slot for s in lay.stacks.values()]
        self._next += [s.next_slot for s in lay.union_stacks.values()]
        self._clear = tuple(clear + self._next)
        # out-of-range stack indices select a scratch header: wholly cleared, so what a
        # program does with one never reaches a later packet (API.md)
        scratch = [s.scratch for s in lay.stacks.values()]
        scratch += [h for s in lay.union_stacks.values() for h in s.scratch]
        self._scratch = tuple((h.base, h.base + h.nslots, [0] * h.nslots) for h in scratch)
        self._copy = tuple((h.base, h.base + h.nslots, h.metadata) for h in headers)

    def get(self) -> list[int]:
        """A PHV as BMv2 hands one to a new packet: the last one given back, or a new one."""
        return self._free.pop() if self._free else list(self._init)

    def put(self, f: list[int]) -> None:
        """Give back the PHV of a packet that left the switch or was dropped."""
        for s in self._clear:
            f[s] = 0
        for lo, hi, zeros in self._scratch:
            f[lo:hi] = zeros
        self._free.append(f)

    def reset_metadata(self, f: list[int]) -> None:
        """Zero every metadata field (validity of metadata stays set)."""
        for lo, hi in self._meta:
            f[lo:hi] = self._zero[hi - lo]

    def copy_headers(self, dst: list[int], src: list[int]) -> None:
        """BMv2's PHV copy for packet copies: validity of every header, the fields of
        valid headers and metadata, the stacks' next indices; invalid headers of `dst`
        keep their own bits."""
        for lo, hi, meta in self._copy:
            if meta or src[lo]:
                dst[lo:hi] = src[lo:hi]
            else:
                dst[lo] = 0
        for s in self._next:
            dst[s] = src[s]

    def clear(self) -> None:
        self._free.clear()
