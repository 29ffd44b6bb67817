"""TableEntry entities (and the direct counters/meters attached to them).

The store keeps, per table, a dict from the entry's P4Runtime key (decoded
match values plus priority) to what the engine was given and what a Read must
return. Writes are the hot path of the whole server: one dict lookup per id,
one decode per field, one engine call, no protobuf copies. Reads by key
decode only the store key (no engine key); an entry's answer is joined from
cached serialized pieces at its first read (answers.py) and kept
(`Entry.read_back`).

Priorities: P4Runtime says a larger number wins; the engine (like BMv2's
runtime) is given the same number, see `engine_priority`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from finsy.proto import p4r

from ..engine.keys import Exact, KeyValue, Lpm, Optional_, Range, Ternary, Wildcard
from .action_profiles import ActionProfileStore
from .actions import ActionCodec
from .answers import AddMatch, AnswerPieces, FieldEncoder
from .codec import decode_uint, encode_uint
from .engine_api import PipelineStateLike, TableStateLike
from .errors import StatusError, already_exists, invalid, not_found, permission_denied
from .meters import MeterCodec
from .p4info import MatchFieldInfo, MatchType, P4InfoIndex, TableInfo

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


EXPIRY_CHUNK = 1000
"""Entries with a TTL checked per hold of the packet lock."""


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
    read_back: bytes | None = None
    """The serialized TableEntry a Read returns (without counter, meter or idle data).

    Built by the first read from cached pieces (see answers.py) and kept, so that
    later reads only parse it; every change to the fields above that a Read
    returns resets it to None.
    """


@dataclass(frozen=True, slots=True)
class FieldCodec:
    """How one match field is decoded, encoded and keyed in the engine.

    The match type is looked at once, when the pipeline is loaded, so that the
    per-entry work of reads and writes calls straight into the right code.
    """

    position: int
    name: str
    kind: str | None
    """The FieldMatch oneof a request must use (None for a non-standard match type)."""
    decode: Callable[[p4r.FieldMatch], Any]
    """The store value of a FieldMatch of the right kind, validated."""
    encode: FieldEncoder
    """Append the canonical FieldMatch of a store value."""
    engine: Callable[[Any], KeyValue]
    """The engine key value of a store value."""


@dataclass(frozen=True, slots=True)
class KeyCodec:
    """The field codecs of one table, in key order and by field id."""

    fields: tuple[FieldCodec, ...]
    by_id: dict[int, FieldCodec]
    exact_positions: tuple[int, ...]
    """Fields that cannot be left out (exact match)."""
    encoders: tuple[FieldEncoder, ...]
    """Each field's ``encode``, in key order (what read answers are built with)."""

    @classmethod
    def of(cls, info: TableInfo) -> KeyCodec:
        fields = tuple(field_codec(f) for f in info.match_fields)
        return cls(
            fields,
            {f.id: c for f, c in zip(info.match_fields, fields, strict=True)},
            tuple(f.position for f in info.match_fields if f.match_type == _EXACT),
            tuple(f.encode for f in fields),
        )


