"""Indexed externs and direct resources: counters, meters, registers.

These entities only support MODIFY (INSERT and DELETE are INVALID_ARGUMENT)
and wildcard reads; an unset index on a write applies to every cell, as the
spec allows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from finsy.proto import p4d, p4r, rpc_code

from .codec import (
    decode_int,
    decode_uint,
    encode_int,
    encode_uint,
    signed_from_uint_bits,
    uint_from_signed_bits,
)
from .engine_api import PipelineStateLike, RegisterStateLike, TableStateLike
from .errors import StatusError, invalid, unimplemented
from .meters import MeterCodec
from .p4info import DataField, P4InfoIndex, RegisterInfo
from .tables import Entry, TableStore

Undo = list[Callable[[], None]] | None
MODIFY = p4r.Update.MODIFY


def _only_modify(kind: int, what: str) -> None:
    if kind != MODIFY:
        raise invalid(f"{what}: only MODIFY is allowed")


def _indices(msg: p4r.CounterEntry | p4r.MeterEntry | p4r.RegisterEntry, size: int,
             what: str) -> range:
    if not msg.HasField("index"):
        return range(size)
    index = msg.index.index
    if index < 0:
        raise invalid(f"{what}: negative index {index}")
    if index >= size:
        raise StatusError(rpc_code.OUT_OF_RANGE, f"{what}: index {index} >= size {size}")
    return range(index, index + 1)


def decode_data(data: p4d.P4Data, field: DataField, what: str) -> int:
    """An engine value (unsigned bit pattern) from a bitstring P4Data."""
    if data.WhichOneof("data") != "bitstring":
        raise invalid(f"{what}: expected a bitstring P4Data")
    if field.signed:
        value = decode_int(data.bitstring, field.bitwidth, what)
        return uint_from_signed_bits(value, field.bitwidth)
    return decode_uint(data.bitstring, field.bitwidth, what)


def encode_data(value: int, field: DataField, out: p4d.P4Data) -> None:
    if field.signed:
        out.bitstring = encode_int(signed_from_uint_bits(value, field.bitwidth))
    else:
        out.bitstring = encode_uint(value)


class ResourceStore:
    """Counter, meter, register and direct counter/meter entities of one pipeline."""

    def __init__(self, index: P4InfoIndex, state: PipelineStateLike, tables: TableStore,
                 meters: MeterCodec) -> None:
        self._index = index
        self._state = state
        self._tables = tables
        self._meters = meters
        self.meter_configs: dict[tuple[int, int], p4r.MeterConfig] = {}
        self._registers: dict[int, tuple[RegisterInfo, RegisterStateLike]] = {}

    # counters -------------------------------------------------------------------
    def write_counter(self, kind: int, msg: p4r.CounterEntry, undo: Undo) -> None:
        info = self._index.counter(msg.counter_id)
        _only_modify(kind, info.name)
        cells = _indices(msg, info.size, info.name)
        if not msg.HasField("data"):
            return
        if msg.data.byte_count < 0 or msg.data.packet_count < 0:
            raise invalid(f"{info.name}: counter values must not be negative")
        engine = self._state.counter(info.name)
        if undo is not None:
            saved = [(i, *engine.read(i)) for i in cells]

            def restore_counters() -> None:
                for i, nbytes, packets in saved:
                    engine.write(i, nbytes, packets)

            undo.append(restore_counters)
        for i in cells:
            engine.write(i, msg.data.byte_count, msg.data.packet_count)

    def read_counters(self, msg: p4r.CounterEntry) -> Iterator[p4r.Entity]:
        ids = [msg.counter_id] if msg.counter_id else list(self._index.counters)
        for ident in ids:
            info = self._index.counter(ident)
            engine = self._state.counter(info.name)
            for i in _indices(msg, info.size, info.name):
                nbytes, packets = engine.read(i)
                entity = p4r.Entity()
                out = entity.counter_entry
                out.counter_id = ident
                out.index.index = i
                out.data.byte_count = nbytes
                out.data.packet_count = packets
                yield entity

    # meters ---------------------------------------------------------------------
    def write_meter(self, kind: int, msg: p4r.MeterEntry, undo: Undo) -> None:
        info = self._index.meter(msg.meter_id)
        _only_modify(kind, info.name)
        if msg.HasField("counter_data"):
            raise unimplemented(f"{info.name}: meter counters are not supported")
        cells = _indices(msg, info.size, info.name)
        config = self._meters.decode(msg.config, info.name) if msg.HasField("config") else None
        engine = self._state.meter(info.name)
        if undo is not None:
            saved = {i: self.meter_configs.get((info.id, i)) for i in cells}
            undo.append(lambda: self._restore_meters(info.id, info.name, saved))
        for i in cells:
            if config is None:
                engine.reset_config(i)
                self.meter_configs.pop((info.id, i), None)
            else:
                engine.set_config(i, config)
                self.meter_configs[(info.id, i)] = msg.config

    def _restore_meters(self, ident: int, name: str,
                        saved: dict[int, p4r.MeterConfig | None]) -> None:
        engine = self._state.meter(name)
        for i, config in saved.items():
            if config is None:
                engine.reset_config(i)
                self.meter_configs.pop((ident, i), None)
            else:
                engine.set_config(i, self._meters.decode(config, name))
                self.meter_configs[(ident, i)] = config

    def read_meters(self, msg: p4r.MeterEntry) -> Iterator[p4r.Entity]:
        if msg.HasField("counter_data"):
            raise unimplemented("meter counters are not supported")
        ids = [msg.meter_id] if msg.meter_id else list(self._index.meters)
        for ident in ids:
            info = self._index.meter(ident)
            for i in _indices(msg, info.size, info.name):
                entity = p4r.Entity()
                out = entity.meter_entry
                out.meter_id = ident
                out.index.index = i
                config = self.meter_configs.get((ident, i))
                if config is not None:
                    out.config.CopyFrom(config)
                yield entity

    # registers ------------------------------------------------------------------
    def _register(self, register_id: int) -> tuple[RegisterInfo, RegisterStateLike]:
        """The P4Info and engine sides of a register, looked up once per pipeline."""
        found = self._registers.get(register_id)
        if found is None:
            info = self._index.register(register_id)
            found = self._registers[register_id] = (info, self._state.register(info.name))
        return found

    def write_register(self, kind: int, msg: p4r.RegisterEntry, undo: Undo) -> None:
        info, engine = self._register(msg.register_id)
        _only_modify(kind, info.name)
        cells = _indices(msg, info.size, info.name)
        if not msg.HasField("data"):
            raise invalid(f"{info.name}: data is required")
        value = decode_data(msg.data, info.data, info.name)
        if undo is not None:
            cells_before = [(i, engine.read(i)) for i in cells]

            def restore_registers() -> None:
                for i, old in cells_before:
                    engine.write(i, old)

            undo.append(restore_registers)
        for i in cells:
            engine.write(i, value)

    def read_registers(self, msg: p4r.RegisterEntry) -> Iterator[p4r.Entity]:
        ids = [msg.register_id] if msg.register_id else list(self._index.registers)
        for ident in ids:
            info, engine = self._register(ident)
            for i in _indices(msg, info.size, info.name):
                entity = p4r.Entity()
                out = entity.register_entry
                out.register_id = ident
                out.index.index = i
                encode_data(engine.read(i), info.data, out.data)
                yield entity

    # direct counters and meters ---------------------------------------------------
    def write_direct_counter(self, kind: int, msg: p4r.DirectCounterEntry, undo: Undo) -> None:
        _only_modify(kind, "DirectCounterEntry")
        info, entry = self._tables.locate(msg.table_entry, "DirectCounterEntry")
        if not info.direct_counter_id:
            raise invalid(f"{info.name}: the table has no direct counter")
        if not msg.HasField("data"):
            return
        if msg.data.byte_count < 0 or msg.data.packet_count < 0:
            raise invalid(f"{info.name}: counter values must not be negative")
        table = self._tables.engine_table(info)
        if undo is not None:
            saved = table.direct_counter(entry.handle)
            undo.append(lambda: table.set_direct_counter(entry.handle, *saved))
        table.set_direct_counter(entry.handle, msg.data.byte_count, msg.data.packet_count)

    def read_direct_counters(self, msg: p4r.DirectCounterEntry) -> Iterator[p4r.Entity]:
        te = msg.table_entry
        if te.table_id and len(te.match):
            info, entry = self._tables.locate(te, "DirectCounterEntry")
            if not info.direct_counter_id:
                raise invalid(f"{info.name}: the table has no direct counter")
            yield self._direct_counter_entity(info.id, te, entry)
            return
        ids = [te.table_id] if te.table_id else list(self._index.tables)
        for ident in ids:
            info = self._index.table(ident)
            if not info.direct_counter_id:
                if te.table_id:
                    raise invalid(f"{info.name}: the table has no direct counter")
                continue
            for key, entry in self._tables.entries[ident].items():
                out = p4r.TableEntry(table_id=ident)
                self._tables.encode_match(info, key, out)
                yield self._direct_counter_entity(ident, out, entry)

    def _direct_counter_entity(self, table_id: int, te: p4r.TableEntry, entry: Entry
                               ) -> p4r.Entity:
        info = self._index.tables[table_id]
        nbytes, packets = self._tables.engine_table(info).direct_counter(entry.handle)
        entity = p4r.Entity()
        out = entity.direct_counter_entry
        out.table_entry.table_id = table_id
        out.table_entry.match.extend(te.match)
        out.table_entry.priority = te.priority
        out.data.byte_count = nbytes
        out.data.packet_count = packets
        return entity

    def write_direct_meter(self, kind: int, msg: p4r.DirectMeterEntry, undo: Undo) -> None:
        _only_modify(kind, "DirectMeterEntry")
        if msg.HasField("counter_data"):
            raise unimplemented("DirectMeterEntry: meter counters are not supported")
        info, entry = self._tables.locate(msg.table_entry, "DirectMeterEntry")
        if not info.direct_meter_id:
            raise invalid(f"{info.name}: the table has no direct meter")
        config = self._meters.decode(msg.config, info.name) if msg.HasField("config") else None
        table = self._tables.engine_table(info)
        if undo is not None:
            previous = entry.meter_config
            undo.append(lambda: self._restore_direct_meter(info.name, table, entry, previous))
        table.set_direct_meter(entry.handle, config)
        entry.meter_config = msg.config if config is not None else None

    def _restore_direct_meter(self, name: str, table: TableStateLike, entry: Entry,
                              previous: p4r.MeterConfig | None) -> None:
        config = self._meters.decode(previous, name) if previous is not None else None
        table.set_direct_meter(entry.handle, config)
        entry.meter_config = previous

    def read_direct_meters(self, msg: p4r.DirectMeterEntry) -> Iterator[p4r.Entity]:
        te = msg.table_entry
        if te.table_id and len(te.match):
            info, entry = self._tables.locate(te, "DirectMeterEntry")
            if not info.direct_meter_id:
                raise invalid(f"{info.name}: the table has no direct meter")
            items = [(te, entry)]
        else:
            items = []
            ids = [te.table_id] if te.table_id else list(self._index.tables)
            for ident in ids:
                info = self._index.table(ident)
                if not info.direct_meter_id:
                    if te.table_id:
                        raise invalid(f"{info.name}: the table has no direct meter")
                    continue
                for key, entry in self._tables.entries[ident].items():
                    out = p4r.TableEntry(table_id=ident)
                    self._tables.encode_match(info, key, out)
                    items.append((out, entry))
        for key_te, entry in items:
            entity = p4r.Entity()
            out_entry = entity.direct_meter_entry
            out_entry.table_entry.table_id = key_te.table_id
            out_entry.table_entry.match.extend(key_te.match)
            out_entry.table_entry.priority = key_te.priority
            if entry.meter_config is not None:
                out_entry.config.CopyFrom(entry.meter_config)
            yield entity
