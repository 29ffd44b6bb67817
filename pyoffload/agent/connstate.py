"""The VNICs' tracked connections as the agent handles them, in one unit: the
registers that hold them (P4Runtime, or BMv2's Thrift runtime), the pipeline's
clock their expiry is measured in, and moving them: a handover's export and
import, and the checkpoint put back on a target that came back empty (or
relearned by an agent that restarted against a live one).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping

from finsy import P4Schema

from pyoffload.agent.checkpoint import decode_chunks
from pyoffload.agent.connections import Learned
from pyoffload.agent.handover import ExportedConnection, ImportSession
from pyoffload.agent.journal import Journal
from pyoffload.agent.registers import P4RuntimeRegisters, RegisterAccess, ThriftRegisters
from pyoffload.agent.slowpath import SlowPath
from pyoffload.compiler import CompiledRequest
from pyoffload.p4runtime import P4RuntimeClient
from pyoffload.pipeline.constants import slot_hash

_log = logging.getLogger(__name__)

VnicSlots = Mapping[str, tuple[int, CompiledRequest | None]]
"""VNIC name -> (its pipeline VNIC id, its compiled rules in force)."""


class ConnectionKeeper:
    """Registers, clock, handover and checkpoints of one agent's connections."""

    def __init__(self, schema: P4Schema, slow_path: SlowPath, *, thrift_address: str | None,
                 journal: Journal | None) -> None:
        self.schema = schema
        self.slow_path = slow_path
        self.thrift_address = thrift_address
        """BMv2's Thrift runtime address: its registers are not served over P4Runtime."""
        self.journal = journal
        self._thrift: ThriftRegisters | None = None

    def registers(self, client: P4RuntimeClient) -> RegisterAccess:
        """Thrift for BMv2 (given its address), P4Runtime register entries otherwise."""
        if self.thrift_address is not None:
            if self._thrift is None:
                self._thrift = ThriftRegisters(self.thrift_address)
            return self._thrift
        return P4RuntimeRegisters(client, self.schema)

    def clock(self, client: P4RuntimeClient) -> int:
        return self.slow_path.connections.clock(
            self.registers(client), lambda: self.slow_path.probe_clock(client))

    def running_clock(self, client: P4RuntimeClient) -> Callable[[], int]:
        """The pipeline's clock (µs), read once and then advanced with the host's.

        Both clocks run at real time; reading the pipeline's takes a probe
        packet and a few milliseconds, too much for every chunk of a handover.
        """
        base, start = self.clock(client), time.monotonic_ns()
        return lambda: base + (time.monotonic_ns() - start) // 1000

    def import_session(self, client: P4RuntimeClient, vnic_id: int,
                       compiled: CompiledRequest, *, fresh: bool = False) -> ImportSession:
        """An all-or-nothing import of connections into ``vnic_id``'s rules in force
        (``fresh``: into a target whose registers were just wiped)."""
        return ImportSession(
            self.registers(client), client, self.schema, self.slow_path, vnic_id=vnic_id,
            slots=self.slow_path.slots.first, flow_ids=dict(compiled.flow_ids),
            profiles=dict(compiled.profiles), fresh=fresh)

    def checkpointed(self, vnic: str) -> Iterator[list[ExportedConnection]]:
        """The VNIC's connections in the state file, with the time they have left now, in
        chunks decoded as they are taken (an unreadable checkpoint: none, and a warning)."""
        if self.journal is None:
            return
        rows = [(row, read) for _key, row, read in self.journal.read_connections(vnic)]
        try:
            yield from decode_chunks(rows, time.time())
        except (ValueError, TypeError) as exc:
            _log.warning("state file %s: VNIC %s's connection checkpoint is unreadable (%s): "
                         "not restored", self.journal.path, vnic, exc)

    def restore(self, client: P4RuntimeClient, vnics: VnicSlots, *, empty: bool = True) -> None:
        """The target came back empty: its rules are in, its port maps not yet; put every
        checkpointed connection back so established connections keep passing."""
        self.slow_path.connections.forget_all()  # (their slots were another target's)
        for name, (vnic_id, compiled) in vnics.items():
            if compiled is None:
                continue
            session = self.import_session(client, vnic_id, compiled, fresh=empty)
            try:
                session.add_all(self.checkpointed(name), self.running_clock(client)())
            except BaseException:
                session.abort()
                raise
            result = session.result()
            self.slow_path.connections.learn(result.learned)
            not_restored = (f" ({len(result.skipped)} not: {'; '.join(result.skipped[:3])})"
                            if result.skipped else "")
            _log.info("VNIC %s: %d checkpointed connections restored on the target%s", name,
                      result.imported, not_restored)

    def relearn(self, vnics: VnicSlots) -> None:
        """An agent that restarted against a live target learns again which slots hold its
        VNICs' connections (the digests went to the agent before it), from the checkpoint:
        the pipeline's hash gives the slot, the overflow entries the others."""
        slots = self.slow_path.slots
        learned = []
        for name, (vnic_id, compiled) in vnics.items():
            if compiled is None:
                continue
            for conn in (c for chunk in self.checkpointed(name) for c in chunk):
                key = conn.slot.key
                flow_id = compiled.flow_ids.get(conn.flow)
                if flow_id is None:
                    continue
                slot = slots.get((vnic_id, key))
                if slot is None:
                    slot = slot_hash(vnic_id, key)[0] % slots.first
                learned.append(Learned(vnic_id=vnic_id, flow_id=flow_id, protocol=key.protocol,
                                       lo_addr=key.lo_addr, hi_addr=key.hi_addr,
                                       lo_port=key.lo_port, hi_port=key.hi_port, slot=slot))
        self.slow_path.connections.learn(learned)