def field_codec(f: MatchFieldInfo) -> FieldCodec:
    """The codec of one match field; a non-standard match type is handled as optional."""
    fid, width, what = f.id, f.bitwidth, f.what
    mt = f.match_type
    kind = _KIND_OF.get(mt)

    if mt == _EXACT:
        def decode_exact(m: p4r.FieldMatch) -> int:
            return decode_uint(m.exact.value, width, what)

        def encode_exact(add: AddMatch, v: int) -> None:
            add(field_id=fid).exact.value = encode_uint(v)

        return FieldCodec(f.position, f.name, kind, decode_exact, encode_exact, Exact)

    if mt == _LPM:
        def decode_lpm(m: p4r.FieldMatch) -> tuple[int, int]:
            lpm = m.lpm
            plen = lpm.prefix_len
            value = decode_uint(lpm.value, width, what)
            if not 0 < plen <= width:
                raise invalid(f"{what}: prefix_len {plen} not in 1..{width} "
                              "(omit the field for a don't-care match)")
            if value & ((1 << (width - plen)) - 1):
                raise invalid(f"{what}: bits beyond the /{plen} prefix must be 0")
            return value, plen

        def encode_lpm(add: AddMatch, v: tuple[int, int]) -> None:
            lpm = add(field_id=fid).lpm
            lpm.value, lpm.prefix_len = encode_uint(v[0]), v[1]

        return FieldCodec(f.position, f.name, kind, decode_lpm, encode_lpm,
                          lambda v: Lpm(v[0], v[1]))

    if mt == _TERNARY:
        what_mask = what + " mask"

        def decode_ternary(m: p4r.FieldMatch) -> tuple[int, int]:
            ternary = m.ternary
            value = decode_uint(ternary.value, width, what)
            mask = decode_uint(ternary.mask, width, what_mask)
            if mask == 0:
                raise invalid(f"{what}: mask is 0 (omit the field for a don't-care match)")
            if value & ~mask:
                raise invalid(f"{what}: value has bits outside the mask")
            return value, mask

        def encode_ternary(add: AddMatch, v: tuple[int, int]) -> None:
            ternary = add(field_id=fid).ternary
            ternary.value, ternary.mask = encode_uint(v[0]), encode_uint(v[1])

        return FieldCodec(f.position, f.name, kind, decode_ternary, encode_ternary,
                          lambda v: Ternary(v[0], v[1]))

    if mt == _RANGE:
        what_low, what_high = what + " low", what + " high"

        def decode_range(m: p4r.FieldMatch) -> tuple[int, int]:
            range_ = m.range
            low = decode_uint(range_.low, width, what_low)
            high = decode_uint(range_.high, width, what_high)
            if low > high:
                raise invalid(f"{what}: low {low} > high {high}")
            if low == 0 and high == (1 << width) - 1:
                raise invalid(f"{what}: full range (omit the field for a don't-care match)")
            return low, high

        def encode_range(add: AddMatch, v: tuple[int, int]) -> None:
            range_ = add(field_id=fid).range
            range_.low, range_.high = encode_uint(v[0]), encode_uint(v[1])

        return FieldCodec(f.position, f.name, kind, decode_range, encode_range,
                          lambda v: Range(v[0], v[1]))

    def decode_optional(m: p4r.FieldMatch) -> int:
        return decode_uint(m.optional.value, width, what)

    def encode_optional(add: AddMatch, v: int) -> None:
        add(field_id=fid).optional.value = encode_uint(v)

    return FieldCodec(f.position, f.name, kind, decode_optional, encode_optional, Optional_)


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
        self.timed: dict[int, dict[Key, Entry]] = {t: {} for t in index.tables}
        """The entries with an idle timeout, so that the idle scan never walks (or
        copies) a large table whose entries have none."""
        self._codecs = {t: KeyCodec.of(info) for t, info in index.tables.items()}
        self._pieces = AnswerPieces(actions)
        self._engine: dict[int, TableStateLike] = {}
        self.defaults: dict[int, Entry] = {}
        """Tables whose default action was modified, with the entry a Read returns."""

    def engine_table(self, info: TableInfo) -> TableStateLike:
        table = self._engine.get(info.id)
        if table is None:
            table = self._engine[info.id] = self._state.table(info.name)
        return table

    # decoding -----------------------------------------------------------------
    def decode_match(self, info: TableInfo, te: p4r.TableEntry) -> tuple[Key, list[FieldCodec]]:
        """The store key of an entry and the fields it gives, validating them and the priority.

        All a read or a lookup needs; `decode_key` adds the engine key for writes.
        """
        codec = self._codecs[info.id]
        values: list[Any] = [None] * len(codec.fields)
        given: list[FieldCodec] = []
        by_id = codec.by_id
        for m in te.match:
            f = by_id.get(m.field_id)
            if f is None:
                raise invalid(f"{info.name}: unknown match field id {m.field_id}")
            position = f.position
            if values[position] is not None:
                raise invalid(f"{info.name}: match field {f.name!r} given twice")
            kind = m.WhichOneof("field_match_type")
            if kind != f.kind:
                raise invalid(f"{info.name}: match field {f.name!r} is {f.kind or 'other'}, "
                              f"got {kind}")
            values[position] = f.decode(m)
            given.append(f)
        for position in codec.exact_positions:
            if values[position] is None:
                name = codec.fields[position].name
                raise invalid(f"{info.name}: exact match field {name!r} is missing")
        priority = te.priority
        if info.needs_priority:
            if priority <= 0:
                raise invalid(f"{info.name}: entries of this table need a priority > 0")
        elif priority != 0:
            raise invalid(f"{info.name}: priority must be 0 (no ternary/range/optional field)")
        values.append(priority)
        return tuple(values), given

    def decode_key(self, info: TableInfo, te: p4r.TableEntry) -> tuple[Key, list[KeyValue]]:
        """The store key and the engine key of an entry, validating every field."""
        key, given = self.decode_match(info, te)
        engine_key: list[KeyValue] = [_WILDCARD] * len(info.match_fields)
        for f in given:
            engine_key[f.position] = f.engine(key[f.position])
        return key, engine_key

    def encode_match(self, info: TableInfo, key: Key, out: p4r.TableEntry) -> None:
        """Append the canonical match of a store key (P4Info field order) and its priority."""
        add = out.match.add
        for f, v in zip(self._codecs[info.id].fields, key, strict=False):
            if v is not None:
                f.encode(add, v)
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
        raise StatusError(12, f"{info.name}: one-shot action selector programming "
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
                raise StatusError(12, f"{info.name}: meter_counter_data is not supported")
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
            entry = entries[key] = Entry(
                handle, action_id, args, member_id, group_id, te.controller_metadata,
                te.metadata, te.idle_timeout_ns,
                te.meter_config if meter is not None else None, self._clock(),
            )
            if entry.idle_timeout_ns:
                self.timed[info.id][key] = entry
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
            old.read_back = None
            self._track(info, key, old)
            if undo is not None:
                undo.append(lambda: self._undo_modify(info, key, old, before, saved_counter))
        elif kind == DELETE:
            if old is None:
                raise not_found(f"{info.name}: no entry with this key")
            saved = table.direct_counter(old.handle) if (
                undo is not None and info.direct_counter_id) else None
            table.delete(old.handle)
            del entries[key]
            self.timed[info.id].pop(key, None)
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
        self.timed[info.id].pop(key, None)
        self.engine_table(info).delete(entry.handle)
        self._ref(info, entry.member_id, entry.group_id, -1)

    def _track(self, info: TableInfo, key: Key, entry: Entry) -> None:
        """Keep `timed` in step with the entry's idle timeout."""
        if entry.idle_timeout_ns:
            self.timed[info.id][key] = entry
        else:
            self.timed[info.id].pop(key, None)

    def _undo_modify(self, info: TableInfo, key: Key, entry: Entry, before: tuple[Any, ...],
                     counter: tuple[int, int] | None) -> None:
        table = self.engine_table(info)
        self._ref(info, entry.member_id, entry.group_id, -1)
        (entry.action_id, entry.args, entry.member_id, entry.group_id,
         entry.controller_metadata, entry.metadata, entry.idle_timeout_ns,
         entry.meter_config) = before
        entry.read_back = None
        self._track(info, key, entry)
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
        self._track(info, key, entry)
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
    def read(self, te: p4r.TableEntry) -> list[p4r.Entity]:
        """The entries a Read of `te` selects; a read by key is a single dict lookup.

        A list rather than a generator: reads by key are the common case, one
        entry each, and a generator per entry costs more than the lookup.
        """
        if not te.table_id:
            infos = list(self._index.tables.values())
            if te.is_default_action:
                return [self._read_default(info) for info in infos]
            found: list[p4r.Entity] = []
            for each in infos:
                if each.is_const:
                    found.extend(self._read_const(each, te))
                else:
                    found.extend(self._answers(each, list(self.entries[each.id].items()), te))
            return found
        info = self._index.tables.get(te.table_id)
        if info is None:
            raise invalid(f"unknown table id {te.table_id}")
        if te.is_default_action:
            return [self._read_default(info)]
        if info.is_const:
            return list(self._read_const(info, te))
        entries = self.entries[info.id]
        if not len(te.match):
            return self._answers(info, list(entries.items()), te)
        key, _ = self.decode_match(info, te)
        entry = entries.get(key)
        return self._answers(info, [] if entry is None else [(key, entry)], te)

    def read_lazily(self, te: p4r.TableEntry) -> Iterable[p4r.Entity]:
        """`read`, but a wildcard Read of one table's entries comes as a generator that
        reads each entry only when it gets to it, as it is then (one deleted meanwhile is
        left out): a caller may take it across several holds of the packet lock, so no
        hold lasts a whole large table."""
        info = self._index.tables.get(te.table_id)
        if info is None or info.is_const or te.is_default_action or len(te.match):
            return self.read(te)
        entries = self.entries[info.id]
        return self._answering(info, ((key, entries.get(key)) for key in list(entries)), te)

    def _answers(self, info: TableInfo, items: list[tuple[Key, Entry]], te: p4r.TableEntry
                 ) -> list[p4r.Entity]:
        return list(self._answering(info, items, te))

    def _answering(self, info: TableInfo, items: Iterable[tuple[Key, Entry | None]],
                   te: p4r.TableEntry) -> Iterator[p4r.Entity]:
        """The entities of the entries that pass the filters of `te`, with the data it asks
        for, made as they are taken (an entry of None, deleted since it was listed, is
        left out)."""
        want_counter = te.HasField("counter_data") and info.direct_counter_id
        want_meter = te.HasField("meter_config")
        want_idle = te.HasField("time_since_last_hit")
        action_filter = 0
        if te.HasField("action") and te.action.WhichOneof("type") == "action":
            action_filter = te.action.action.action_id
        priority, cookie, metadata = te.priority, te.controller_metadata, te.metadata
        now = self._clock() if want_idle else 0
        for key, entry in items:
            if entry is None or ((priority and key[-1] != priority)
                    or (action_filter and entry.action_id != action_filter)
                    or (cookie and entry.controller_metadata != cookie)
                    or (metadata and entry.metadata != metadata)):
                continue
            entity = self._entity(info, key, entry)
            if want_counter:
                nbytes, packets = self.engine_table(info).direct_counter(entry.handle)
                data = entity.table_entry.counter_data
                data.byte_count, data.packet_count = nbytes, packets
            if want_meter and entry.meter_config is not None:
                entity.table_entry.meter_config.CopyFrom(entry.meter_config)
            if want_idle:
                idle = now - self.last_active(self.engine_table(info), entry)
                entity.table_entry.time_since_last_hit.elapsed_ns = idle
            yield entity

    def _entity(self, info: TableInfo, key: Key, entry: Entry) -> p4r.Entity:
        """A new Entity holding what a Read returns for an entry (see `read_back`)."""
        wire = entry.read_back
        if wire is None:
            wire = entry.read_back = self._pieces.table_entry(
                info.id, self._codecs[info.id].encoders, key,
                (entry.action_id, tuple(entry.args), entry.member_id, entry.group_id),
                (entry.controller_metadata, entry.metadata, entry.idle_timeout_ns))
        entity = p4r.Entity()
        entity.table_entry.MergeFromString(wire)
        return entity

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
    def expired(self, now: int, lock: AbstractContextManager[object] | None = None
                ) -> list[p4r.TableEntry]:
        """Entries idle for at least their TTL; their idle period restarts now.

        `lock` is the switch's packet lock: taken only for a copy of each table's
        entries that have a TTL (`timed`) and then for each chunk of
        `EXPIRY_CHUNK` of them, so a large table never stalls forwarding for the
        whole scan.
        """
        out: list[p4r.TableEntry] = []
        if lock is None:
            lock = nullcontext()
        for info in self._index.tables.values():
            if not info.supports_idle_timeout:
                continue
            if not self.timed[info.id]:
                continue
            with lock:
                timed = list(self.timed[info.id].items())
            for start in range(0, len(timed), EXPIRY_CHUNK):
                with lock:
                    table = self.engine_table(info)
                    current = self.entries[info.id]
                    for key, entry in timed[start:start + EXPIRY_CHUNK]:
                        ttl = entry.idle_timeout_ns
                        if current.get(key) is not entry or not ttl:
                            continue  # deleted or changed since the copy
                        if now - self.last_active(table, entry) >= ttl:
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
            raise StatusError(12, f"{info.name}: direct resources of the default entry "
                                     "are not supported")
        key, _ = self.decode_match(info, te)
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
