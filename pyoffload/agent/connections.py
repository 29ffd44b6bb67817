"""Tracked connections as the agent knows them: ``pyoffload flows``.

The pipeline tells the agent about every connection it starts tracking (the
``ct_new_digest_t`` digest: VNIC, flow, normalised tuple, slot); the state,
expiry and translation stay in the conntrack registers. Listing reads those
registers for the known slots and keeps the ones still live, comparing expiry
times with the pipeline's own clock (``vnic.clock``, refreshed by a probe
packet), since they are in that clock, not the host's.
"""

from __future__ import annotations

import collections
import ipaddress
import threading
import time
from collections.abc import Callable

import attrs
import grpc
from finsy import P4DigestEntry, P4Schema
from finsy.proto import p4d, p4r

from pyoffload.agent.registers import RegisterAccess
from pyoffload.p4runtime import P4RuntimeClient, P4RuntimeError, UpdateType
from pyoffload.pipeline import names
from pyoffload.pipeline.constants import ConnState, CtInfo

DIGEST = names.CT_NEW_DIGEST
REGISTERS = (names.CT_INFO, names.CT_EXPIRES, names.CT_FLOW, *names.CT_XLATE)
PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6"}


@attrs.frozen(kw_only=True)
class Learned:
    """A connection the pipeline reported when it started tracking it."""

    vnic_id: int
    flow_id: int
    protocol: int
    lo_addr: int
    hi_addr: int
    lo_port: int
    hi_port: int
    slot: int


@attrs.frozen(kw_only=True)
class Connection:
    """One live tracked connection (a row of ``pyoffload flows``)."""

    vnic_id: int
    flow_id: int
    protocol: str
    src: str
    sport: int
    dst: str
    dport: int
    state: str
    expires_in_s: float
    translated_src: str | None
    translated_dst: str | None
    slot: int


def _address(value: int, ipv6: bool) -> str:
    if not ipv6 and value < 2**32:
        return str(ipaddress.IPv4Address(value))
    return str(ipaddress.IPv6Address(value))


def _state_name(state: int) -> str:
    """``TCP_ESTABLISHED`` and the like (the CT_* states of defines.p4)."""
    try:
        return ConnState(state).name
    except ValueError:
        return str(state)


def _bits(data: p4d.P4Data) -> int:
    return int.from_bytes(data.bitstring, "big")


