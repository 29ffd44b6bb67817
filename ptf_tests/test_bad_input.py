"""Bad and unusual input: each frame gets its defined outcome, and none of
them disturbs an established connection (checked after every test).

Outcomes: a frame cut inside a header, a wrong IP version or IHL, and a bad
IPv4 header checksum are dropped and counted in ingress; IPv4 options pass
intact; non-first fragments carry no ports, so they belong to flows that do
not match on ports, else the VNIC's policy applies; ARP and IPv6 neighbour
discovery pass untouched.
"""

from __future__ import annotations

import ptf.testutils as tu
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_Redirect,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import ARP, Ether

from ptf_tests.packets import GATEWAY_MAC, GUEST_MAC, TcpConversation, tcp, udp
from ptf_tests.vnic_test import GUEST_PORT, UPLINK_PORT, OffloadTest

GUEST, REMOTE = "10.0.0.1", "192.0.2.10"
ETH, IPV4, IPV6 = 14, 20, 40

RULES = """
flows:
  - id: web
    match: {direction: from-guest, protocol: tcp, dst_ports: 80}
    config: {services: [conntrack], default_verdict: allow-track}
  - id: other-tcp
    match: {direction: from-guest, protocol: tcp}
    config: {default_verdict: allow}
"""


class BadInputTest(OffloadTest):
    """A VNIC (deny by default) with one established web connection."""

    def setUp(self) -> None:
        super().setUp()
        self.offload(RULES)
        self.conv = TcpConversation(GUEST, REMOTE)
        self.pass_out(self.conv.out("S"))
        self.pass_in(self.conv.back("SA"))
        self.pass_out(self.conv.out("A"))

    def connection_alive(self) -> None:
        self.pass_out(self.conv.out("PA", b"still there?"))
        self.pass_in(self.conv.back("PA", b"yes"))
        tu.verify_no_other_packets(self)

    def each_side(self, frame: bytes) -> None:
        """``frame`` sent from the guest and from the network: dropped both times."""
        tu.send_packet(self, GUEST_PORT, frame)
        tu.send_packet(self, UPLINK_PORT, frame)
        tu.verify_no_other_packets(self)


class TruncatedHeadersDropped(BadInputTest):
    """Frames cut inside the Ethernet, IPv4, IPv6, TCP and UDP headers are dropped
    and counted as malformed. A frame shorter than an Ethernet header cannot be
    sent on a Linux link (EINVAL), so that one is injected through the CPU port."""

    def runTest(self) -> None:
        before = self.drops("MALFORMED")
        seg = bytes(self.conv.back("R"))
        seg6 = bytes(tcp("2001:db8::10", "fd00::1", 80, 40000, "R", inbound=True))
        dgram = bytes(udp(REMOTE, GUEST, 53, 40000, inbound=True))
        cuts = [seg[:ETH + 10], seg[:ETH + IPV4 + 12], dgram[:ETH + IPV4 + 4],
                seg6[:ETH + 30], seg6[:ETH + IPV6 + 8]]
        for frame in cuts:
            self.each_side(frame)
        self.inject(seg[:ETH - 2], UPLINK_PORT)
        self.inject(seg[:ETH - 2], GUEST_PORT)
        tu.verify_no_other_packets(self)
        self.assertEqual(self.drops("MALFORMED") - before, 2 * len(cuts) + 2)
        self.connection_alive()


class MalformedIpv4Dropped(BadInputTest):
    """A bad IPv4 header checksum, version or IHL: dropped and counted, even as a
    RST of the established connection (which therefore stays open)."""

    def runTest(self) -> None:
        rst = self.conv.back("R")
        before = (self.drops("IPV4_CHECKSUM"), self.drops("MALFORMED"))
        bad_sum = rst.copy()
        bad_sum[IP].chksum = (IP(bytes(rst[IP])).chksum + 1) & 0xFFFF
        self.each_side(bytes(bad_sum))
        for field, value in (("version", 5), ("ihl", 4)):
            bad = rst.copy()
            setattr(bad[IP], field, value)
            self.each_side(bytes(bad))
        self.assertEqual(self.drops("IPV4_CHECKSUM") - before[0], 2)
        self.assertEqual(self.drops("MALFORMED") - before[1], 4)
        self.connection_alive()


