"""Stateful firewall (conntrack), IPv4 and IPv6, with real packets.

The guest may open TCP connections to port 80, UDP to port 53 and ping; the
network may send nothing of its own (default deny both ways). Every test runs
its exchange for both address families.
"""

from __future__ import annotations

import time

import ptf.testutils as tu

from ptf_tests.packets import TcpConversation, echo, tcp, udp
from ptf_tests.vnic_test import OffloadTest

FAMILIES = (("10.0.0.1", "192.0.2.10"), ("fd00::1", "2001:db8::10"))

RULES = """
flows:
  - id: outbound
    match: {direction: from-guest}
    config:
      services: [conntrack]
      default_verdict: deny
      timeouts: {TIMEOUTS}
    rules:
      - {id: web, match: {protocol: tcp, dst_ports: 80, ct_state: new}, verdict: allow-track}
      - {id: dns, match: {protocol: udp, dst_ports: 53, ct_state: new}, verdict: allow-track}
      - {id: ping, match: {protocol: icmp, ct_state: new}, verdict: allow-track}
      - {id: ping6, match: {protocol: icmpv6, ct_state: new}, verdict: allow-track}
  - id: inbound
    match: {direction: to-guest}
    config: {default_verdict: deny}
"""


def rules(timeouts: str = "{}") -> str:
    return RULES.replace("{TIMEOUTS}", timeouts)


class ConntrackTest(OffloadTest):
    def setUp(self) -> None:
        super().setUp()
        self.offload(rules())

    def handshake(self, conv: TcpConversation) -> None:
        self.pass_out(conv.out("S"))
        self.pass_in(conv.back("SA"))
        self.pass_out(conv.out("A"))


class TcpLifecycle(ConntrackTest):
    """SYN, SYN-ACK, ACK, data both ways, FIN both ways and the last ACK all pass."""

    def runTest(self) -> None:
        for guest, remote in FAMILIES:
            conv = TcpConversation(guest, remote)
            self.handshake(conv)
            self.pass_out(conv.out("PA", b"GET / HTTP/1.0\r\n\r\n"))
            self.pass_in(conv.back("PA", b"HTTP/1.0 200 OK\r\n\r\n"))
            self.pass_out(conv.out("FA"))
            self.pass_in(conv.back("FA"))
            self.pass_out(conv.out("A"))
        tu.verify_no_other_packets(self)


class TcpResetCloses(ConntrackTest):
    """A RST passes and closes: later segments are dropped, a new SYN starts over."""

    def runTest(self) -> None:
        for guest, remote in FAMILIES:
            conv = TcpConversation(guest, remote)
            self.handshake(conv)
            self.pass_in(conv.back("R"))
            self.drop_in(conv.back("PA", b"late"))
            self.drop_out(conv.out("PA", b"late"))
            self.handshake(conv)
        tu.verify_no_other_packets(self)


class TcpUnsolicited(ConntrackTest):
    """No connection, no entry: an inbound SYN and an outbound ACK are dropped."""

    def runTest(self) -> None:
        before = self.drops("CT_INVALID")
        for guest, remote in FAMILIES:
            self.drop_in(tcp(remote, guest, 33000, 22, "S", inbound=True))
            self.drop_out(tcp(guest, remote, 40001, 80, "A", ack=77))
        self.assertEqual(self.drops("CT_INVALID") - before, len(FAMILIES))
        tu.verify_no_other_packets(self)


class TcpBadFlagsCreateNoState(ConntrackTest):
    """SYN+FIN and flagless segments are dropped and open nothing; a real SYN then works."""

    def runTest(self) -> None:
        for guest, remote in FAMILIES:
            for flags in ("SF", ""):
                conv = TcpConversation(guest, remote)
                self.drop_out(conv.out(flags))
                self.drop_in(conv.back("SA"))
            self.handshake(TcpConversation(guest, remote))
        tu.verify_no_other_packets(self)


class UdpTracking(ConntrackTest):
    """A DNS query opens its reply's way back; other inbound UDP is dropped."""

    def runTest(self) -> None:
        for guest, remote in FAMILIES:
            self.pass_out(udp(guest, remote, 40000, 53))
            self.pass_in(udp(remote, guest, 53, 40000, inbound=True))
            self.pass_out(udp(guest, remote, 40000, 53))
            self.drop_in(udp(remote, guest, 53, 40001, inbound=True))
            self.drop_in(udp(remote, guest, 5353, 40000, inbound=True))
        tu.verify_no_other_packets(self)


class IcmpEchoTracking(ConntrackTest):
    """An echo request lets its reply in; an unsolicited reply is dropped."""

    def runTest(self) -> None:
        for guest, remote in FAMILIES:
            self.pass_out(echo(guest, remote, 0x1234))
            self.pass_in(echo(remote, guest, 0x1234, reply=True, inbound=True))
            self.drop_in(echo(remote, guest, 0x4321, reply=True, inbound=True))
            self.drop_in(echo(remote, guest, 0x5678, inbound=True))
        tu.verify_no_other_packets(self)


class TimeoutsPerState(OffloadTest):
    """With a 1 s profile for half-open TCP, UDP and ICMP: after the wait, a late
    SYN-ACK, UDP reply and echo reply are dropped, while an established TCP
    connection (built-in 1 h) carries on and a new connection still completes."""

    def runTest(self) -> None:
        self.offload(rules("{tcp_syn: 1, udp_new: 1, icmp: 1}"))
        half_open, established = [], []
        for guest, remote in FAMILIES:
            conv = TcpConversation(guest, remote)
            self.pass_out(conv.out("S"))
            half_open.append(conv)
            conv = TcpConversation(guest, remote, guest_port=40001)
            self.pass_out(conv.out("S"))
            self.pass_in(conv.back("SA"))
            self.pass_out(conv.out("A"))
            established.append(conv)
            self.pass_out(udp(guest, remote, 40000, 53))
            self.pass_out(echo(guest, remote, 0x1234))
        time.sleep(1.3)  # longer than the timeouts: what is tested is the expiry
        for conv in half_open:
            self.drop_in(conv.back("SA"))
            self.drop_in(udp(conv.remote, conv.guest, 53, 40000, inbound=True))
            self.drop_in(echo(conv.remote, conv.guest, 0x1234, reply=True, inbound=True))
        for conv in established:
            self.pass_in(conv.back("PA", b"late but alive"))
        for guest, remote in FAMILIES:
            conv = TcpConversation(guest, remote, guest_port=40002)
            self.pass_out(conv.out("S"))
            self.pass_in(conv.back("SA"))
        tu.verify_no_other_packets(self)
