"""Move a VNIC's connection state to another target: ``pyoffload migrate``.

Export reads, from the source pipeline, every live connection the agent
learned of (digests, or an earlier import): its normalised tuple, state, FIN
bits, translation and the time it has left; for a translated connection also
the state of its second slot (the tuple on the far side of the rewrite, which
follows from the first). Nothing in the export depends on the source: no slot
numbers, no pipeline clock, no flow or profile numbers. A slot whose stored
signature is not its learned tuple's now holds another connection and is not
exported under the old tuple.

Import recomputes everything for the destination: the slots and signatures
from the hash the pipeline uses (CRC-32 over the VNIC id and the tuple, modulo
the destination's slot count), the flow and timeout profile from the
destination's own compilation of the same rules, and the expiry from the
destination's clock. A connection whose hash slot is held there (by a live
connection, or by another connection of the same import) gets an overflow
slot and a ``vnic.ct_overflow`` entry, as the slow path gives one to a
colliding new connection; only with every overflow slot taken is it skipped,
and named. A connection the destination already tracks (same tuple, live) is
left as it is: the destination's state is the newer one once traffic reaches
it, so running the same migration again after moving the traffic only adds
what opened in between.

Cells are written with the state word (``ct_info``) last, so a slot only
becomes live once everything else in it is in place; if the target refuses
anything, every slot this import claimed is freed again and its overflow
entries removed: the destination is as before and the source was never
changed. Import the rules first (apply the same request on the destination),
then the state, then move the traffic.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

import attrs
from finsy import P4Schema, P4TableEntry

from pyoffload.agent.connections import Learned
from pyoffload.agent.registers import RegisterAccess
from pyoffload.bulk import no_cyclic_gc
from pyoffload.p4runtime import P4RuntimeClient, UpdateType
from pyoffload.p4runtime.encoder import EntityEncoder
from pyoffload.pipeline import names
from pyoffload.pipeline.constants import ConnState, CtInfo, Tuple5, slot_hash

INFO_KEEP = 0xFFFFFFFF & ~CtInfo.PROFILE.put((1 << CtInfo.PROFILE.width) - 1)
"""ct_info bits a slot carries over: state, originator, kind, rewrites, FINs (not the profile,
which is the destination's own)."""

SIGNATURE, INFO, FLOW, EXPIRES, PARTNER, XLATE = (names.CT_SIGNATURE, names.CT_INFO,
                                                  names.CT_FLOW, names.CT_EXPIRES,
                                                  names.CT_PARTNER, names.CT_XLATE)

WIRE_FORMAT = "pyoffload.connections.v1"
WIRE_FIELDS = ("flow", "remaining_us", "protocol", "lo_addr", "hi_addr", "lo_port", "hi_port",
               "info", "xlate_src_addr", "xlate_src_port", "xlate_dst_addr", "xlate_dst_port",
               "partner_info", "partner_xlate_src_addr", "partner_xlate_src_port",
               "partner_xlate_dst_addr", "partner_xlate_dst_port")
"""One row per connection in an export document; partner fields are null for an
untranslated connection (its partner's tuple follows from the row)."""


@attrs.frozen(kw_only=True)
class SlotState:
    """One conntrack slot, without anything that ties it to a pipeline."""

    protocol: int
    lo_addr: int
    hi_addr: int
    lo_port: int
    hi_port: int
    info: int
    xlate: tuple[int, int, int, int]

    @property
    def key(self) -> Tuple5:
        return Tuple5(protocol=self.protocol, lo_addr=self.lo_addr, hi_addr=self.hi_addr,
                      lo_port=self.lo_port, hi_port=self.hi_port)


@attrs.frozen(kw_only=True)
class ExportedConnection:
    """A live connection of a VNIC, ready for another target."""

    flow: str
    remaining_us: int
    slot: SlotState
    partner: SlotState | None

    def to_row(self) -> list[Any]:
        s, p = self.slot, self.partner
        partner: list[Any] = [None] * 5 if p is None else [p.info, *p.xlate]
        return [self.flow, self.remaining_us, s.protocol, s.lo_addr, s.hi_addr, s.lo_port,
                s.hi_port, s.info, *s.xlate, *partner]

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> ExportedConnection:
        """Inverse of ``to_row``; TypeError/ValueError name what is wrong."""
        if len(row) != len(WIRE_FIELDS):
            raise ValueError(f"a connection row has {len(WIRE_FIELDS)} fields "
                             f"({', '.join(WIRE_FIELDS)}), not {len(row)}")
        flow = row[0]
        if not isinstance(flow, str):
            raise TypeError(f"flow must be a flow id string, not {flow!r}")
        numbers = row[1:12]
        _check_counts(WIRE_FIELDS[1:12], numbers, "")
        remaining, protocol, lo, hi, lo_port, hi_port, info, *xlate = numbers
        main = SlotState(protocol=protocol, lo_addr=lo, hi_addr=hi, lo_port=lo_port,
                         hi_port=hi_port, info=info & INFO_KEEP,
                         xlate=(xlate[0], xlate[1], xlate[2], xlate[3]))
        partner = None
        if CtInfo.is_translated(main.info):
            p_info, *p_xlate = row[12:]
            _check_counts(WIRE_FIELDS[12:], row[12:], " for a translated connection")
            a, b, ap, bp = partner_tuple(main)
            partner = SlotState(protocol=protocol, lo_addr=a, hi_addr=b, lo_port=ap,
                                hi_port=bp, info=p_info & INFO_KEEP,
                                xlate=(p_xlate[0], p_xlate[1], p_xlate[2], p_xlate[3]))
        return cls(flow=flow, remaining_us=remaining, slot=main, partner=partner)


_INT_ONLY = {int}


def _check_counts(names: Sequence[str], values: Sequence[Any], context: str) -> None:
    """Every value a non-negative int (bool is not), else ValueError naming the field."""
    if set(map(type, values)) == _INT_ONLY and min(values) >= 0:
        return  # the common case, checked without a Python-level loop
    for name, value in zip(names, values, strict=True):
        if type(value) is not int or value < 0:
            raise ValueError(f"{name} must be a non-negative integer{context}, not {value!r}")


def to_document(connections: Sequence[ExportedConnection]) -> dict[str, Any]:
    """The JSON document ``pyoffload migrate`` carries from one agent to the other."""
    return {"format": WIRE_FORMAT, "fields": list(WIRE_FIELDS),
            "connections": [c.to_row() for c in connections]}


def from_document(document: dict[str, Any]) -> list[ExportedConnection]:
    """The connections of an export document; ValueError says what is malformed."""
    with no_cyclic_gc():
        return _from_document(document)


def _from_document(document: dict[str, Any]) -> list[ExportedConnection]:
    if document.get("format") != WIRE_FORMAT:
        raise ValueError(f"not a connection export: format is {document.get('format')!r}, "
                         f"expected {WIRE_FORMAT!r}")
    rows = document.get("connections")
    if not isinstance(rows, list):
        raise ValueError("connections must be a list of rows")
    result = []
    for number, row in enumerate(rows):
        try:
            result.append(ExportedConnection.from_row(row))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"connection {number}: {exc}") from None
    return result