class ConnectionTable:
    """What the digests said, and how to read the live connections back."""

    def __init__(self, schema: P4Schema) -> None:
        self.schema = schema
        self.digest_id = schema.digests[DIGEST].id
        digest_type = schema.digests[DIGEST].type_spec
        self._fields = tuple(digest_type.members)  # type: ignore[union-attr]
        """The digest's members in the P4Info's order (checked by ``check_names``)."""
        self._lock = threading.Lock()
        self._by_slot: dict[int, Learned] = {}
        self._per_vnic: collections.Counter[int] = collections.Counter()
        """Learned connections per VNIC id, kept with ``_by_slot`` (counting is cheap)."""
        self.on_learned: Callable[[], None] = lambda: None
        """Called after new connections were learned (the quota enforcer listens)."""

    def configure(self, client: P4RuntimeClient) -> None:
        """Ask the target for new-connection digests (batched, at most 10 ms late)."""
        entry = P4DigestEntry(DIGEST, max_list_size=256, max_timeout_ns=10_000_000,
                              ack_timeout_ns=1_000_000_000).encode(self.schema)
        query = p4r.Entity(digest_entry=p4r.DigestEntry(digest_id=self.digest_id))
        try:
            present = client.read([query])
        except P4RuntimeError:
            present = []  # (a target answers NOT_FOUND for a digest not configured)
        if any(e.digest_entry.config == entry.digest_entry.config for e in present):
            return  # an adopted target: as it was, nothing to write
        kind = UpdateType.MODIFY if present else UpdateType.INSERT
        try:
            client.write_entities(kind, [entry])
        except P4RuntimeError:
            other = UpdateType.INSERT if kind == UpdateType.MODIFY else UpdateType.MODIFY
            client.write_entities(other, [entry])

    def on_digest(self, client: P4RuntimeClient, digest: p4r.DigestList) -> None:
        if digest.digest_id != self.digest_id:
            return
        with self._lock:
            for data in digest.data:
                values = dict(zip(self._fields, (_bits(m) for m in data.struct.members),
                                  strict=True))
                self._put(Learned(**values))
        client.digest_ack(digest.digest_id, digest.list_id)
        self.on_learned()

    def _put(self, conn: Learned) -> None:
        """Record ``conn`` in its slot (replacing whatever connection held it before)."""
        old = self._by_slot.get(conn.slot)
        if old is not None:
            self._per_vnic[old.vnic_id] -= 1
        self._by_slot[conn.slot] = conn
        self._per_vnic[conn.vnic_id] += 1

    def learn(self, connections: list[Learned] | tuple[Learned, ...]) -> None:
        """Connections written into the pipeline by the agent itself (an import)."""
        with self._lock:
            for conn in connections:
                self._put(conn)
        self.on_learned()

    def forget_all(self) -> None:
        """Forget every learned connection (their target is gone)."""
        with self._lock:
            self._by_slot.clear()
            self._per_vnic.clear()

    def count(self, vnic_id: int) -> int:
        """Connections learned for a VNIC (live or not: ``live_count`` tells)."""
        with self._lock:
            return self._per_vnic[vnic_id]

    def live_count(self, registers: RegisterAccess, now: int, vnic_id: int) -> int:
        """A VNIC's learned connections whose slot is still held at clock ``now``; the
        others are forgotten (their slot is free, or holds a connection yet unlearned)."""
        learned = [c for c in self.known() if c.vnic_id == vnic_id]
        if not learned:
            return 0
        expires = registers.read([(names.CT_EXPIRES, c.slot) for c in learned])
        dead = [c for c, e in zip(learned, expires, strict=True) if e <= now]
        with self._lock:
            for c in dead:
                if self._by_slot.get(c.slot) is c:
                    del self._by_slot[c.slot]
                    self._per_vnic[c.vnic_id] -= 1
        return len(learned) - len(dead)

    def known(self) -> list[Learned]:
        with self._lock:
            return list(self._by_slot.values())

    def clock(self, registers: RegisterAccess, probe: Callable[[], None],
              timeout: float = 2.0) -> int:
        """The pipeline's clock now (microseconds), read back after a probe packet."""
        (before,) = registers.read([(names.CLOCK, 0)])
        probe()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            (now,) = registers.read([(names.CLOCK, 0)])
            if now != before:
                return now
            time.sleep(0.005)
        raise P4RuntimeError("clock probe", grpc.StatusCode.DEADLINE_EXCEEDED,
                             "the pipeline did not record its clock for the probe packet")

    def live(self, registers: RegisterAccess, probe: Callable[[], None],
             vnic_ids: set[int] | None = None) -> list[Connection]:
        """The known connections still live in the pipeline (state, expiry, NAT)."""
        learned = [c for c in self.known() if vnic_ids is None or c.vnic_id in vnic_ids]
        if not learned:
            return []
        now = self.clock(registers, probe)
        cells = registers.read([(name, c.slot) for c in learned for name in REGISTERS])
        rows: list[Connection] = []
        width = len(REGISTERS)
        for i, conn in enumerate(learned):
            info, expires, flow, xsa, xsp, xda, xdp = cells[i * width:(i + 1) * width]
            if CtInfo.state_of(info) == ConnState.FREE or expires <= now or flow != conn.flow_id:
                continue  # over, or the slot now holds another connection
            rows.append(self._row(conn, info, expires - now, (xsa, xsp, xda, xdp)))
        return rows

    def _row(self, conn: Learned, info: int, remaining_us: int,
             xlate: tuple[int, int, int, int]) -> Connection:
        ipv6 = conn.lo_addr >= 2**32 or conn.hi_addr >= 2**32
        word = CtInfo.decode(info)
        originator_is_hi = word.originator_is_hi
        lo = (_address(conn.lo_addr, ipv6), conn.lo_port)
        hi = (_address(conn.hi_addr, ipv6), conn.hi_port)
        (src, sport), (dst, dport) = (hi, lo) if originator_is_hi else (lo, hi)
        xsa, xsp, xda, xdp = xlate
        return Connection(
            vnic_id=conn.vnic_id, flow_id=conn.flow_id,
            protocol=PROTOCOLS.get(conn.protocol, str(conn.protocol)),
            src=src, sport=sport, dst=dst, dport=dport,
            state=_state_name(word.state),
            expires_in_s=remaining_us / 1e6,
            translated_src=f"{ipaddress.IPv4Address(xsa)}:{xsp}" if word.xlate_src else None,
            translated_dst=f"{ipaddress.IPv4Address(xda)}:{xdp}" if word.xlate_dst else None,
            slot=conn.slot,
        )
