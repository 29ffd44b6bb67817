"""The agent's slow path: what the pipeline punts, and conntrack overflow.

The conntrack hash table never overwrites a live connection. When a new
connection's slot is held by another, the pipeline punts its first packet
(``PUNT_CT_COLLISION``). Here the agent gives the connection one of the
reserved overflow slots with an exact-match ``vnic.ct_overflow`` entry keyed
by its direction-normalised 5-tuple, then sends the packet back into the
pipeline as if it had just arrived, where it is now tracked in that slot.

Each overflow entry carries an idle timeout longer than any conntrack timeout;
when the target reports it idle, the connection is over and the slot is
handed out again. When every overflow slot is taken, the connection cannot be
tracked: its packet is dropped, counted, and the guest is told (a Watch event).
"""

from __future__ import annotations

import ipaddress
import logging
import queue
import threading
from collections.abc import Callable, Hashable

import attrs
import grpc
from finsy import P4Schema, P4TableEntry
from finsy.proto import p4r
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Ether

from pyoffload.agent.connections import ConnectionTable
from pyoffload.compiler.resources import NumberSpace, ResourceExhausted
from pyoffload.p4runtime import P4RuntimeClient, P4RuntimeError, UpdateType
from pyoffload.pipeline import names
from pyoffload.pipeline.constants import PuntReason, Tuple5
from pyoffload.pipeline.entries import OverflowEntry, packet_out

_log = logging.getLogger(__name__)

OVERFLOW_IDLE_NS = 2 * 3600 * 10**9
"""Idle timeout of an overflow entry: longer than the longest conntrack timeout
the agent installs (built-in established TCP: 1 h)."""


def normalised_tuple(frame: bytes) -> Tuple5 | None:
    """The normalised 5-tuple of a TCP/UDP/ICMP-echo frame; None for anything else."""
    try:
        packet = Ether(frame)
    except Exception:  # scapy raises many kinds on garbage: not a trackable packet
        return None
    ip = packet.getlayer(IP) or packet.getlayer(IPv6)
    if ip is None:
        return None
    src = int(ipaddress.ip_address(ip.src))
    dst = int(ipaddress.ip_address(ip.dst))
    protocol = ip.proto if isinstance(ip, IP) else ip.nh
    l4 = packet.getlayer(TCP) or packet.getlayer(UDP)
    echo = (packet.getlayer(ICMP) or packet.getlayer(ICMPv6EchoRequest)
            or packet.getlayer(ICMPv6EchoReply))
    if l4 is not None:
        sport, dport = int(l4.sport), int(l4.dport)
    elif echo is not None:
        sport = dport = int(echo.id)
    else:
        return None
    if (src, sport) <= (dst, dport):
        return Tuple5(protocol=protocol, lo_addr=src, hi_addr=dst, lo_port=sport, hi_port=dport)
    return Tuple5(protocol=protocol, lo_addr=dst, hi_addr=src, lo_port=dport, hi_port=sport)


@attrs.define
class SlowPathStats:
    """What the slow path did since the agent started."""

    overflow_installed: int = 0
    overflow_released: int = 0
    overflow_full: int = 0
    nat_collisions: int = 0
    punted: int = 0


def _metadata_ids(schema: P4Schema, header: str) -> dict[str, int]:
    for meta in schema.p4info.controller_packet_metadata:
        if meta.preamble.name == header:
            return {m.name: m.id for m in meta.metadata}
    raise KeyError(f"the P4Info has no controller header {header!r}")