def partner_tuple(main: SlotState) -> tuple[int, int, int, int]:
    """The normalised tuple on the far side of a translated slot's rewrite."""
    info = CtInfo.decode(main.info)
    orig_hi = info.originator_is_hi
    lo, hi = (main.lo_addr, main.lo_port), (main.hi_addr, main.hi_port)
    src, dst = (hi, lo) if orig_hi else (lo, hi)
    xsa, xsp, xda, xdp = main.xlate
    if info.xlate_src:
        src = (xsa, xsp)
    if info.xlate_dst:
        dst = (xda, xdp)
    (a, ap), (b, bp) = sorted((src, dst))
    return a, b, ap, bp


def _rows(registers: RegisterAccess, names: Sequence[str], slots: Sequence[int]
          ) -> Iterator[list[int]]:
    """The cells ``names`` of each slot, one list per slot, read in bulk."""
    if not slots:
        return iter(())
    width = len(names)
    values = registers.read([(name, i) for i in slots for name in names])
    return (values[k * width:(k + 1) * width] for k in range(len(slots)))


def export_connections(registers: RegisterAccess, learned: list[Learned],
                       now: int, flow_names: dict[int, str]) -> list[ExportedConnection]:
    """The live connections among ``learned``, read from the pipeline at clock ``now``."""
    with no_cyclic_gc():
        return _export(registers, learned, now, flow_names)


