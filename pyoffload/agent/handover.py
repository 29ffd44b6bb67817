"""Move a VNIC's connection state to another target: ``pyoffload migrate``.

Export reads, from the source pipeline, every live connection the agent
learned of (digests): its normalised tuple, state, FIN bits, translation and
the time it has left; for a translated connection also its second slot (the
tuple on the far side of the rewrite). Nothing in the export depends on the
source: no slot numbers, no pipeline clock, no flow or profile numbers.

Import recomputes everything for the destination: the slots and signatures
from the hash the pipeline uses (CRC-32 over the VNIC id and the tuple, modulo
the destination's slot count), the flow and timeout profile from the
destination's own compilation of the same rules, and the expiry from the
destination's clock. A connection whose slot is held by a live connection on
the destination is skipped and reported. Import the rules first (apply the
same request on the destination), then the state, then move the traffic.
"""

from __future__ import annotations

import zlib
from typing import Any

import attrs

from pyoffload.agent.connections import Learned
from pyoffload.agent.registers import RegisterAccess

INFO_KEEP = 0x0000FFFF
"""ct_info bits a slot carries over: state, originator, kind, rewrites, FINs (not the profile)."""

SLOT_REGISTERS = ("vnic.ct_signature", "vnic.ct_info", "vnic.ct_flow", "vnic.ct_expires",
                  "vnic.ct_partner", "vnic.ct_xlate_src_addr", "vnic.ct_xlate_src_port",
                  "vnic.ct_xlate_dst_addr", "vnic.ct_xlate_dst_port")


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


@attrs.frozen(kw_only=True)
class ExportedConnection:
    """A live connection of a VNIC, ready for another target."""

    flow: str
    remaining_us: int
    slot: SlotState
    partner: SlotState | None

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExportedConnection:
        def slot(d: dict[str, Any] | None) -> SlotState | None:
            return None if d is None else SlotState(**{**d, "xlate": tuple(d["xlate"])})

        main = slot(data["slot"])
        assert main is not None
        return cls(flow=data["flow"], remaining_us=int(data["remaining_us"]), slot=main,
                   partner=slot(data.get("partner")))


def slot_hash(vnic_id: int, s: SlotState) -> tuple[int, int]:
    """(hash value, signature) of a slot's tuple, as stages/conntrack.p4 computes them."""
    addr = s.lo_addr.to_bytes(16, "big"), s.hi_addr.to_bytes(16, "big")
    ports = s.lo_port.to_bytes(2, "big"), s.hi_port.to_bytes(2, "big")
    key = (vnic_id.to_bytes(2, "big") + s.protocol.to_bytes(1, "big") + addr[0] + addr[1]
           + ports[0] + ports[1])
    signed = (ports[1] + ports[0] + addr[1] + addr[0] + s.protocol.to_bytes(1, "big")
              + vnic_id.to_bytes(2, "big") + b"\x5a")
    return zlib.crc32(key) & 0xFFFFFFFF, zlib.crc32(signed) & 0xFFFFFFFF


def _cells(registers: RegisterAccess, slots: list[int]) -> list[list[int]]:
    values = registers.read([(name, i) for i in slots for name in SLOT_REGISTERS])
    width = len(SLOT_REGISTERS)
    return [values[k * width:(k + 1) * width] for k in range(len(slots))]


def partner_tuple(main: SlotState) -> tuple[int, int, int, int]:
    """The normalised tuple on the far side of a translated slot's rewrite."""
    orig_hi = bool(main.info >> 4 & 1)
    lo, hi = (main.lo_addr, main.lo_port), (main.hi_addr, main.hi_port)
    src, dst = (hi, lo) if orig_hi else (lo, hi)
    xsa, xsp, xda, xdp = main.xlate
    if main.info >> 7 & 1:
        src = (xsa, xsp)
    if main.info >> 8 & 1:
        dst = (xda, xdp)
    (a, ap), (b, bp) = sorted((src, dst))
    return a, b, ap, bp


