"""An index of a P4Info by id and by name.

The server resolves every id a request carries through this index once per
update, so lookups are plain dict accesses on pre-built, immutable records.
The engine speaks in P4 (BMv2 JSON) names, which p4c makes equal to the
P4Info names; the records keep both so the server never guesses.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from finsy.proto import p4i, p4t

from .errors import StatusError, invalid

MatchType = p4i.MatchField.MatchType


@dataclass(frozen=True, slots=True)
class MatchFieldInfo:
    """One key field of a table, in P4Info (= key) order."""

    id: int
    name: str
    bitwidth: int
    match_type: int  # p4i.MatchField.MatchType value
    position: int  # index in the table's key
    what: str  # "table: match field 'name'", for errors (built once, not per entry)


@dataclass(frozen=True, slots=True)
class ParamInfo:
    id: int
    name: str
    bitwidth: int
    position: int


@dataclass(frozen=True, slots=True)
class ActionInfo:
    id: int
    name: str
    params: tuple[ParamInfo, ...]
    params_by_id: Mapping[int, ParamInfo]


@dataclass(frozen=True, slots=True)
class TableInfo:
    id: int
    name: str
    match_fields: tuple[MatchFieldInfo, ...]
    fields_by_id: Mapping[int, MatchFieldInfo]
    action_ids: frozenset[int]
    """Actions allowed in entries (scope TABLE_AND_DEFAULT or TABLE_ONLY)."""
    default_action_ids: frozenset[int]
    """Actions allowed as the default action (TABLE_AND_DEFAULT or DEFAULT_ONLY)."""
    const_default_action_id: int
    implementation_id: int
    direct_counter_id: int
    direct_meter_id: int
    size: int
    supports_idle_timeout: bool
    is_const: bool
    needs_priority: bool
    """True when a key field is ternary, range or optional (entries need priority > 0)."""


@dataclass(frozen=True, slots=True)
class ActionProfileInfo:
    id: int
    name: str
    table_ids: frozenset[int]
    with_selector: bool
    size: int
    max_group_size: int
    weights_disallowed: bool


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """A counter, meter, direct counter or direct meter."""

    id: int
    name: str
    unit: int
    size: int
    direct_table_id: int = 0


@dataclass(frozen=True, slots=True)
class DataField:
    """One bitstring leaf of a P4Data value (register cell, digest member)."""

    name: str
    bitwidth: int
    signed: bool


@dataclass(frozen=True, slots=True)
class RegisterInfo:
    id: int
    name: str
    size: int
    data: DataField


@dataclass(frozen=True, slots=True)
class DigestInfo:
    id: int
    name: str
    fields: tuple[DataField, ...]
    is_struct: bool
    """True for a struct/tuple of members, False for a single bitstring."""


@dataclass(frozen=True, slots=True)
class PacketMetadataInfo:
    id: int
    name: str
    bitwidth: int


@dataclass(frozen=True, slots=True)
class ControllerHeaderInfo:
    """The layout of a `@controller_header` (packet_in or packet_out)."""

    id: int
    name: str
    fields: tuple[PacketMetadataInfo, ...]
    fields_by_id: Mapping[int, PacketMetadataInfo] = field(default_factory=dict)


_T = TypeVar("_T")


def _lookup(kind: str, by_id: Mapping[int, _T], ident: int) -> _T:
    try:
        return by_id[ident]
    except KeyError:
        raise invalid(f"unknown {kind} id {ident}") from None


def suggest(name: str, known: Iterable[str]) -> str:
    """A ' (did you mean X?)' hint for an unknown name, or ''."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class P4InfoIndex:
    """Immutable lookup tables built once per pipeline from a `p4i.P4Info`."""

    def __init__(self, p4info: p4i.P4Info) -> None:
        self.p4info = p4info
        self.actions: dict[int, ActionInfo] = {}
        for action in p4info.actions:
            params = tuple(
                ParamInfo(p.id, p.name, p.bitwidth, i) for i, p in enumerate(action.params)
            )
            self.actions[action.preamble.id] = ActionInfo(
                action.preamble.id, action.preamble.name, params, {p.id: p for p in params}
            )
        self.direct_counters = {
            c.preamble.id: ResourceInfo(c.preamble.id, c.preamble.name, c.spec.unit, 0,
                                        c.direct_table_id)
            for c in p4info.direct_counters
        }
        self.direct_meters = {
            m.preamble.id: ResourceInfo(m.preamble.id, m.preamble.name, m.spec.unit, 0,
                                        m.direct_table_id)
            for m in p4info.direct_meters
        }
        self.tables: dict[int, TableInfo] = {t.preamble.id: self._table(t) for t in p4info.tables}
        self.action_profiles = {
            p.preamble.id: ActionProfileInfo(
                p.preamble.id, p.preamble.name, frozenset(p.table_ids), p.with_selector,
                p.size, p.max_group_size, p.weights_disallowed,
            )
            for p in p4info.action_profiles
        }
        self.counters = {
            c.preamble.id: ResourceInfo(c.preamble.id, c.preamble.name, c.spec.unit, c.size)
            for c in p4info.counters
        }
        self.meters = {
            m.preamble.id: ResourceInfo(m.preamble.id, m.preamble.name, m.spec.unit, m.size)
            for m in p4info.meters
        }
        self.registers = {
            r.preamble.id: RegisterInfo(
                r.preamble.id, r.preamble.name, r.size,
                self._leaves(r.type_spec, r.preamble.name)[0],
            )
            for r in p4info.registers
        }
        self.digests = {
            d.preamble.id: DigestInfo(
                d.preamble.id, d.preamble.name, tuple(self._leaves(d.type_spec, d.preamble.name)),
                not d.type_spec.HasField("bitstring"),
            )
            for d in p4info.digests
        }
        self.controller_headers: dict[str, ControllerHeaderInfo] = {}
        for header in p4info.controller_packet_metadata:
            fields = tuple(PacketMetadataInfo(m.id, m.name, m.bitwidth) for m in header.metadata)
            self.controller_headers[header.preamble.name] = ControllerHeaderInfo(
                header.preamble.id, header.preamble.name, fields, {f.id: f for f in fields}
            )
        self.names: dict[str, int] = {}
        for group in (self.tables, self.actions, self.action_profiles, self.counters,
                      self.meters, self.direct_counters, self.direct_meters, self.registers,
                      self.digests):
            for ident, info in group.items():
                self.names[info.name] = ident

    def _table(self, table: p4i.Table) -> TableInfo:
        fields = tuple(
            MatchFieldInfo(f.id, f.name, f.bitwidth, f.match_type, i,
                           f"{table.preamble.name}: match field {f.name!r}")
            for i, f in enumerate(table.match_fields)
        )
        scope = p4i.ActionRef.Scope
        entry_actions = frozenset(
            a.id for a in table.action_refs if a.scope != scope.DEFAULT_ONLY
        )
        default_actions = frozenset(
            a.id for a in table.action_refs if a.scope != scope.TABLE_ONLY
        )
        counter_id = meter_id = 0
        for res_id in table.direct_resource_ids:
            if res_id in self.direct_counters:
                counter_id = res_id
            elif res_id in self.direct_meters:
                meter_id = res_id
        needs_priority = any(
            f.match_type in (MatchType.TERNARY, MatchType.RANGE, MatchType.OPTIONAL)
            for f in fields
        )
        return TableInfo(
            id=table.preamble.id,
            name=table.preamble.name,
            match_fields=fields,
            fields_by_id={f.id: f for f in fields},
            action_ids=entry_actions,
            default_action_ids=default_actions,
            const_default_action_id=table.const_default_action_id,
            implementation_id=table.implementation_id,
            direct_counter_id=counter_id,
            direct_meter_id=meter_id,
            size=table.size,
            supports_idle_timeout=(
                table.idle_timeout_behavior == p4i.Table.IdleTimeoutBehavior.NOTIFY_CONTROL
            ),
            is_const=table.is_const_table,
            needs_priority=needs_priority,
        )

    def _leaves(self, spec: p4t.P4DataTypeSpec, what: str) -> list[DataField]:
        """Flatten a register/digest type into its bitstring leaves, in order."""
        kind = spec.WhichOneof("type_spec")
        if kind == "bitstring":
            bs = spec.bitstring
            which = bs.WhichOneof("type_spec")
            if which == "bit":
                return [DataField(what, bs.bit.bitwidth, False)]
            if which == "int":
                return [DataField(what, bs.int.bitwidth, True)]
        elif kind == "bool":
            return [DataField(what, 1, False)]
        elif kind == "struct" or kind == "header":
            types = self.p4info.type_info
            named = spec.struct.name if kind == "struct" else spec.header.name
            if kind == "struct" and named in types.structs:
                out: list[DataField] = []
                for member in types.structs[named].members:
                    out.extend(self._leaves(member.type_spec, member.name))
                return out
            if kind == "header" and named in types.headers:
                return [
                    DataField(m.name, m.type_spec.bit.bitwidth, False)
                    if m.type_spec.HasField("bit")
                    else DataField(m.name, m.type_spec.int.bitwidth, True)
                    for m in types.headers[named].members
                ]
        elif kind == "tuple":
            out = []
            for i, element in enumerate(spec.tuple.members):
                out.extend(self._leaves(element, f"{what}[{i}]"))
            return out
        raise invalid(f"{what}: P4Info type {kind!r} is not supported by this target")

    # Lookups raising INVALID_ARGUMENT on unknown ids -------------------------

    def table(self, ident: int) -> TableInfo:
        return _lookup("table", self.tables, ident)

    def action(self, ident: int) -> ActionInfo:
        return _lookup("action", self.actions, ident)

    def action_profile(self, ident: int) -> ActionProfileInfo:
        return _lookup("action profile", self.action_profiles, ident)

    def counter(self, ident: int) -> ResourceInfo:
        return _lookup("counter", self.counters, ident)

    def meter(self, ident: int) -> ResourceInfo:
        return _lookup("meter", self.meters, ident)

    def register(self, ident: int) -> RegisterInfo:
        return _lookup("register", self.registers, ident)

    def digest(self, ident: int) -> DigestInfo:
        return _lookup("digest", self.digests, ident)

    def id_of(self, name: str) -> int:
        """The id of a P4 object by its fully qualified name (helpful error when unknown)."""
        try:
            return self.names[name]
        except KeyError:
            raise invalid(f"unknown P4 object {name!r}{suggest(name, self.names)}") from None


def validate_p4info(p4info: p4i.P4Info) -> P4InfoIndex:
    """Build the index, turning structural problems into INVALID_ARGUMENT."""
    try:
        return P4InfoIndex(p4info)
    except StatusError:
        raise
    except (ValueError, KeyError, TypeError) as exc:  # pragma: no cover - defensive
        raise invalid(f"P4Info cannot be indexed: {exc}") from exc
