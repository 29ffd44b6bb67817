"""Match-key values a control plane gives to `TableState.add` and friends."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Exact:
    """Exact match on `value`."""

    value: int


@dataclass(frozen=True, slots=True)
class Lpm:
    """Longest-prefix match: the top `prefix_len` bits of `value`."""

    value: int
    prefix_len: int


@dataclass(frozen=True, slots=True)
class Ternary:
    """Match where `(key & mask) == (value & mask)`."""

    value: int
    mask: int


@dataclass(frozen=True, slots=True)
class Range:
    """Match when `low <= key <= high`."""

    low: int
    high: int


@dataclass(frozen=True, slots=True)
class Optional_:
    """Optional match given a value: behaves as exact."""

    value: int


@dataclass(frozen=True, slots=True)
class Wildcard:
    """Optional (or ternary/range/lpm) match on anything."""


KeyValue = Exact | Lpm | Ternary | Range | Optional_ | Wildcard

__all__ = ["Exact", "KeyValue", "Lpm", "Optional_", "Range", "Ternary", "Wildcard"]
