"""Pipeline layer of the packet tests: helpers named after VNIC operations.

Names of tables, actions and fields are those of the P4Info; numbers
(directions, policies, verdicts) come from the compiled constants of
``p4src/include/defines.p4``, never typed in twice.
"""

from __future__ import annotations

import ptf.testutils as tu
from finsy import (
    P4CloneSessionEntry,
    P4CounterEntry,
    P4PacketOut,
)
from ptf.mask import Mask

from ptf_tests.p4runtime_test import P4RuntimeTest
from ptf_tests.packets import Packet
from pyoffload.compiler import CompiledRequest, ResourcePool, VnicTarget, compile_request
from pyoffload.p4runtime.entities import entity_key
from pyoffload.pipeline.artifacts import load_constants
from pyoffload.pipeline.constants import DropReason, Policy
from pyoffload.pipeline.entries import port_map_entries
from pyoffload.pipeline.names import DROP_COUNTER, EARLY_DROP_COUNTER
from pyoffload.rules import OffloadRequest, load_text

CONST = load_constants()

GUEST_PORT = 1
UPLINK_PORT = 2
OTHER_GUEST_PORT = 3
UNMAPPED_PORT = 4
MONITOR_PORT = 4


class VnicTest(P4RuntimeTest):
    """Adds VNICs (a guest port and its uplink) to the port map."""

    def add_vnic(
        self,
        vnic_id: int,
        *,
        guest_port: int = GUEST_PORT,
        uplink_port: int = UPLINK_PORT,
        policy: str = "ALLOW",
    ) -> None:
        """A VNIC between ``guest_port`` (its VM) and ``uplink_port`` (the network), with
        ``policy`` (a ``Policy`` name) for IP traffic no flow matches."""
        for entry in port_map_entries(vnic_id=vnic_id, guest_port=guest_port,
                                      uplink_port=uplink_port, policy=Policy[policy]):
            self.insert(entry)


class OffloadTest(VnicTest):
    """A VNIC configured through the product's own path: rules -> compiler -> entities.

    ``offload`` compiles an ``OffloadRequest`` (or rule-file YAML) for the
    test's VNIC with ``pyoffload.compiler.compile_request`` and installs the
    entities in the compiler's order; raw P4Runtime is only used to look
    inside (counters) and for what a host configures (clone sessions).
    """

    VNIC = VnicTarget(name="vnic-ptf", vnic_id=7)

    def setUp(self) -> None:
        super().setUp()
        self.pool = ResourcePool()

    def compile(self, request: OffloadRequest | str) -> CompiledRequest:
        if isinstance(request, str):
            request = load_text(request, source="test rules")
        return compile_request(request, self.VNIC, CONST, self.pool)

    def offload(self, request: OffloadRequest | str, *, policy: str = "DENY") -> CompiledRequest:
        """A VNIC (guest port 1, uplink 2, ``policy`` for no flow) running ``request``."""
        self.add_vnic(self.VNIC.vnic_id, policy=policy)
        compiled = self.compile(request)
        self.insert(*compiled.entities)
        return compiled

    def reoffload(self, before: CompiledRequest,
                  request: OffloadRequest | str) -> CompiledRequest:
        """Moves the VNIC from ``before`` to ``request``: what is new is inserted,
        what changed modified, what is gone deleted (the installer's order)."""
        after = self.compile(request)
        old = {entity_key(e.encode(self.schema)): e for e in before.entities}
        new = {entity_key(e.encode(self.schema)): e for e in after.entities}
        self.insert(*[e for k, e in new.items() if k not in old])
        self.modify(*[e for k, e in new.items() if k in old
                      and e.encode(self.schema) != old[k].encode(self.schema)])
        self.delete(*[e for k, e in reversed(old.items()) if k not in new])
        return after

    def counter(self, name: str, index: int) -> int:
        """Packets counted so far in cell ``index`` of the indirect counter ``name``."""
        (entity,) = self.read(P4CounterEntry(name, index=index))
        return int(entity.counter_entry.data.packet_count)

    def drops(self, reason: str) -> int:
        """Packets dropped for ``reason`` (``DROP_*`` of defines.p4) by either drop counter."""
        index = DropReason[reason]
        return self.counter(DROP_COUNTER, index) + self.counter(EARLY_DROP_COUNTER, index)

    def inject(self, frame: bytes, port: int) -> None:
        """Runs ``frame`` through the pipeline as if it had arrived on ``port``
        (packet-out from the CPU port): for frames no Linux link can carry."""
        update = P4PacketOut(frame, egress_port=0, inject_port=port, inject=1,
                             probe=0, _pad=0).encode_update(self.schema)
        self.client.packet_out(update.packet.payload,
                               [(m.metadata_id, m.value) for m in update.packet.metadata])

    def clone_session(self, session: int, port: int) -> None:
        self.insert(P4CloneSessionEntry(session, replicas=[(port, 1)]))

    # -- packets through the VNIC -----------------------------------------

    def forwarded(self, pkt: Packet, from_port: int, to_port: int,
                  expected: Packet | Mask | None = None) -> None:
        """``pkt`` sent on ``from_port`` comes out on ``to_port`` (as ``expected``)."""
        tu.send_packet(self, from_port, pkt)
        tu.verify_packet(self, pkt if expected is None else expected, to_port)

    def pass_out(self, pkt: Packet, expected: Packet | Mask | None = None) -> None:
        """From the guest, out on the uplink."""
        self.forwarded(pkt, GUEST_PORT, UPLINK_PORT, expected)

    def pass_in(self, pkt: Packet, expected: Packet | Mask | None = None) -> None:
        """From the network, in to the guest."""
        self.forwarded(pkt, UPLINK_PORT, GUEST_PORT, expected)

    def drop_out(self, pkt: Packet) -> None:
        """From the guest: goes nowhere."""
        tu.send_packet(self, GUEST_PORT, pkt)
        tu.verify_no_other_packets(self)

    def drop_in(self, pkt: Packet) -> None:
        """From the network: goes nowhere."""
        tu.send_packet(self, UPLINK_PORT, pkt)
        tu.verify_no_other_packets(self)

    def receive(self, port: int) -> bytes:
        """The next frame on ``port`` (fails after the default timeout)."""
        result = tu.dp_poll(self, port_number=port)
        self.assertIsInstance(result, self.dataplane.PollSuccess, f"no frame on port {port}")
        return bytes(result.packet)