def _export(registers: RegisterAccess, learned: list[Learned],
            now: int, flow_names: dict[int, str]) -> list[ExportedConnection]:
    live: list[tuple[Learned, int, int]] = []
    for conn, (signature, info, expires) in zip(
            learned, _rows(registers, (SIGNATURE, INFO, EXPIRES), [c.slot for c in learned]),
            strict=True):
        if (CtInfo.state_of(info) == ConnState.FREE or expires <= now
                or signature != slot_hash(conn.vnic_id, conn)[1]):
            continue  # over, or the slot now holds another connection
        live.append((conn, info, expires))
    translated = [conn.slot for conn, info, _ in live if CtInfo.is_translated(info)]
    sides = dict(zip(translated, _rows(registers, (PARTNER, *XLATE), translated), strict=True))
    partners = [sides[slot][0] for slot in translated]
    far = dict(zip(partners, _rows(registers, (INFO, *XLATE), partners), strict=True))
    exported = []
    for conn, info, expires in live:
        xlate = (0, 0, 0, 0)
        partner_state = None
        if conn.slot in sides:
            _partner, *x = sides[conn.slot]
            xlate = (x[0], x[1], x[2], x[3])
        main = SlotState(protocol=conn.protocol, lo_addr=conn.lo_addr, hi_addr=conn.hi_addr,
                         lo_port=conn.lo_port, hi_port=conn.hi_port, info=info & INFO_KEEP,
                         xlate=xlate)
        if conn.slot in sides:
            p_info, *px = far[sides[conn.slot][0]]
            a, b, ap, bp = partner_tuple(main)
            partner_state = SlotState(protocol=conn.protocol, lo_addr=a, hi_addr=b, lo_port=ap,
                                      hi_port=bp, info=p_info & INFO_KEEP,
                                      xlate=(px[0], px[1], px[2], px[3]))
        exported.append(ExportedConnection(flow=flow_names.get(conn.flow_id, str(conn.flow_id)),
                                           remaining_us=expires - now, slot=main,
                                           partner=partner_state))
    return exported


@attrs.frozen(kw_only=True)
class ImportResult:
    imported: int
    """Connections written into the destination."""
    present: int
    """Connections the destination already tracked (left as they were)."""
    overflow: int
    """Imported connections (or their translated side) placed in an overflow slot."""
    skipped: tuple[str, ...]
    """Why each connection that could not be imported was not."""
    learned: tuple[Learned, ...]


class OverflowSlots(Protocol):
    """Hands out the reserved conntrack slots (the agent's slow path)."""

    def claim_overflow(self, vnic_id: int, key: Tuple5) -> int | None: ...
    def release_overflow(self, vnic_id: int, key: Tuple5) -> None: ...
    def overflow_entry(self, vnic_id: int, key: Tuple5, slot: int) -> P4TableEntry: ...


@attrs.define
class _Placed:
    """Where one side of an imported connection goes."""

    state: SlotState
    index: int
    signature: int
    overflow: bool = False


