"""L4 load balancing with real packets: a VIP over two backends, connections
spread and sticky, replies from the VIP, established connections kept when
the backend group changes, a removed backend drained."""

from __future__ import annotations

import ptf.testutils as tu
from scapy.layers.inet import IP

from ptf_tests.packets import Packet, parse, rewritten, tcp
from ptf_tests.vnic_test import GUEST_PORT, UPLINK_PORT, OffloadTest

GUEST, VIP = "10.0.0.1", "198.51.100.80"
BACKENDS = ("10.2.0.11", "10.2.0.12")
CONNECTIONS = range(40000, 40016)


def rules(backends: tuple[str, ...]) -> str:
    members = ", ".join(f"{{address: {b}, port: 8080}}" for b in backends)
    return f"""
flows:
  - id: vip-http
    match: {{direction: from-guest, protocol: tcp, dst: {VIP}/32, dst_ports: 80}}
    config: {{services: [conntrack, lb], default_verdict: allow-track}}
    rules:
      - id: web-pool
        load_balance: {{vip: {VIP}, port: 80, protocol: tcp, backends: [{members}]}}
"""


class LoadBalancerTest(OffloadTest):
    def open(self, sport: int) -> str:
        """A SYN from the guest's ``sport`` to the VIP; the backend it went to."""
        syn = tcp(GUEST, VIP, sport, 80, "S")
        tu.send_packet(self, GUEST_PORT, syn)
        frame = self.receive(UPLINK_PORT)
        backend = str(parse(frame)[IP].dst)
        self.assertIn(backend, BACKENDS)
        self.assertEqual(frame, bytes(rewritten(syn, dst=(backend, 8080))))
        return backend

    def exchange(self, sport: int, backend: str) -> None:
        """Reply and data of an open connection: kept on ``backend``, seen from the VIP."""
        synack = tcp(backend, GUEST, 8080, sport, "SA", seq=500, ack=1001, inbound=True)
        self.pass_in(synack, rewritten(synack, src=(VIP, 80)))
        data: Packet = tcp(GUEST, VIP, sport, 80, "PA", seq=1001, ack=501, payload=b"GET /")
        self.pass_out(data, rewritten(data, dst=(backend, 8080)))


class SpreadAndSticky(LoadBalancerTest):
    """New connections land on both backends; each keeps its backend."""

    def runTest(self) -> None:
        self.offload(rules(BACKENDS))
        chosen = {sport: self.open(sport) for sport in CONNECTIONS}
        self.assertEqual(set(chosen.values()), set(BACKENDS), chosen)
        for sport, backend in chosen.items():
            self.exchange(sport, backend)
        tu.verify_no_other_packets(self)


class GroupChangeKeepsConnections(LoadBalancerTest):
    """With a backend removed from the group, its established connections stay
    on it; new connections go to the remaining one."""

    def runTest(self) -> None:
        installed = self.offload(rules(BACKENDS))
        chosen = {sport: self.open(sport) for sport in CONNECTIONS}
        self.assertIn(BACKENDS[1], chosen.values())
        for sport, backend in chosen.items():
            self.exchange(sport, backend)
        self.reoffload(installed, rules(BACKENDS[:1]))
        for sport, backend in chosen.items():
            self.exchange(sport, backend)
        for sport in range(41000, 41008):
            self.assertEqual(self.open(sport), BACKENDS[0])
        tu.verify_no_other_packets(self)


class RemovedBackendDrains(LoadBalancerTest):
    """A backend taken out of the group drains: its connections carry on to their
    close (FIN both ways, last ACK, all translated as before), and it gets no new
    connection."""

    def runTest(self) -> None:
        installed = self.offload(rules(BACKENDS))
        chosen = {sport: self.open(sport) for sport in CONNECTIONS}
        draining = [sport for sport, backend in chosen.items() if backend == BACKENDS[1]]
        self.assertTrue(draining, chosen)
        for sport in draining:
            self.exchange(sport, BACKENDS[1])
        self.reoffload(installed, rules(BACKENDS[:1]))

        for sport in draining:  # finish each connection on the removed backend
            fin: Packet = tcp(GUEST, VIP, sport, 80, "FA", seq=1006, ack=501)
            self.pass_out(fin, rewritten(fin, dst=(BACKENDS[1], 8080)))
            fin_back = tcp(BACKENDS[1], GUEST, 8080, sport, "FA", seq=501, ack=1007,
                           inbound=True)
            self.pass_in(fin_back, rewritten(fin_back, src=(VIP, 80)))
            last = tcp(GUEST, VIP, sport, 80, "A", seq=1007, ack=502)
            self.pass_out(last, rewritten(last, dst=(BACKENDS[1], 8080)))
        for sport in range(41000, 41008):  # new connections: never the drained backend
            self.assertEqual(self.open(sport), BACKENDS[0])
        tu.verify_no_other_packets(self)
