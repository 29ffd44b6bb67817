"""Matching a pushed P4Info to the BMv2 JSON it comes with.

BMv2's P4Runtime server (PI) checks nothing when a pipeline is pushed: when a
request names a P4Info id, it turns the id into the object's name and asks
BMv2 for the object of that name. p4c writes the P4Info from its front end and
the JSON after its mid end, so an object the mid end removes (a table in a
branch constant folding proved dead, p4c's "nested switch" shapes) is in the
P4Info only, and BMv2 accepts the pair; only requests naming that object fail
(UNKNOWN). We accept such pairs too and answer those requests as BMv2 does
(`EntityStore.absent_error`), but still refuse a pair that really differs
(BMv2 would take it and fail entity by entity): an object in both whose shape
disagrees, or P4Info objects missing while the JSON holds objects of the same
kind that no P4Info object names (a renamed or another program's object).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from .engine_api import PipelineStateLike
from .errors import StatusError, invalid
from .p4info import MatchType, P4InfoIndex, TableInfo

_MATCH_KINDS: dict[int, str] = {
    MatchType.EXACT: "exact",
    MatchType.LPM: "lpm",
    MatchType.TERNARY: "ternary",
    MatchType.RANGE: "range",
    MatchType.OPTIONAL: "optional",
}
_DIFFERENT = "P4Info and BMv2 JSON come from different programs"


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class _Sized(_Named, Protocol):
    @property
    def size(self) -> int: ...


class _Cells(Protocol):
    @property
    def size(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Absent:
    """A P4Info object the JSON does not have."""

    kind: str  # "table", "action profile", "counter", "meter", "register", "digest"
    name: str


def match_config(index: P4InfoIndex, state: PipelineStateLike) -> dict[int, Absent]:
    """The P4Info objects the JSON lacks, by P4Info id, or INVALID_ARGUMENT when the two
    really differ."""
    json_names = state.names()
    absent: dict[int, Absent] = {}
    kinds: list[tuple[str, str, Mapping[int, _Named], Callable[[str], bool]]] = [
        ("table", "tables", index.tables, _addressable_table(state)),
        ("action profile", "action_profiles", index.action_profiles, _always),
        ("counter", "counters", index.counters, _always),
        ("meter", "meters", index.meters, _always),
        ("register", "registers", index.registers, _always),
        ("digest", "digests", index.digests, _never),
    ]
    for kind, key, infos, addressable in kinds:
        known = set(json_names.get(key, ()))
        named = {info.name: ident for ident, info in infos.items()}
        missing = sorted(name for name in named if name not in known)
        if not missing:
            continue
        unclaimed = sorted(n for n in known - named.keys() if addressable(n))
        if unclaimed:
            raise invalid(
                f"P4Info {kind} {missing[0]!r} is not in p4_device_config, which has "
                f"{kind} {unclaimed[0]!r} that the P4Info does not name: {_DIFFERENT}"
            )
        for name in missing:
            absent[named[name]] = Absent(kind, name)
    for table in index.tables.values():
        if table.id not in absent:
            _check_table(index, table, state)
    sized: list[tuple[str, Mapping[int, _Sized], Callable[[str], _Cells]]] = [
        ("counter", index.counters, state.counter),
        ("meter", index.meters, state.meter),
        ("register", index.registers, state.register),
    ]
    for kind, infos, lookup in sized:
        for ident, obj in infos.items():
            if ident in absent:
                continue
            json_size = lookup(obj.name).size
            if obj.size != json_size:
                raise invalid(f"P4Info {kind} {obj.name!r} has {obj.size} cells, "
                              f"p4_device_config {json_size}: {_DIFFERENT}")
    return absent


def _always(name: str) -> bool:
    return True


def _never(name: str) -> bool:
    """Digests: p4c may name a learn list after its type (`tuple_0`) and the P4Info
    digest after the call (`digest_0`); BMv2 then never finds it, nor do we."""
    return False


def _addressable_table(state: PipelineStateLike) -> Callable[[str], bool]:
    """A JSON table a controller could write: it has a key and no const entries (p4c's
    own tables, `tbl_*` for statements and the table of a switch on an expression,
    have neither a key nor mutable entries, and are in no P4Info)."""

    def addressable(name: str) -> bool:
        table = state.table(name)
        return bool(table.key_fields) and not any(
            getattr(entry, "const", False) for entry in table.entries())

    return addressable


def _check_table(index: P4InfoIndex, info: TableInfo, state: PipelineStateLike) -> None:
    """The key and the actions of a table in both must agree, or no entry could be applied
    (p4c may write an `optional` field as `ternary` in the JSON)."""
    table = state.table(info.name)
    json_key: Sequence[tuple[str, str, int]] = table.key_fields
    p4info_key = [(f.name, _MATCH_KINDS.get(f.match_type, "?"), f.bitwidth)
                  for f in info.match_fields]
    translated = _translated_fields(index, info)
    if len(json_key) != len(p4info_key):
        raise invalid(f"P4Info table {info.name!r} has {len(p4info_key)} key fields, "
                      f"p4_device_config {len(json_key)}: {_DIFFERENT}")
    for (fname, kind, width), (_, json_kind, json_width) in zip(p4info_key, json_key,
                                                               strict=True):
        same_kind = kind == json_kind or (kind, json_kind) == ("optional", "ternary")
        if not same_kind or (width != json_width and fname not in translated):
            raise invalid(f"P4Info table {info.name!r}: key field {fname!r} is {kind} "
                          f"bit<{width}>, in p4_device_config {json_kind} bit<{json_width}>: "
                          f"{_DIFFERENT}")
    json_actions = set(table.action_names)
    for action_id in sorted(info.action_ids | info.default_action_ids):
        action = index.actions.get(action_id)
        if action is not None and action.name not in json_actions:
            raise invalid(f"P4Info table {info.name!r} has action {action.name!r}, its "
                          f"table in p4_device_config does not: {_DIFFERENT}")


def _translated_fields(index: P4InfoIndex, info: TableInfo) -> set[str]:
    """Key fields whose P4Info width is not the data plane's: a `@p4runtime_translation`
    type (the controller's width), an `error` (width 0 in the P4Info)."""
    for table in index.p4info.tables:
        if table.preamble.id == info.id:
            return {f.name for f in table.match_fields
                    if f.HasField("type_name") or f.bitwidth == 0}
    return set()


def absent_error(absent: Absent) -> StatusError:
    """BMv2's answer to a request naming an object p4c left out of the JSON."""
    return StatusError(2, f"{absent.kind} {absent.name!r} is in the P4Info but not in "
                          "p4_device_config (p4c removed it): UNKNOWN, as BMv2 answers")
