"""TableEntry entities (and the direct counters/meters attached to them).

The store keeps, per table, a dict from the entry's P4Runtime key (decoded
match values plus priority) to what the engine was given and what a Read must
return. Writes are the hot path of the whole server: one dict lookup per id,
one decode per field, one engine call, no protobuf copies.

Priorities: P4Runtime says a larger number wins; the engine (like BMv2's
runtime) is given the same number, see `engine_priority`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from finsy.proto import p4r

from ..engine.keys import Exact, KeyValue, Lpm, Optional_, Range, Ternary, Wildcard
from .action_profiles import ActionProfileStore
from .actions import ActionCodec
from .codec import decode_uint, encode_uint
from .engine_api import PipelineStateLike, TableStateLike
from .errors import P4RuntimeError, already_exists, invalid, not_found, permission_denied
from .meters import MeterCodec
from .p4info import MatchType, P4InfoIndex, TableInfo

Undo = list[Callable[[], None]] | None
INSERT, MODIFY, DELETE = p4r.Update.INSERT, p4r.Update.MODIFY, p4r.Update.DELETE
_EXACT, _LPM, _TERNARY, _RANGE, _OPTIONAL = (
    MatchType.EXACT, MatchType.LPM, MatchType.TERNARY, MatchType.RANGE, MatchType.OPTIONAL,
)
_KIND_OF: dict[int, str] = {_EXACT: "exact", _LPM: "lpm", _TERNARY: "ternary", _RANGE: "range",
            _OPTIONAL: "optional"}
_WILDCARD = Wildcard()

Key = tuple[Any, ...]
"""Decoded match values in key order (None for don't care), then the priority."""


def engine_priority(priority: int) -> int:
    """The priority handed to the engine for a P4Runtime priority."""
    return priority


@dataclass(slots=True)
class Entry:
    """One installed entry: the engine's handle and everything a Read returns."""

    handle: Any
    action_id: int
    args: list[int]
    member_id: int
    group_id: int
    controller_metadata: int
    metadata: bytes
    idle_timeout_ns: int
    meter_config: p4r.MeterConfig | None
    idle_since_ns: int
    """Start of the current idle period: insert time or last notification."""


class TableStore:
    """The table entries of one pipeline, mirrored for reads and rollback."""

    def __init__(
        self,
        index: P4InfoIndex,
        state: PipelineStateLike,
        actions: ActionCodec,
        profiles: ActionProfileStore,
        meters: MeterCodec,
        clock: Callable[[], int],
    ) -> None:
        self._index = index
        self._state = state
        self._actions = actions
        self._profiles = profiles
        self._meters = meters
        self._clock = clock
        self.entries: dict[int, dict[Key, Entry]] = {t: {} for t in index.tables}
        self._engine: dict[int, TableStateLike] = {}
        self.defaults: dict[int, Entry] = {}
        """Tables whose default action was modified, with the entry a Read returns."""

    def engine_table(self, info: TableInfo) -> TableStateLike:
        table = self._engine.get(info.id)
        if table is None:
            table = self._engine[info.id] = self._state.table(info.name)
        return table

    # decoding -----------------------------------------------------------------
    def decode_key(self, info: TableInfo, te: p4r.TableEntry) -> tuple[Key, list[KeyValue]]:
        """The store key and the engine key of an entry, validating every field."""
        fields = info.match_fields
        values: list[Any] = [None] * len(fields)
        by_id = info.fields_by_id
        for m in te.match:
            f = by_id.get(m.field_id)
            if f is None:
                raise invalid(f"{info.name}: unknown match field id {m.field_id}")
            if values[f.position] is not None:
                raise invalid(f"{info.name}: match field {f.name!r} given twice")
            kind = m.WhichOneof("field_match_type")
            mt = f.match_type
            if kind != _KIND_OF.get(mt):
                raise invalid(
                    f"{info.name}: match field {f.name!r} is {_KIND_OF.get(mt, 'other')}, "
                    f"got {kind}"
                )
            what = f.what
            width = f.bitwidth
            if mt == _EXACT:
                values[f.position] = decode_uint(m.exact.value, width, what)
            elif mt == _LPM:
                plen = m.lpm.prefix_len
                value = decode_uint(m.lpm.value, width, what)
                if not 0 < plen <= width:
                    raise invalid(f"{what}: prefix_len {plen} not in 1..{width} "
                                  "(omit the field for a don't-care match)")
                if value & ((1 << (width - plen)) - 1):
                    raise invalid(f"{what}: bits beyond the /{plen} prefix must be 0")
                values[f.position] = (value, plen)
            elif mt == _TERNARY:
                value = decode_uint(m.ternary.value, width, what)
                mask = decode_uint(m.ternary.mask, width, what + " mask")
                if mask == 0:
                    raise invalid(f"{what}: mask is 0 (omit the field for a don't-care match)")
                if value & ~mask:
                    raise invalid(f"{what}: value has bits outside the mask")
                values[f.position] = (value, mask)
            elif mt == _RANGE:
                low = decode_uint(m.range.low, width, what + " low")
                high = decode_uint(m.range.high, width, what + " high")
                if low > high:
                    raise invalid(f"{what}: low {low} > high {high}")
                if low == 0 and high == (1 << width) - 1:
                    raise invalid(f"{what}: full range (omit the field for a don't-care match)")
                values[f.position] = (low, high)
            else:
                values[f.position] = decode_uint(m.optional.value, width, what)
        key: list[KeyValue] = []
        for f, v in zip(fields, values, strict=True):
            mt = f.match_type
            if v is None:
                if mt == _EXACT:
                    raise invalid(f"{info.name}: exact match field {f.name!r} is missing")
                key.append(_WILDCARD)
            elif mt == _EXACT:
                key.append(Exact(v))
            elif mt == _LPM:
                key.append(Lpm(v[0], v[1]))
            elif mt == _TERNARY:
                key.append(Ternary(v[0], v[1]))
            elif mt == _RANGE:
                key.append(Range(v[0], v[1]))
            else:
                key.append(Optional_(v))
        priority = te.priority
        if info.needs_priority:
            if priority <= 0:
                raise invalid(f"{info.name}: entries of this table need a priority > 0")
        elif priority != 0:
            raise invalid(f"{info.name}: priority must be 0 (no ternary/range/optional field)")
        values.append(priority)
        return tuple(values), key

    def encode_match(self, info: TableInfo, key: Key, out: p4r.TableEntry) -> None:
        for f, v in zip(info.match_fields, key, strict=False):
            if v is None:
                continue
            m = out.match.add(field_id=f.id)
            mt = f.match_type
            if mt == _EXACT:
                m.exact.value = encode_uint(v)
            elif mt == _LPM:
                m.lpm.value, m.lpm.prefix_len = encode_uint(v[0]), v[1]
            elif mt == _TERNARY:
                m.ternary.value, m.ternary.mask = encode_uint(v[0]), encode_uint(v[1])
            elif mt == _RANGE:
                m.range.low, m.range.high = encode_uint(v[0]), encode_uint(v[1])
            else:
                m.optional.value = encode_uint(v)
        out.priority = key[-1]

    def _decode_action(
        self, info: TableInfo, te: p4r.TableEntry
    ) -> tuple[str, list[int], int, int, int]:
        """(engine action name, args, action id, member id, group id) of an entry."""
        kind = te.action.WhichOneof("type")
        if kind == "action":
            if info.implementation_id:
                raise invalid(f"{info.name}: indirect table entries take a member or group id")
            action, args = self._actions.decode(te.action.action, info.action_ids, info.name)
            return action.name, args, action.id, 0, 0
        if kind is None:
            raise invalid(f"{info.name}: entry has no action")
        if not info.implementation_id:
            raise invalid(f"{info.name}: direct table entries take an action, not {kind}")
        profile_id = info.implementation_id
        if kind == "action_profile_member_id":
            self._profiles.member(profile_id, te.action.action_profile_member_id)
            return "", [], 0, te.action.action_profile_member_id, 0
        if kind == "action_profile_group_id":
            if not self._index.action_profiles[profile_id].with_selector:
                raise invalid(f"{info.name}: groups need an action selector")
            self._profiles.group(profile_id, te.action.action_profile_group_id)
            return "", [], 0, 0, te.action.action_profile_group_id
        raise P4RuntimeError(12, f"{info.name}: one-shot action selector programming "
                                 "is not supported")

    def _ref(self, info: TableInfo, member_id: int, group_id: int, delta: int) -> None:
        if member_id:
            self._profiles.member(info.implementation_id, member_id).refs += delta
        elif group_id:
            self._profiles.group(info.implementation_id, group_id).refs += delta

    def _handles(
        self, info: TableInfo, member_id: int, group_id: int
    ) -> tuple[int | None, int | None]:
        profile = info.implementation_id
        member = self._profiles.member(profile, member_id).handle if member_id else None
        group = self._profiles.group(profile, group_id).handle if group_id else None
        return member, group

    # writes ---------------------------------------------------------------------
    def write(self, kind: int, te: p4r.TableEntry, undo: Undo) -> None:
        info = self._index.tables.get(te.table_id)
        if info is None:
            raise invalid(f"unknown table id {te.table_id}")
        if te.is_default_action:
            self._write_default(kind, info, te, undo)
            return
        if te.HasField("time_since_last_hit"):
            raise invalid(f"{info.name}: time_since_last_hit cannot be written")
        if te.idle_timeout_ns and not info.supports_idle_timeout:
            raise invalid(f"{info.name}: the table does not support idle timeout")
        if te.idle_timeout_ns < 0:
            raise invalid(f"{info.name}: idle_timeout_ns must not be negative")
        if info.is_const:
            raise permission_denied(f"{info.name} is a const table")
        key, engine_key = self.decode_key(info, te)
        entries = self.entries[info.id]
        table = self.engine_table(info)
        old = entries.get(key)
        if kind == INSERT:
            if old is not None:
                raise already_exists(f"{info.name}: an entry with this key already exists")
            if te.HasField("meter_counter_data"):
                raise P4RuntimeError(12, f"{info.name}: meter_counter_data is not supported")
            counter = self._check_direct(info, te)
            meter = self._meters.decode(te.meter_config, info.name) if te.HasField(
                "meter_config") else None
            name, args, action_id, member_id, group_id = self._decode_action(info, te)
            member, group = self._handles(info, member_id, group_id)
            handle = table.add(
                engine_key, name, args, engine_priority(key[-1]),
                member=member, group=group, ttl_ns=te.idle_timeout_ns or None,
            )
            try:
                if counter is not None:
                    table.set_direct_counter(handle, *counter)
                if meter is not None:
                    table.set_direct_meter(handle, meter)
            except BaseException:
                table.delete(handle)
                raise
            entries[key] = Entry(
                handle, action_id, args, member_id, group_id, te.controller_metadata,
                te.metadata, te.idle_timeout_ns,
                te.meter_config if meter is not None else None, self._clock(),
            )
            self._ref(info, member_id, group_id, +1)
            if undo is not None:
                undo.append(lambda: self._undo_insert(info, key))
        elif kind == MODIFY:
            if old is None:
                raise not_found(f"{info.name}: no entry with this key")
            counter = self._check_direct(info, te)
            meter = self._meters.decode(te.meter_config, info.name) if te.HasField(
                "meter_config") else None
            name, args, action_id, member_id, group_id = self._decode_action(info, te)
            member, group = self._handles(info, member_id, group_id)
            before = (old.action_id, old.args, old.member_id, old.group_id,
                      old.controller_metadata, old.metadata, old.idle_timeout_ns,
                      old.meter_config)
            saved_counter = table.direct_counter(old.handle) if (
                counter is not None and undo is not None) else None
            table.modify(old.handle, name, args, member=member, group=group)
            if info.direct_meter_id:
                table.set_direct_meter(old.handle, meter)
            if counter is not None:
                table.set_direct_counter(old.handle, *counter)
            self._ref(info, old.member_id, old.group_id, -1)
            self._ref(info, member_id, group_id, +1)
            old.action_id, old.args = action_id, args
            old.member_id, old.group_id = member_id, group_id
            old.controller_metadata, old.metadata = te.controller_metadata, te.metadata
            old.idle_timeout_ns = te.idle_timeout_ns
            old.meter_config = te.meter_config if meter is not None else None
            if undo is not None:
                undo.append(lambda: self._undo_modify(info, old, before, saved_counter))
        elif kind == DELETE:
            if old is None:
                raise not_found(f"{info.name}: no entry with this key")
            saved = table.direct_counter(old.handle) if (
                undo is not None and info.direct_counter_id) else None
            table.delete(old.handle)
            del entries[key]
            self._ref(info, old.member_id, old.group_id, -1)
            if undo is not None:
                undo.append(lambda: self._undo_delete(info, key, engine_key, old, saved))
        else:
            raise invalid("update type must be INSERT, MODIFY or DELETE")

    def _check_direct(self, info: TableInfo, te: p4r.TableEntry) -> tuple[int, int] | None:
        if te.HasField("meter_config") and not info.direct_meter_id:
            raise invalid(f"{info.name}: meter_config given but the table has no direct meter")
        if not te.HasField("counter_data"):
            return None
        if not info.direct_counter_id:
            raise invalid(f"{info.name}: counter_data given but the table has no direct counter")
        data = te.counter_data
        if data.byte_count < 0 or data.packet_count < 0:
            raise invalid(f"{info.name}: counter values must not be negative")
        return data.byte_count, data.packet_count

    def _undo_insert(self, info: TableInfo, key: Key) -> None:
        entry = self.entries[info.id].pop(key)
        self.engine_table(info).delete(entry.handle)
        self._ref(info, entry.member_id, entry.group_id, -1)

    def _undo_modify(self, info: TableInfo, entry: Entry, before: tuple[Any, ...],
                     counter: tuple[int, int] | None) -> None:
        table = self.engine_table(info)
        self._ref(info, entry.member_id, entry.group_id, -1)
        (entry.action_id, entry.args, entry.member_id, entry.group_id,
         entry.controller_metadata, entry.metadata, entry.idle_timeout_ns,
         entry.meter_config) = before
        member, group = self._handles(info, entry.member_id, entry.group_id)
        name = self._index.actions[entry.action_id].name if entry.action_id else ""
        table.modify(entry.handle, name, entry.args, member=member, group=group)
        self._ref(info, entry.member_id, entry.group_id, +1)
        if info.direct_meter_id:
            table.set_direct_meter(entry.handle, self._meters.decode(entry.meter_config, info.name)
                                   if entry.meter_config is not None else None)
        if counter is not None:
            table.set_direct_counter(entry.handle, *counter)

    def _undo_delete(self, info: TableInfo, key: Key, engine_key: list[KeyValue], entry: Entry,
                     counter: tuple[int, int] | None) -> None:
        table = self.engine_table(info)
        member, group = self._handles(info, entry.member_id, entry.group_id)
        name = self._index.actions[entry.action_id].name if entry.action_id else ""
        entry.handle = table.add(engine_key, name, entry.args, engine_priority(key[-1]),
                                 member=member, group=group,
                                 ttl_ns=entry.idle_timeout_ns or None)
        if counter is not None:
            table.set_direct_counter(entry.handle, *counter)
        if entry.meter_config is not None:
            table.set_direct_meter(entry.handle, self._meters.decode(entry.meter_config, info.name))
        self.entries[info.id][key] = entry
        self._ref(info, entry.member_id, entry.group_id, +1)

    def _write_default(self, kind: int, info: TableInfo, te: p4r.TableEntry, undo: Undo) -> None:
        if kind != MODIFY:
            raise invalid(f"{info.name}: the default entry can only be modified")
        if len(te.match) or te.priority:
            raise invalid(f"{info.name}: the default entry has no match and no priority")
        if te.idle_timeout_ns or te.HasField("time_since_last_hit"):
            raise invalid(f"{info.name}: the default entry has no idle timeout")
        if info.const_default_action_id:
            raise permission_denied(f"{info.name}: the default action is const")
        table = self.engine_table(info)
        previous = self.defaults.get(info.id)
        if not te.HasField("action"):
            table.reset_default()
            self.defaults.pop(info.id, None)
        else:
            if te.action.WhichOneof("type") != "action":
                raise invalid(f"{info.name}: the default entry of an indirect table is const")
            action, args = self._actions.decode(te.action.action, info.default_action_ids,
                                                info.name + " default entry")
            table.set_default(action.name, args)
            self.defaults[info.id] = Entry(None, action.id, args, 0, 0, te.controller_metadata,
                                           te.metadata, 0, None, 0)
        if undo is not None:
            undo.append(lambda: self._undo_default(info, previous))

    def _undo_default(self, info: TableInfo, previous: Entry | None) -> None:
        table = self.engine_table(info)
        if previous is None:
            table.reset_default()
            self.defaults.pop(info.id, None)
        else:
            table.set_default(self._index.actions[previous.action_id].name, previous.args)
            self.defaults[info.id] = previous

    # reads ----------------------------------------------------------------------
    def read(self, te: p4r.TableEntry) -> Iterator[p4r.Entity]:
        if te.table_id:
            infos = [self._index.tables.get(te.table_id)]
            if infos[0] is None:
                raise invalid(f"unknown table id {te.table_id}")
        else:
            infos = list(self._index.tables.values())
        want_counter = te.HasField("counter_data")
        want_meter = te.HasField("meter_config")
        want_idle = te.HasField("time_since_last_hit")
        has_action = te.action.WhichOneof("type") == "action"
        action_filter = te.action.action.action_id if has_action else 0
        for info in infos:
            assert info is not None
            if te.is_default_action:
                yield self._read_default(info)
                continue
            if info.is_const:
                yield from self._read_const(info, te)
                continue
            entries = self.entries[info.id]
            if len(te.match) and te.table_id:
                key, _ = self.decode_key(info, te)
                found = entries.get(key)
                items = [] if found is None else [(key, found)]
            else:
                items = list(entries.items())
            now = self._clock() if want_idle else 0
            table = self.engine_table(info)
            for key, entry in items:
                if te.priority and key[-1] != te.priority:
                    continue
                if action_filter and entry.action_id != action_filter:
                    continue
                if te.controller_metadata and entry.controller_metadata != te.controller_metadata:
                    continue
                if te.metadata and entry.metadata != te.metadata:
                    continue
                entity = p4r.Entity()
                out = entity.table_entry
                self.fill(info, key, entry, out)
                if want_counter and info.direct_counter_id:
                    nbytes, packets = table.direct_counter(entry.handle)
                    out.counter_data.byte_count = nbytes
                    out.counter_data.packet_count = packets
                if want_meter and entry.meter_config is not None:
                    out.meter_config.CopyFrom(entry.meter_config)
                if want_idle:
                    out.time_since_last_hit.elapsed_ns = now - self.last_active(table, entry)
                yield entity

    def _read_const(self, info: TableInfo, te: p4r.TableEntry) -> Iterator[p4r.Entity]:
        """Entries of a `const entries` table, as the program defines them."""
        for engine_entry in self.engine_table(info).entries():
            entity = p4r.Entity()
            out = entity.table_entry
            out.table_id = info.id
            for f, kv in zip(info.match_fields, engine_entry.key, strict=False):
                _encode_key_value(f.id, f.bitwidth, kv, out)
            if info.needs_priority:
                out.priority = engine_entry.priority
            if te.priority and out.priority != te.priority:
                continue
            action = getattr(engine_entry.action, "name", None)
            action_id = self._index.names.get(action or "", 0)
            if action_id in self._index.actions:
                self._actions.encode(out.action.action, action_id, list(engine_entry.args))
            out.is_const = True
            yield entity

    def fill(self, info: TableInfo, key: Key, entry: Entry, out: p4r.TableEntry) -> None:
        """Write the key and configuration of an entry into `out`."""
        out.table_id = info.id
        self.encode_match(info, key, out)
        if entry.member_id:
            out.action.action_profile_member_id = entry.member_id
        elif entry.group_id:
            out.action.action_profile_group_id = entry.group_id
        else:
            self._actions.encode(out.action.action, entry.action_id, entry.args)
        out.controller_metadata = entry.controller_metadata
        out.metadata = entry.metadata
        out.idle_timeout_ns = entry.idle_timeout_ns

    def last_active(self, table: TableStateLike, entry: Entry) -> int:
        hit = table.last_hit_ns(entry.handle)
        return max(entry.idle_since_ns, hit or 0)

    def _read_default(self, info: TableInfo) -> p4r.Entity:
        entity = p4r.Entity()
        out = entity.table_entry
        out.table_id = info.id
        out.is_default_action = True
        modified = self.defaults.get(info.id)
        if modified is not None:
            self._actions.encode(out.action.action, modified.action_id, modified.args)
            out.controller_metadata = modified.controller_metadata
            out.metadata = modified.metadata
            return entity
        if info.implementation_id:
            return entity
        name, args = default_of(self.engine_table(info))
        action_id = self._index.names.get(name, 0)
        if action_id in self._index.actions:
            self._actions.encode(out.action.action, action_id, list(args))
        return entity

    # idle timeout -----------------------------------------------------------------
    def expired(self, now: int) -> list[p4r.TableEntry]:
        """Entries idle for at least their TTL; their idle period restarts now."""
        out: list[p4r.TableEntry] = []
        for info in self._index.tables.values():
            if not info.supports_idle_timeout:
                continue
            table = self.engine_table(info)
            for key, entry in self.entries[info.id].items():
                ttl = entry.idle_timeout_ns
                if ttl and now - self.last_active(table, entry) >= ttl:
                    te = p4r.TableEntry()
                    self.fill(info, key, entry, te)
                    out.append(te)
                    entry.idle_since_ns = now
        return out

    # direct resources through DirectCounterEntry / DirectMeterEntry -----------------
    def locate(self, te: p4r.TableEntry, what: str) -> tuple[TableInfo, Entry]:
        info = self._index.tables.get(te.table_id)
        if info is None:
            raise invalid(f"{what}: unknown table id {te.table_id}")
        if te.is_default_action:
            raise P4RuntimeError(12, f"{info.name}: direct resources of the default entry "
                                     "are not supported")
        key, _ = self.decode_key(info, te)
        entry = self.entries[info.id].get(key)
        if entry is None:
            raise not_found(f"{info.name}: no entry with this key")
        return info, entry


def _encode_key_value(field_id: int, width: int, kv: KeyValue, out: p4r.TableEntry) -> None:
    """Append the FieldMatch of an engine key value (nothing for a don't-care)."""
    if isinstance(kv, Exact):
        out.match.add(field_id=field_id).exact.value = encode_uint(kv.value)
    elif isinstance(kv, Lpm) and kv.prefix_len:
        m = out.match.add(field_id=field_id)
        m.lpm.value, m.lpm.prefix_len = encode_uint(kv.value), kv.prefix_len
    elif isinstance(kv, Ternary) and kv.mask:
        m = out.match.add(field_id=field_id)
        m.ternary.value, m.ternary.mask = encode_uint(kv.value), encode_uint(kv.mask)
    elif isinstance(kv, Range) and (kv.low, kv.high) != (0, (1 << width) - 1):
        m = out.match.add(field_id=field_id)
        m.range.low, m.range.high = encode_uint(kv.low), encode_uint(kv.high)
    elif isinstance(kv, Optional_):
        out.match.add(field_id=field_id).optional.value = encode_uint(kv.value)


def default_of(table: TableStateLike) -> tuple[str, list[int]]:
    """The engine's current default action as (name, args)."""
    value = table.get_default()
    if value is None:
        return "", []
    name = getattr(value, "action", None)
    if isinstance(name, str):
        return name, list(getattr(value, "args", []))
    action, args = value
    return str(action), list(args)
