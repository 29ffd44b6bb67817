"""Tuple-space search: the lookup structure of ternary/range/optional/mixed tables.

Packet classification by tuple-space search (Srinivasan, Suri, Varghese,
SIGCOMM 1999). Entries are grouped by their *shape*: per key field, the mask
the entry compares under (exact and optional fields: all ones or zero;
ternary: its mask; lpm: its prefix mask; range: all ones for a single value,
zero for the full range or a general range). Each shape has one dict from the
masked key to a bucket of entries, best first; a general range is checked
on the bucket's entries after the dict lookup of the other fields.

Order: an entry's ``rank`` is ``(-priority, seq)`` packed in one int, smaller
is better, so a larger priority wins and equal priorities keep the older entry
(the engine's documented tie rule). A lookup visits the shapes in order of
their best rank and stops as soon as the next shape's best rank cannot beat
the match found so far, so a table whose entries share a few shapes costs a
few dict lookups instead of a scan of every entry.

Why this algorithm: control-plane updates stay O(entries in the shape) with
no rebuild (unlike decision trees such as HiCuts/HyperCuts), lookups are
dict probes that Python runs in C, and the rule sets we carry (ACLs of
exact/ternary fields plus port ranges) have few shapes.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from typing import Any, Protocol

RANK_SHIFT = 64
"""rank = -priority << RANK_SHIFT + seq: sequence numbers stay below 2**64."""


def make_rank(priority: int, seq: int) -> int:
    """The packed ordering key: smaller wins (larger priority, then older entry)."""
    return (-priority << RANK_SHIFT) + seq


class TssEntry(Protocol):
    """What the classifier needs from an entry (tables.Entry has it)."""

    rank: int
    tkey: tuple[int, ...]
    granges: tuple[tuple[int, int, int], ...]
    shape: Any


def _key_maker(masks: tuple[int, ...], fulls: tuple[int, ...]) -> Callable[..., tuple[int, ...]]:
    """A function `k -> masked key` keeping only the fields the shape compares."""
    parts = []
    for i, (m, full) in enumerate(zip(masks, fulls, strict=True)):
        if m == 0:
            continue
        parts.append(f"k[{i}]" if m == full else f"k[{i}] & {m}")
    src = f"lambda k: ({', '.join(parts)}{',' if parts else ''})"
    # only ints computed here reach the source text
    fn: Callable[..., tuple[int, ...]] = eval(compile(src, "<tss-shape>", "eval"), {})
    return fn


class Shape:
    """One tuple of the tuple space: entries comparing the same fields under the same masks."""

    __slots__ = ("best", "buckets", "has_ranges", "id", "keyfn", "masks", "ranks")

    def __init__(self, ident: tuple[object, ...], masks: tuple[int, ...],
                 fulls: tuple[int, ...], has_ranges: bool) -> None:
        self.id = ident
        self.masks = masks
        self.keyfn = _key_maker(masks, fulls)
        self.has_ranges = has_ranges
        self.buckets: dict[tuple[int, ...], list[Any]] = {}
        self.ranks: list[int] = []  # sorted ranks of every entry of the shape
        self.best = 0  # == ranks[0]

    def masked(self, values: tuple[int, ...]) -> tuple[int, ...]:
        return self.keyfn(values)


class TupleSpace:
    """Shapes of a table's entries and the packet-path `lookup`."""

    def __init__(self, fulls: Iterable[int]) -> None:
        self.fulls = tuple(fulls)
        self.shapes: dict[tuple[object, ...], Shape] = {}
        self._order: list[Shape] | None = []
        self.lookup = self._make_lookup()

    # ---- maintenance --------------------------------------------------------
    def insert(self, e: Any, masks: tuple[int, ...], values: tuple[int, ...],
               granges: tuple[tuple[int, int, int], ...]) -> None:
        """Index `e` (its `rank` set) under `masks` (ternary/lpm/exact/single-range masks,
        zero where wildcard or general range) and `values` (already masked)."""
        ident = (masks, tuple(i for i, _, _ in granges))
        sh = self.shapes.get(ident)
        if sh is None:
            sh = self.shapes[ident] = Shape(ident, masks, self.fulls, bool(granges))
        e.shape = sh
        e.granges = granges
        e.tkey = tk = sh.keyfn(values)
        bucket = sh.buckets.get(tk)
        if bucket is None:
            sh.buckets[tk] = [e]
        else:
            bisect.insort(bucket, e, key=_rank_of)
        old = sh.ranks[0] if sh.ranks else None
        bisect.insort(sh.ranks, e.rank)
        if sh.ranks[0] != old:
            sh.best = sh.ranks[0]
            self._order = None

    def remove(self, e: Any) -> None:
        sh: Shape = e.shape
        bucket = sh.buckets[e.tkey]
        i = bisect.bisect_left(bucket, e.rank, key=_rank_of)
        assert bucket[i] is e
        del bucket[i]
        if not bucket:
            del sh.buckets[e.tkey]
        j = bisect.bisect_left(sh.ranks, e.rank)
        del sh.ranks[j]
        if j == 0:
            self._order = None
            if sh.ranks:
                sh.best = sh.ranks[0]
            else:
                del self.shapes[sh.id]
        e.shape = None

    def order(self) -> list[Shape]:
        """Shapes by best rank (rebuilt lazily after an update that changed it)."""
        o = self._order
        if o is None:
            o = self._order = sorted(self.shapes.values(), key=_best_of)
        return o

    # ---- packet path --------------------------------------------------------
    def _make_lookup(self) -> Callable[[tuple[int, ...]], Any]:
        order = self.order

        def lookup(k: tuple[int, ...]) -> Any:
            best = None
            best_rank = 0
            for sh in self._order or order():
                if best is not None and sh.best >= best_rank:
                    break
                bucket = sh.buckets.get(sh.keyfn(k))
                if bucket is None:
                    continue
                if not sh.has_ranges:
                    e = bucket[0]
                    if best is None or e.rank < best_rank:
                        best = e
                        best_rank = e.rank
                    continue
                for e in bucket:
                    if best is not None and e.rank >= best_rank:
                        break
                    for i, lo, hi in e.granges:
                        if not lo <= k[i] <= hi:
                            break
                    else:
                        best = e
                        best_rank = e.rank
                        break
            return best

        return lookup


def _rank_of(e: Any) -> int:
    r: int = e.rank
    return r


def _best_of(sh: Shape) -> int:
    return sh.best
