"""The control-plane view of a loaded pipeline: objects by their BMv2 JSON names."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import NotFound

if TYPE_CHECKING:
    from .action_profiles import ActionProfile
    from .externs import CounterArray, MeterArray, RegisterArray
    from .parser import ParseValueSet
    from .pre import Pre
    from .tables import TableState

T = TypeVar("T")


def _get(kind: str, objs: dict[str, T], name: str) -> T:
    o = objs.get(name)
    if o is None:
        close = difflib.get_close_matches(name, list(objs), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise NotFound(f"no {kind} named '{name}'{hint}")
    return o


class PipelineState:
    """Tables, action profiles, registers, counters, meters, value sets and the PRE."""

    def __init__(
        self,
        tables: dict[str, TableState],
        profiles: dict[str, ActionProfile],
        registers: dict[str, RegisterArray],
        counters: dict[str, CounterArray],
        meters: dict[str, MeterArray],
        pre: Pre,
        value_sets: dict[str, ParseValueSet],
        digests: dict[int, str],
    ) -> None:
        self._tables = tables
        self._profiles = profiles
        self._registers = registers
        self._counters = counters
        self._meters = meters
        self.pre = pre
        self._vsets = value_sets
        self._digests = digests

    def table(self, name: str) -> TableState:
        return _get("table", self._tables, name)

    def action_profile(self, name: str) -> ActionProfile:
        return _get("action profile", self._profiles, name)

    def register(self, name: str) -> RegisterArray:
        return _get("register", self._registers, name)

    def counter(self, name: str) -> CounterArray:
        return _get("counter", self._counters, name)

    def meter(self, name: str) -> MeterArray:
        return _get("meter", self._meters, name)

    def value_set(self, name: str) -> ParseValueSet:
        return _get("parser value set", self._vsets, name)

    def names(self) -> dict[str, list[str]]:
        """Which objects exist, by kind."""
        return {
            "tables": sorted(self._tables),
            "action_profiles": sorted(self._profiles),
            "registers": sorted(self._registers),
            "counters": sorted(self._counters),
            "meters": sorted(self._meters),
            "digests": sorted(self._digests.values()),
            "value_sets": sorted(self._vsets),
        }

    def describe(self) -> dict[str, Any]:
        return self.names()