def export_connections(registers: RegisterAccess, learned: list[Learned],
                       now: int, flow_names: dict[int, str]) -> list[ExportedConnection]:
    """The live connections among ``learned``, read from the pipeline at clock ``now``."""
    if not learned:
        return []
    rows = _cells(registers, [c.slot for c in learned])
    partners: dict[int, int] = {}
    result: list[tuple[Learned, list[int]]] = []
    for conn, cells in zip(learned, rows, strict=True):
        _sig, info, flow, expires, partner, *_ = cells
        if info & 0xF == 0 or expires <= now or flow != conn.flow_id:
            continue
        result.append((conn, cells))
        if info >> 5 & 3:
            partners[conn.slot] = partner
    partner_cells = dict(zip(partners.values(),
                             _cells(registers, list(partners.values())), strict=True)) \
        if partners else {}
    exported = []
    for conn, cells in result:
        _sig, info, _flow, expires, _partner, xsa, xsp, xda, xdp = cells
        main = SlotState(protocol=conn.protocol, lo_addr=conn.lo_addr, hi_addr=conn.hi_addr,
                         lo_port=conn.lo_port, hi_port=conn.hi_port, info=info & INFO_KEEP,
                         xlate=(xsa, xsp, xda, xdp))
        partner_state = None
        if conn.slot in partners:
            p = partner_cells[partners[conn.slot]]
            a, b, ap, bp = partner_tuple(main)
            partner_state = SlotState(protocol=conn.protocol, lo_addr=a, hi_addr=b, lo_port=ap,
                                      hi_port=bp, info=p[1] & INFO_KEEP,
                                      xlate=(p[5], p[6], p[7], p[8]))
        exported.append(ExportedConnection(flow=flow_names.get(conn.flow_id, str(conn.flow_id)),
                                           remaining_us=expires - now, slot=main,
                                           partner=partner_state))
    return exported


@attrs.frozen(kw_only=True)
class ImportResult:
    imported: int
    skipped: tuple[str, ...]
    learned: tuple[Learned, ...]


def import_connections(registers: RegisterAccess, connections: list[ExportedConnection],
                       *, vnic_id: int, slots: int, now: int, flow_ids: dict[str, int],
                       profiles: dict[str, int]) -> ImportResult:
    """Write ``connections`` into the pipeline behind ``client`` (see the module doc)."""
    planned: list[tuple[ExportedConnection, int, int, int | None, int | None]] = []
    skipped: list[str] = []
    for conn in connections:
        if conn.flow not in flow_ids:
            skipped.append(f"flow {conn.flow!r} is not installed on the destination")
            continue
        index, sig = slot_hash(vnic_id, conn.slot)
        index %= slots
        p_index = p_sig = None
        if conn.partner is not None:
            p_hash, p_sig = slot_hash(vnic_id, conn.partner)
            p_index = p_hash % slots
        planned.append((conn, index, sig, p_index, p_sig))
    busy_slots = sorted({i for _, index, _, p_index, _ in planned
                         for i in (index, p_index) if i is not None})
    state = dict(zip(busy_slots, _cells(registers, busy_slots), strict=True)) \
        if busy_slots else {}

    def live(i: int) -> bool:
        cells = state[i]
        return cells[1] & 0xF != 0 and cells[3] > now

    writes: list[tuple[str, int, int]] = []
    learned = []
    for conn, index, sig, p_index, p_sig in planned:
        if live(index) or (p_index is not None and live(p_index)):
            skipped.append(f"{conn.flow}: its slot is held by a live connection")
            continue
        flow_id = flow_ids[conn.flow]
        profile = profiles.get(conn.flow, 0) << 16
        expires = now + conn.remaining_us
        for s, i, signature, partner in ((conn.slot, index, sig, p_index or 0),
                                         (conn.partner, p_index, p_sig, index)):
            if s is None or i is None or signature is None:
                continue
            values = (signature, s.info | profile, flow_id, expires, partner, *s.xlate)
            writes += [(name, i, v) for name, v in zip(SLOT_REGISTERS, values, strict=True)]
        learned.append(Learned(vnic_id=vnic_id, flow_id=flow_id, protocol=conn.slot.protocol,
                               lo_addr=conn.slot.lo_addr, hi_addr=conn.slot.hi_addr,
                               lo_port=conn.slot.lo_port, hi_port=conn.slot.hi_port, slot=index))
    registers.write(writes)
    return ImportResult(imported=len(learned), skipped=tuple(skipped), learned=tuple(learned))
