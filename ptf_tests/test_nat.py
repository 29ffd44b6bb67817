"""NAT with real packets: SNAT with a port from a range, DNAT with a port,
both reversed on replies, with correct IPv4 and TCP/UDP checksums.

Expected frames are the sent ones with the translated fields changed and the
checksums computed again by scapy, so comparing bytes checks the checksums.
"""

from __future__ import annotations

import ptf.testutils as tu
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from ptf_tests.packets import Packet, checksums_valid, parse, rewritten, tcp, udp
from ptf_tests.vnic_test import GUEST_PORT, UPLINK_PORT, OffloadTest

GUEST, SERVER, REMOTE = "10.0.0.1", "10.0.0.5", "192.0.2.10"
PUBLIC, PORTS = "203.0.113.7", range(20000, 20100)
PUBLIC_WEB = "198.51.100.10"

RULES = f"""
flows:
  - id: egress
    match: {{direction: from-guest, src: {GUEST}/32}}
    config: {{services: [conntrack, nat], default_verdict: allow-track}}
    rules:
      - {{id: snat-tcp, match: {{protocol: tcp}},
          snat: {{address: {PUBLIC}, ports: {PORTS.start}-{PORTS.stop - 1}}}}}
      - {{id: snat-udp, match: {{protocol: udp}},
          snat: {{address: {PUBLIC}, ports: {PORTS.start}-{PORTS.stop - 1}}}}}
  - id: web-in
    match: {{direction: to-guest, protocol: tcp, dst: {PUBLIC_WEB}/32, dst_ports: 80}}
    config: {{services: [conntrack, nat], default_verdict: allow-track}}
    rules:
      - {{id: web, dnat: {{address: {SERVER}, port: 8080}}}}
"""


class NatTest(OffloadTest):
    def setUp(self) -> None:
        super().setUp()
        self.offload(RULES)

    def snat_out(self, pkt: Packet) -> int:
        """Sends ``pkt`` from the guest; checks its translation; returns the port chosen."""
        tu.send_packet(self, GUEST_PORT, pkt)
        frame = self.receive(UPLINK_PORT)
        self.assertTrue(checksums_valid(frame), f"bad checksums: {parse(frame)!r}")
        port = int(parse(frame).sport)
        self.assertIn(port, PORTS)
        self.assertEqual(frame, bytes(rewritten(pkt, src=(PUBLIC, port))))
        return port


class SnatTcp(NatTest):
    """Guest connections leave from 203.0.113.7 with a port in 20000-20099, each
    keeping its port; replies come back to 10.0.0.1 and the guest's own port;
    traffic to a public port no connection holds is dropped."""

    def runTest(self) -> None:
        used: set[int] = set()
        for sport in (40000, 40001, 51234):
            syn = tcp(GUEST, REMOTE, sport, 80, "S")
            port = self.snat_out(syn)
            synack = tcp(REMOTE, PUBLIC, 80, port, "SA", seq=7000, ack=1001, inbound=True)
            self.pass_in(synack, rewritten(synack, dst=(GUEST, sport)))
            data = tcp(GUEST, REMOTE, sport, 80, "PA", seq=1001, ack=7001, payload=b"x" * 333)
            self.assertEqual(self.snat_out(data), port)
            reply = tcp(REMOTE, PUBLIC, 80, port, "PA", seq=7001, ack=1334,
                        payload=b"y" * 777, inbound=True)
            self.pass_in(reply, rewritten(reply, dst=(GUEST, sport)))
            used.add(port)
        stray = min(set(PORTS) - used)
        self.drop_in(tcp(REMOTE, PUBLIC, 80, stray, "PA", payload=b"?", inbound=True))
        tu.verify_no_other_packets(self)


class SnatUdp(NatTest):
    """UDP likewise: translated out, reverse-translated back, checksums correct."""

    def runTest(self) -> None:
        query = udp(GUEST, REMOTE, 33333, 53, payload=b"query" * 7)
        port = self.snat_out(query)
        answer = udp(REMOTE, PUBLIC, 53, port, payload=b"answer" * 11, inbound=True)
        self.pass_in(answer, rewritten(answer, dst=(GUEST, 33333)))
        self.assertEqual(self.snat_out(query), port)
        tu.verify_no_other_packets(self)


class SnatKeepsChecksumErrors(NatTest):
    """The L4 checksum is updated for the rewrite, not computed afresh: a segment
    corrupted before the VNIC stays detectably corrupt after it, and bytes after
    the IP packet (Ethernet padding) do not enter the checksum."""

    def runTest(self) -> None:
        syn = tcp(GUEST, REMOTE, 40000, 80, "S", options=[("MSS", 1460), ("SAckOK", b"")])
        port = self.snat_out(Ether(bytes(syn) + bytes(range(1, 7))))
        ack = tcp(GUEST, REMOTE, 40000, 80, "A", seq=1001, ack=1)
        ack[TCP].chksum = (TCP(bytes(ack[TCP])).chksum + 0x100) & 0xFFFF
        tu.send_packet(self, GUEST_PORT, ack)
        out = parse(self.receive(UPLINK_PORT))
        self.assertEqual((out.sport, out[IP].src), (port, PUBLIC))
        expected = rewritten(ack, src=(PUBLIC, port))[TCP].chksum
        self.assertEqual(out[TCP].chksum, (expected + 0x100) & 0xFFFF, "error laundered")
        tu.verify_no_other_packets(self)


class DnatInbound(NatTest):
    """198.51.100.10:80 from the network reaches the guest at 10.0.0.5:8080; the
    guest's replies leave from 198.51.100.10:80 again."""

    def runTest(self) -> None:
        syn = tcp(REMOTE, PUBLIC_WEB, 33000, 80, "S", inbound=True)
        self.pass_in(syn, rewritten(syn, dst=(SERVER, 8080)))
        synack = tcp(SERVER, REMOTE, 8080, 33000, "SA", seq=9000, ack=1001)
        self.pass_out(synack, rewritten(synack, src=(PUBLIC_WEB, 80)))
        data = tcp(REMOTE, PUBLIC_WEB, 33000, 80, "PA", seq=1001, ack=9001,
                   payload=b"GET /", inbound=True)
        self.pass_in(data, rewritten(data, dst=(SERVER, 8080)))
        self.drop_in(tcp(REMOTE, SERVER, 33001, 8080, "S", inbound=True))
        tu.verify_no_other_packets(self)
