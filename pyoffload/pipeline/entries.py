"""Builders (and decoders) for the pipeline's host-owned entries and CPU headers.

The agent, the slow path, state handover, the PTF tests and the benchmarks all
need the same few shapes: a VNIC's two port-map entries, a conntrack overflow
entry, a packet-out to inject or probe. They are built here by P4Info name
(finsy entities, encoded against the schema by the caller) and read back with
finsy's decoder, never by slicing protobuf fields by position.
"""

from __future__ import annotations

import attrs
from finsy import P4PacketOut, P4Schema, P4TableAction, P4TableEntry, P4TableMatch
from finsy.proto import p4r

from pyoffload.pipeline import names
from pyoffload.pipeline.constants import PacketDirection, Policy, Tuple5


def port_map_entries(*, vnic_id: int, guest_port: int, uplink_port: int, policy: Policy,
                     admit_new: bool = True) -> list[P4TableEntry]:
    """The ``vnic.port_map`` entries of one VNIC: its guest port and its uplink port, each
    naming the other as its peer (``admit_new`` false: track no new connection)."""
    return [
        P4TableEntry(
            names.PORT_MAP,
            match=P4TableMatch(port=port),
            action=P4TableAction(names.SET_VNIC, vnic_id=vnic_id, direction=int(direction),
                                 peer_port=peer, default_policy=int(policy),
                                 admit_new=int(admit_new)),
        )
        for port, direction, peer in ((guest_port, PacketDirection.FROM_GUEST, uplink_port),
                                      (uplink_port, PacketDirection.TO_GUEST, guest_port))
    ]


@attrs.frozen(kw_only=True)
class OverflowEntry:
    """A ``vnic.ct_overflow`` entry: a colliding connection pointed at a reserved slot."""

    vnic_id: int
    key: Tuple5
    slot: int

    def entry(self, idle_timeout_ns: int = 0) -> P4TableEntry:
        k = self.key
        return P4TableEntry(
            names.CT_OVERFLOW,
            match=P4TableMatch(vnic_id=self.vnic_id, protocol=k.protocol, lo_addr=k.lo_addr,
                               hi_addr=k.hi_addr, lo_port=k.lo_port, hi_port=k.hi_port),
            action=P4TableAction(names.CT_USE_OVERFLOW_SLOT, slot=self.slot),
            idle_timeout_ns=idle_timeout_ns,
        )

    @classmethod
    def decode(cls, table_entry: p4r.TableEntry, schema: P4Schema) -> OverflowEntry:
        """The entry as read back from a target (finsy decodes it against the P4Info)."""
        if table_entry.table_id != schema.tables[names.CT_OVERFLOW].id:
            raise ValueError(f"not a {names.CT_OVERFLOW} entry: table id {table_entry.table_id}")
        entry = P4TableEntry.decode(p4r.Entity(table_entry=table_entry), schema)
        match = dict(entry.match or {})
        action = entry.action
        if not isinstance(action, P4TableAction):
            raise ValueError(f"a {names.CT_OVERFLOW} entry without a direct action: {entry!r}")
        args = action.args
        key = Tuple5(**{f: int(match.get(f, 0)) for f in
                        ("protocol", "lo_addr", "hi_addr", "lo_port", "hi_port")})
        return cls(vnic_id=int(match.get("vnic_id", 0)), key=key, slot=int(args["slot"]))


def packet_out(schema: P4Schema, frame: bytes, *, egress_port: int = 0, inject_port: int = 0,
               inject: bool = False, probe: bool = False) -> p4r.PacketOut:
    """A packet-out: sent out of ``egress_port``, or (``inject``) run through the pipeline as
    if it had arrived on ``inject_port``, or (``probe``) only to record the clock."""
    fields = {"egress_port": egress_port, "inject_port": inject_port, "inject": int(inject),
              "probe": int(probe), "_pad": 0}
    message: p4r.PacketOut = (P4PacketOut(frame, **fields).encode_update(schema).packet)
    return message