class ImportSession:
    """One import, fed in chunks: plan slots, write cells, undo it all on failure.

    Chunks let ``pyoffload migrate`` write the first connections into the
    destination while the source still reads the next ones. Slots claimed by
    an earlier chunk stay claimed for the later ones; ``abort`` (or a refused
    write) frees every slot and overflow entry of the whole session.
    """

    def __init__(self, registers: RegisterAccess, client: P4RuntimeClient, schema: P4Schema,
                 overflow: OverflowSlots, *, vnic_id: int, slots: int,
                 flow_ids: dict[str, int], profiles: dict[str, int],
                 fresh: bool = False) -> None:
        """``fresh``: the target's conntrack registers are known to be empty (it just got
        the pipeline), so no slot is read to see whether it is held."""
        self.fresh = fresh
        self.registers, self.client = registers, client
        self.encoder = EntityEncoder(schema)
        self.overflow_slots, self.vnic_id, self.slots = overflow, vnic_id, slots
        self.flow_ids, self.profiles = flow_ids, profiles
        self.claimed: set[int] = set()
        self.overflow_keys: list[Tuple5] = []
        self.entries_written: list[P4TableEntry] = []
        self.imported = self.present = self.overflowed = 0
        self.skipped: list[str] = []
        self.learned: list[Learned] = []

    def result(self) -> ImportResult:
        return ImportResult(imported=self.imported, present=self.present,
                            overflow=self.overflowed, skipped=tuple(self.skipped),
                            learned=tuple(self.learned))

    def add(self, connections: Sequence[ExportedConnection], now: int) -> None:
        """Import one chunk at the destination's clock ``now``; after any failure, call
        ``abort`` to undo the whole session."""
        with no_cyclic_gc():
            self._add(connections, now)

    def add_all(self, chunks: Iterable[Sequence[ExportedConnection]], now: int) -> None:
        """``add`` of many connections, chunk by chunk, each chunk's writes overlapping
        the making and planning of the next (on two cores the two take about as long);
        after any failure, call ``abort``."""
        pending: concurrent.futures.Future[None] | None = None
        with no_cyclic_gc(), concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="pyoffload-import") as writer:
            try:
                for connections in chunks:
                    writes = self._plan(connections, now)
                    if pending is not None:
                        pending.result()
                    pending = writer.submit(writes)
            finally:
                if pending is not None:
                    pending.result()

    def _add(self, connections: Sequence[ExportedConnection], now: int) -> None:
        self._plan(connections, now)()

    def _plan(self, connections: Sequence[ExportedConnection], now: int
              ) -> Callable[[], None]:
        """Choose the slots of ``connections`` (claimed at once); the writes that put
        them in, to run next (the state words last)."""
        planned: list[tuple[ExportedConnection, list[tuple[SlotState, int, int]]]] = []
        for conn in connections:
            if conn.flow not in self.flow_ids:
                self.skipped.append(f"{_describe(conn)}: flow {conn.flow!r} is not installed "
                                    "on the destination")
                continue
            states = [conn.slot] if conn.partner is None else [conn.slot, conn.partner]
            planned.append((conn, [(st, *_index(self.vnic_id, st, self.slots))
                                   for st in states]))
        busy = self._busy({index for _, sides in planned for _, index, _ in sides}, now)
        cells: list[tuple[str, int, int]] = []
        infos: list[tuple[str, int, int]] = []
        entries: list[P4TableEntry] = []
        for conn, sides in planned:
            if any(busy.get(index) == signature for _, index, signature in sides):
                self.present += 1  # tracked there already: its state there is the newer one
                continue
            placed = self._place(sides, busy, entries)
            if placed is None:
                self.skipped.append(f"{_describe(conn)}: its slot is held and every overflow "
                                    "slot is taken")
                continue
            flow_id = self.flow_ids[conn.flow]
            profile = CtInfo.PROFILE.put(self.profiles.get(conn.flow, 0))
            expires = now + conn.remaining_us
            for k, p in enumerate(placed):
                cells += [(SIGNATURE, p.index, p.signature), (FLOW, p.index, flow_id),
                          (EXPIRES, p.index, expires)]
                if conn.partner is not None:
                    cells.append((PARTNER, p.index, placed[1 - k].index))
                    cells += [(name, p.index, v)
                              for name, v in zip(XLATE, p.state.xlate, strict=True)]
                infos.append((INFO, p.index, p.state.info | profile))
            self.overflowed += sum(p.overflow for p in placed)
            self.imported += 1
            s = conn.slot
            self.learned.append(Learned(vnic_id=self.vnic_id, flow_id=flow_id,
                                        protocol=s.protocol, lo_addr=s.lo_addr,
                                        hi_addr=s.hi_addr, lo_port=s.lo_port,
                                        hi_port=s.hi_port, slot=placed[0].index))
        def write() -> None:
            if entries:
                self.client.write_entities(UpdateType.INSERT,
                                           [self.encoder.encode(e) for e in entries])
                self.entries_written += entries
            self.registers.write(cells)
            self.registers.write(infos)

        return write

    def _busy(self, indices: set[int], now: int) -> dict[int, int]:
        """Slot -> stored signature, for the slots among ``indices`` a live connection holds.

        One read of ``ct_info`` for every slot (most are free); expiry and
        signature only for the ones in use.
        """
        ordered = [] if self.fresh else sorted(indices - self.claimed)
        used = [i for i, (info,) in zip(ordered, _rows(self.registers, (INFO,), ordered),
                                        strict=True) if CtInfo.state_of(info)]
        busy = {i: signature for i, (expires, signature)
                in zip(used, _rows(self.registers, (EXPIRES, SIGNATURE), used), strict=True)
                if expires > now}
        busy.update(dict.fromkeys(self.claimed & indices, -1))  # taken by this import
        return busy

    def _place(self, sides: list[tuple[SlotState, int, int]], busy: dict[int, int],
               entries: list[P4TableEntry]) -> list[_Placed] | None:
        placed: list[_Placed] = []
        for state, index, signature in sides:
            if index not in busy and index not in self.claimed:
                self.claimed.add(index)
                placed.append(_Placed(state, index, signature))
                continue
            slot = self.overflow_slots.claim_overflow(self.vnic_id, state.key)
            if slot is None:
                for p in placed:  # give back what this connection took
                    self.claimed.discard(p.index)
                    if p.overflow:
                        self.overflow_keys.remove(p.state.key)
                        entries.pop()
                        self.overflow_slots.release_overflow(self.vnic_id, p.state.key)
                return None
            self.overflow_keys.append(state.key)
            entries.append(self.overflow_slots.overflow_entry(self.vnic_id, state.key, slot))
            self.claimed.add(slot)
            placed.append(_Placed(state, slot, signature, overflow=True))
        return placed

    def abort(self) -> None:
        """Free every slot and overflow entry this session claimed: the target is as before."""
        try:
            if self.claimed:
                self.registers.write([(INFO, i, 0) for i in sorted(self.claimed)])
            if self.entries_written:
                self.client.write_entities(UpdateType.DELETE, [
                    self.encoder.encode(e) for e in self.entries_written])
        finally:
            for key in self.overflow_keys:
                self.overflow_slots.release_overflow(self.vnic_id, key)
            self.claimed.clear()
            self.overflow_keys.clear()
            self.entries_written.clear()
            self.learned.clear()
            self.imported = self.overflowed = 0


def import_connections(registers: RegisterAccess, connections: list[ExportedConnection], *,
                       client: P4RuntimeClient, schema: P4Schema, overflow: OverflowSlots,
                       vnic_id: int, slots: int, now: int, flow_ids: dict[str, int],
                       profiles: dict[str, int]) -> ImportResult:
    """Write ``connections`` into the pipeline behind ``client`` in one go (see the module doc)."""
    session = ImportSession(registers, client, schema, overflow, vnic_id=vnic_id, slots=slots,
                            flow_ids=flow_ids, profiles=profiles)
    try:
        session.add(connections, now)
    except BaseException:
        session.abort()
        raise
    return session.result()


def _index(vnic_id: int, state: SlotState, slots: int) -> tuple[int, int]:
    value, signature = slot_hash(vnic_id, state)
    return value % slots, signature


def _describe(conn: ExportedConnection) -> str:
    s = conn.slot
    return f"{conn.flow} (protocol {s.protocol}, ports {s.lo_port}/{s.hi_port})"
