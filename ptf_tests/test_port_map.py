"""VNIC port map: guest <-> uplink forwarding, ARP passthrough, unmapped drop."""

from __future__ import annotations

import ptf.testutils as tu

from ptf_tests.vnic_test import GUEST_PORT, UNMAPPED_PORT, UPLINK_PORT, VnicTest

GUEST_MAC = "02:00:00:00:00:01"
GATEWAY_MAC = "02:00:00:00:00:fe"
GUEST_IP = "10.0.0.1"
REMOTE_IP = "10.0.1.1"


def tcp_from_guest() -> object:
    return tu.simple_tcp_packet(
        eth_src=GUEST_MAC, eth_dst=GATEWAY_MAC, ip_src=GUEST_IP, ip_dst=REMOTE_IP,
        tcp_sport=40000, tcp_dport=80,
    )


class GuestToUplink(VnicTest):
    """A frame from the guest leaves on the VNIC's uplink, unchanged."""

    def runTest(self) -> None:
        self.add_vnic(7)
        pkt = tcp_from_guest()
        tu.send_packet(self, GUEST_PORT, pkt)
        tu.verify_packet(self, pkt, UPLINK_PORT)
        tu.verify_no_other_packets(self)


class UplinkToGuest(VnicTest):
    """A frame from the network reaches the guest, unchanged."""

    def runTest(self) -> None:
        self.add_vnic(7)
        pkt = tu.simple_udp_packet(
            eth_src=GATEWAY_MAC, eth_dst=GUEST_MAC, ip_src=REMOTE_IP, ip_dst=GUEST_IP,
            udp_sport=53, udp_dport=33000,
        )
        tu.send_packet(self, UPLINK_PORT, pkt)
        tu.verify_packet(self, pkt, GUEST_PORT)
        tu.verify_no_other_packets(self)


class Ipv6AndVlanPass(VnicTest):
    """IPv6 and 802.1Q-tagged frames are forwarded like any other."""

    def runTest(self) -> None:
        self.add_vnic(7)
        v6 = tu.simple_tcpv6_packet(
            eth_src=GUEST_MAC, eth_dst=GATEWAY_MAC, ipv6_src="fd00::1", ipv6_dst="fd00::2"
        )
        tagged = tu.simple_tcp_packet(
            eth_src=GUEST_MAC, eth_dst=GATEWAY_MAC, dl_vlan_enable=True, vlan_vid=10,
            ip_src=GUEST_IP, ip_dst=REMOTE_IP,
        )
        for pkt in (v6, tagged):
            tu.send_packet(self, GUEST_PORT, pkt)
            tu.verify_packet(self, pkt, UPLINK_PORT)
        tu.verify_no_other_packets(self)


class ArpPasses(VnicTest):
    """ARP request and reply cross the VNIC untouched, in both directions."""

    def runTest(self) -> None:
        self.add_vnic(7, policy="DENY")
        request = tu.simple_arp_packet(
            eth_src=GUEST_MAC, hw_snd=GUEST_MAC, ip_snd=GUEST_IP, ip_tgt=REMOTE_IP
        )
        reply = tu.simple_arp_packet(
            eth_dst=GUEST_MAC, eth_src=GATEWAY_MAC, arp_op=2, hw_snd=GATEWAY_MAC,
            hw_tgt=GUEST_MAC, ip_snd=REMOTE_IP, ip_tgt=GUEST_IP,
        )
        tu.send_packet(self, GUEST_PORT, request)
        tu.verify_packet(self, request, UPLINK_PORT)
        tu.send_packet(self, UPLINK_PORT, reply)
        tu.verify_packet(self, reply, GUEST_PORT)
        tu.verify_no_other_packets(self)


class UnmappedPortDrops(VnicTest):
    """A frame on a port no VNIC owns goes nowhere."""

    def runTest(self) -> None:
        self.add_vnic(7)
        tu.send_packet(self, UNMAPPED_PORT, tcp_from_guest())
        tu.send_packet(self, UNMAPPED_PORT, tu.simple_arp_packet())
        tu.verify_no_other_packets(self)


class DenyPolicyDropsIp(VnicTest):
    """With a deny-by-default VNIC and no flows, IP traffic is dropped (ARP is not)."""

    def runTest(self) -> None:
        self.add_vnic(7, policy="DENY")
        tu.send_packet(self, GUEST_PORT, tcp_from_guest())
        tu.verify_no_other_packets(self)