class SlowPath:
    """Serves one client's packet-ins and notifications until its stream ends."""

    def __init__(self, schema: P4Schema, *,
                 on_overflow_full: Callable[[int], None] = lambda vnic_id: None) -> None:
        self.schema = schema
        self.stats = SlowPathStats()
        self._in_ids = _metadata_ids(schema, names.PACKET_IN)
        total = next(r.size for r in schema.p4info.registers
                     if r.preamble.name == names.CT_INFO)
        overflow = schema.tables[names.CT_OVERFLOW].size
        self.slots = NumberSpace("conntrack overflow slots", total - overflow, total - 1)
        self._overflow_table_id = schema.tables[names.CT_OVERFLOW].id
        self._on_overflow_full = on_overflow_full
        self.connections = ConnectionTable(schema)
        self._lock = threading.Lock()

    def adopt(self, client: P4RuntimeClient) -> None:
        """Take over the overflow entries the target holds (none after a restart)."""
        entries = client.read([P4TableEntry(names.CT_OVERFLOW).encode(self.schema)])
        with self._lock:
            for owner in self.slots.owners():
                self.slots.release(owner)
            owners: dict[Hashable, int] = {}
            for entity in entries:
                entry = OverflowEntry.decode(entity.table_entry, self.schema)
                owners[(entry.vnic_id, entry.key)] = entry.slot
            self.slots.restore(owners)

    def run(self, client: P4RuntimeClient) -> threading.Thread:
        thread = threading.Thread(target=self._serve, args=(client,), daemon=True,
                                  name="pyoffload-slow-path")
        thread.start()
        return thread

    def _serve(self, client: P4RuntimeClient) -> None:
        while not client.disconnected.is_set():
            try:
                message = client.stream_messages.get(timeout=0.2)
            except queue.Empty:
                continue
            kind = message.WhichOneof("update")
            try:
                if kind == "packet":
                    self.on_packet_in(client, message.packet)
                elif kind == "idle_timeout_notification":
                    self.on_idle(client, message.idle_timeout_notification)
                elif kind == "digest":
                    self.connections.on_digest(client, message.digest)
            except P4RuntimeError as exc:
                _log.warning("slow path: the target refused an update: %s", exc)
            except Exception:  # one bad message must not end the slow path
                _log.exception("slow path: a %s message could not be handled", kind)

    def on_packet_in(self, client: P4RuntimeClient, packet: p4r.PacketIn) -> None:
        meta = {m.metadata_id: int.from_bytes(m.value, "big") for m in packet.metadata}
        reason = meta.get(self._in_ids["reason"], 0)
        vnic_id = meta.get(self._in_ids["vnic_id"], 0)
        port = meta.get(self._in_ids["ingress_port"], 0)
        if reason == PuntReason.CT_COLLISION:
            self._overflow(client, packet.payload, vnic_id, port)
        elif reason == PuntReason.NAT_COLLISION:
            self.stats.nat_collisions += 1
        else:
            self.stats.punted += 1

    def _overflow(self, client: P4RuntimeClient, frame: bytes, vnic_id: int, port: int) -> None:
        key = normalised_tuple(frame)
        if key is None:
            return
        with self._lock:
            owner = (vnic_id, key)
            fresh = self.slots.get(owner) is None
            try:
                slot = self.slots.take(owner)
            except ResourceExhausted:
                self.stats.overflow_full += 1
                self._on_overflow_full(vnic_id)
                return
        if fresh:
            entry = self.overflow_entry(vnic_id, key, slot)
            try:
                client.write_entities(UpdateType.INSERT, [entry.encode(self.schema)])
            except P4RuntimeError:
                with self._lock:
                    self.slots.release(owner)
                raise
            self.stats.overflow_installed += 1
        self.inject(client, frame, port)

    def claim_overflow(self, vnic_id: int, key: Tuple5) -> int | None:
        """An overflow slot for a connection (its own, if it has one); None when all are taken.

        The caller installs ``overflow_entry`` for it, or gives it back with
        ``release_overflow`` (state handover does both in bulk).
        """
        with self._lock:
            try:
                return self.slots.take((vnic_id, key))
            except ResourceExhausted:
                self.stats.overflow_full += 1
                return None

    def release_overflow(self, vnic_id: int, key: Tuple5) -> None:
        with self._lock:
            self.slots.release((vnic_id, key))

    def overflow_entry(self, vnic_id: int, key: Tuple5, slot: int) -> P4TableEntry:
        """The ``vnic.ct_overflow`` entry that points ``key`` of VNIC ``vnic_id`` at ``slot``."""
        return OverflowEntry(vnic_id=vnic_id, key=key, slot=slot).entry(OVERFLOW_IDLE_NS)

    def inject(self, client: P4RuntimeClient, frame: bytes, port: int) -> None:
        """Run ``frame`` through the pipeline as if it had arrived on ``port``."""
        self._send(client, packet_out(self.schema, frame, inject_port=port, inject=True))

    def probe_clock(self, client: P4RuntimeClient) -> None:
        """Ask the pipeline to record its clock in ``vnic.clock``: a packet-out, which
        only the primary may send (a backup's would be refused, and the clock never
        recorded)."""
        if not client.primary:
            holder = ("no controller is" if client.no_primary else
                      f"another controller (election id {client.highest_election_id}) is")
            raise P4RuntimeError(
                "clock probe", grpc.StatusCode.UNAVAILABLE,
                f"{holder} primary for the target, and only the primary may send the packet "
                "that reads the pipeline's clock: tracked connections can be read once this "
                "agent is primary again")
        self._send(client, packet_out(self.schema, b"\x00" * 60, probe=True))

    @staticmethod
    def _send(client: P4RuntimeClient, packet: p4r.PacketOut) -> None:
        client.packet_out(packet.payload, [(m.metadata_id, m.value) for m in packet.metadata])

    def on_idle(self, client: P4RuntimeClient,
                notification: p4r.IdleTimeoutNotification) -> None:
        """Overflow entries idle for longer than any connection: free their slots."""
        expired = [te for te in notification.table_entry
                   if te.table_id == self._overflow_table_id]
        if not expired:
            return
        client.write_entities(UpdateType.DELETE,
                              [p4r.Entity(table_entry=te) for te in expired])
        with self._lock:
            by_slot = {number: owner for owner, number in
                       ((o, self.slots.get(o)) for o in self.slots.owners())}
            for te in expired:
                slot = OverflowEntry.decode(te, self.schema).slot
                owner = by_slot.get(slot)
                if owner is not None:
                    self.slots.release(owner)
                    self.stats.overflow_released += 1
