"""State handover with real packets: a VNIC's live connections move to another VNIC
with another id on other ports, through the same export and import as
``pyoffload migrate`` (registers over P4Runtime, or BMv2's Thrift runtime).

Before the import the destination drops the connection's packets (it knows
nothing of it); after it, the connection continues there, translated as
before, in both directions, while the source keeps serving it too.
"""

from __future__ import annotations

import ipaddress

import ptf.testutils as tu

from ptf_tests.packets import parse, rewritten, tcp
from ptf_tests.vnic_test import GUEST_PORT, UPLINK_PORT, OffloadTest
from pyoffload.agent.connections import Learned
from pyoffload.agent.handover import export_connections, import_connections
from pyoffload.agent.registers import P4RuntimeRegisters, RegisterAccess, ThriftRegisters
from pyoffload.agent.slowpath import SlowPath
from pyoffload.compiler import CompiledRequest, VnicTarget
from pyoffload.pipeline.constants import Tuple5, slot_hash

GUEST, REMOTE, PUBLIC = "10.0.0.1", "192.0.2.10", "203.0.113.7"
B_GUEST_PORT, B_UPLINK_PORT = 3, 4
RULES = f"""
flows:
  - id: egress
    match: {{direction: from-guest, protocol: tcp}}
    config: {{services: [conntrack, nat], default_verdict: deny}}
    rules:
      - {{id: web, match: {{dst_ports: 80, ct_state: new}}, verdict: allow-track}}
      - {{id: snat, snat: {{address: {PUBLIC}, ports: 20000-20099}}}}
  - id: ingress
    match: {{direction: to-guest}}
    config: {{services: [conntrack], default_verdict: deny}}
"""


class ConnectionMovesToAnotherVnic(OffloadTest):
    """An established, SNAT'ed TCP connection of VNIC 7 (ports 1, 2) is exported and
    imported into VNIC 8 (ports 3, 4): its data and replies pass there, translated
    to the same public port; before the import they were dropped."""

    def registers(self) -> RegisterAccess:
        thrift = tu.test_param_get("thrift_addr")
        if thrift:
            registers = ThriftRegisters(str(thrift))
            self.addCleanup(registers.close)
            return registers
        return P4RuntimeRegisters(self.client, self.schema)

    def runTest(self) -> None:
        source = self.offload(RULES)
        destination_vnic = VnicTarget(name="vnic-b", vnic_id=8)
        self.add_vnic(8, guest_port=B_GUEST_PORT, uplink_port=B_UPLINK_PORT, policy="DENY")
        destination = self.compile_for(destination_vnic, RULES)

        syn = tcp(GUEST, REMOTE, 41000, 80, "S")
        tu.send_packet(self, GUEST_PORT, syn)
        public_port = int(parse(self.receive(UPLINK_PORT)).sport)
        synack = tcp(REMOTE, PUBLIC, 80, public_port, "SA", seq=7000, ack=1001, inbound=True)
        self.pass_in(synack, rewritten(synack, dst=(GUEST, 41000)))
        ack = tcp(GUEST, REMOTE, 41000, 80, "A", seq=1001, ack=7001)
        self.pass_out(ack, rewritten(ack, src=(PUBLIC, public_port)))

        data = tcp(GUEST, REMOTE, 41000, 80, "PA", seq=1001, ack=7001, payload=b"hello")
        reply = tcp(REMOTE, PUBLIC, 80, public_port, "PA", seq=7001, ack=1006,
                    payload=b"world", inbound=True)
        tu.send_packet(self, B_GUEST_PORT, data)
        tu.send_packet(self, B_UPLINK_PORT, reply)
        tu.verify_no_other_packets(self)  # VNIC 8 knows nothing of the connection yet

        registers = self.registers()
        slow_path = SlowPath(self.schema)
        now = slow_path.connections.clock(registers, lambda: slow_path.probe_clock(self.client))
        learned = self.learned(source, slow_path.slots.first)
        exported = export_connections(registers, [learned], now,
                                      {n: f for f, n in source.flow_ids.items()})
        self.assertEqual(len(exported), 1)
        self.assertIsNotNone(exported[0].partner)  # the translated side travels too
        result = import_connections(
            registers, exported, client=self.client, schema=self.schema, overflow=slow_path,
            vnic_id=8, slots=slow_path.slots.first, now=now,
            flow_ids=dict(destination.flow_ids), profiles=dict(destination.profiles))
        self.assertEqual((result.imported, result.skipped), (1, ()))

        self.forwarded(data, B_GUEST_PORT, B_UPLINK_PORT, rewritten(data, src=(PUBLIC,
                                                                               public_port)))
        self.forwarded(reply, B_UPLINK_PORT, B_GUEST_PORT, rewritten(reply, dst=(GUEST, 41000)))
        self.pass_out(data, rewritten(data, src=(PUBLIC, public_port)))  # the source still serves
        tu.verify_no_other_packets(self)

    def compile_for(self, vnic: VnicTarget, rules: str) -> CompiledRequest:
        """``rules`` compiled for another VNIC (from the same pool) and installed."""
        saved, self.VNIC = self.VNIC, vnic
        try:
            compiled = self.compile(rules)
        finally:
            self.VNIC = saved
        self.insert(*compiled.entities)
        return compiled

    def learned(self, compiled: CompiledRequest, slots: int) -> Learned:
        """What the new-connection digest told an agent of the guest's connection."""
        guest, remote = int(ipaddress.IPv4Address(GUEST)), int(ipaddress.IPv4Address(REMOTE))
        key = Tuple5(protocol=6, lo_addr=guest, hi_addr=remote, lo_port=41000, hi_port=80)
        return Learned(vnic_id=self.VNIC.vnic_id, flow_id=compiled.flow_ids["egress"],
                       protocol=6, lo_addr=guest, hi_addr=remote, lo_port=41000, hi_port=80,
                       slot=slot_hash(self.VNIC.vnic_id, key)[0] % slots)