class Ipv4OptionsPassIntact(BadInputTest):
    """IPv4 headers with options pass with their options as they were, and their
    segments are tracked like any other."""

    def runTest(self) -> None:
        options = b"\x07\x07\x04\x00\x00\x00\x00\x01"  # record route (7 bytes) + EOL
        conv = TcpConversation(GUEST, REMOTE, guest_port=40100)
        syn, synack = conv.out("S"), conv.back("SA")
        for pkt in (syn, synack):
            pkt[IP].options = options
            del pkt[IP].ihl, pkt[IP].len, pkt[IP].chksum
        self.assertEqual(Ether(bytes(syn))[IP].ihl, 7)
        self.pass_out(Ether(bytes(syn)))
        self.pass_in(Ether(bytes(synack)))
        self.connection_alive()


class FragmentsFollowPortlessFlows(BadInputTest):
    """A non-first fragment has no ports: it is allowed by the guest's flow that
    matches TCP without ports, and dropped by the VNIC's policy the other way."""

    def runTest(self) -> None:
        frag_out = Ether(src=GUEST_MAC, dst=GATEWAY_MAC) / IP(
            src=GUEST, dst=REMOTE, proto=6, frag=185, id=7) / (b"\x00" * 64)
        frag_in = Ether(src=GATEWAY_MAC, dst=GUEST_MAC) / IP(
            src=REMOTE, dst=GUEST, proto=6, frag=185, id=8) / (b"\x00" * 64)
        self.pass_out(frag_out)
        before = self.drops("NO_FLOW")
        self.drop_in(frag_in)
        self.assertEqual(self.drops("NO_FLOW") - before, 1)
        first = self.conv.out("PA", b"y" * 64)
        first[IP].flags = "MF"
        self.pass_out(Ether(bytes(first)))
        self.assertIn(TCP, first)
        self.connection_alive()


class ArpAndNeighborDiscoveryUntouched(BadInputTest):
    """ARP and IPv6 neighbour discovery (router/neighbour solicitations and
    advertisements) cross the deny-by-default VNIC unchanged: hosts need them
    to talk at all. An ICMPv6 redirect is not let through that way."""

    def runTest(self) -> None:
        request = Ether(src=GUEST_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(
            hwsrc=GUEST_MAC, psrc=GUEST, pdst="10.0.0.254")
        reply = Ether(src=GATEWAY_MAC, dst=GUEST_MAC) / ARP(
            op=2, hwsrc=GATEWAY_MAC, psrc="10.0.0.254", hwdst=GUEST_MAC, pdst=GUEST)
        self.pass_out(request)
        self.pass_in(reply)
        guest6, router6 = "fe80::1", "fe80::fe"
        out = Ether(src=GUEST_MAC, dst="33:33:ff:00:00:fe") / IPv6(
            src=guest6, dst="ff02::1:ff00:fe", hlim=255)
        back = Ether(src=GATEWAY_MAC, dst=GUEST_MAC) / IPv6(src=router6, dst=guest6, hlim=255)
        self.pass_out(out / ICMPv6ND_NS(tgt=router6) / ICMPv6NDOptSrcLLAddr(lladdr=GUEST_MAC))
        self.pass_in(back / ICMPv6ND_NA(tgt=router6, R=1, S=1)
                     / ICMPv6NDOptDstLLAddr(lladdr=GATEWAY_MAC))
        self.pass_out(out / ICMPv6ND_RS())
        self.pass_in(back / ICMPv6ND_RA())
        self.pass_in(back / ICMPv6ND_NS(tgt=guest6))
        self.pass_out(out / ICMPv6ND_NA(tgt=guest6, S=1))
        self.drop_in(back / ICMPv6ND_Redirect(tgt=router6, dst="2001:db8::1"))
        self.connection_alive()
