"""Mirroring (a copy of each forwarded packet of a flow on the monitor port)
and reject (a TCP reset back to the sender; other protocols dropped)."""

from __future__ import annotations

import ptf.testutils as tu
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether

from ptf_tests.packets import GATEWAY_MAC, GUEST_MAC, Packet, tcp, udp
from ptf_tests.vnic_test import GUEST_PORT, MONITOR_PORT, UPLINK_PORT, OffloadTest

GUEST, REMOTE = "10.0.0.1", "192.0.2.10"
SESSION = 5

MIRRORED = f"""
flows:
  - id: dns
    match: {{protocol: udp, dst_ports: 53}}
    config: {{services: [mirror, count], default_verdict: allow, mirror_session: {SESSION}}}
    rules:
      - {{id: blocked, match: {{src_ports: 6666}}, verdict: deny}}
  - id: rest
    match: {{protocol: udp}}
    config: {{default_verdict: allow}}
"""

REJECTING = """
flows:
  - id: out
    match: {direction: from-guest}
    config: {default_verdict: allow}
    rules:
      - {id: telnet, match: {protocol: tcp, dst_ports: 23}, verdict: reject}
      - {id: tftp, match: {protocol: udp, dst_ports: 69}, verdict: reject}
"""


class MirrorCopies(OffloadTest):
    """Each forwarded packet of the mirrored flow also appears on the monitor
    port; dropped packets and other flows' packets do not."""

    def runTest(self) -> None:
        self.clone_session(SESSION, MONITOR_PORT)
        self.offload(MIRRORED)
        for i in range(3):
            query = udp(GUEST, REMOTE, 40000 + i, 53)
            tu.send_packet(self, GUEST_PORT, query)
            tu.verify_packet(self, query, UPLINK_PORT)
            tu.verify_packet(self, query, MONITOR_PORT)
        answer = udp(REMOTE, GUEST, 53, 53, inbound=True)
        tu.send_packet(self, UPLINK_PORT, answer)
        tu.verify_packet(self, answer, GUEST_PORT)
        tu.verify_packet(self, answer, MONITOR_PORT)
        self.drop_out(udp(GUEST, REMOTE, 6666, 53))
        self.pass_out(udp(GUEST, REMOTE, 40000, 54))
        tu.verify_no_other_packets(self)


def reset_for(segment: Packet, *, seq: int, ack: int, flags: str) -> Packet:
    """The reset the pipeline sends back for ``segment`` (built by scapy)."""
    ip = IPv6 if IPv6 in segment else IP
    back = Ether(src=GATEWAY_MAC, dst=GUEST_MAC) / ip(src=segment[ip].dst, dst=segment[ip].src)
    if ip is IP:
        back[IP].id = 0
    return back / TCP(sport=segment[TCP].dport, dport=segment[TCP].sport, flags=flags,
                      seq=seq, ack=ack, window=0)


class RejectTcpWithReset(OffloadTest):
    """A SYN to a rejected port gets RST/ACK (ack = seq + 1) on the guest port,
    a segment with ACK a RST with its ack number; IPv4, IPv6 and 802.1Q-tagged."""

    def bounce(self, segment: Packet) -> bytes:
        """What comes back to the guest for ``segment`` (exactly, no padding)."""
        tu.send_packet(self, GUEST_PORT, segment)
        return self.receive(GUEST_PORT)

    def runTest(self) -> None:
        self.offload(REJECTING)
        for guest, remote in ((GUEST, REMOTE), ("fd00::1", "2001:db8::10")):
            syn = tcp(guest, remote, 40000, 23, "S", seq=123456)
            self.assertEqual(self.bounce(syn), bytes(reset_for(syn, seq=0, ack=123457,
                                                               flags="RA")))
            data = tcp(guest, remote, 40000, 23, "PA", seq=99, ack=777, payload=b"login")
            self.assertEqual(self.bounce(data), bytes(reset_for(data, seq=777, ack=0, flags="R")))
        syn = tcp(GUEST, REMOTE, 40000, 23, "S", seq=5)
        tagged = Ether(src=GUEST_MAC, dst=GATEWAY_MAC) / Dot1Q(vlan=10) / syn[IP]
        reset = reset_for(syn, seq=0, ack=6, flags="RA")
        expected = Ether(src=GATEWAY_MAC, dst=GUEST_MAC) / Dot1Q(vlan=10) / reset[IP]
        self.assertEqual(self.bounce(tagged), bytes(expected))
        self.pass_out(tcp(GUEST, REMOTE, 40000, 22, "S"))
        tu.verify_no_other_packets(self)


class RejectUdpDrops(OffloadTest):
    """UDP has no reset: a rejected datagram is dropped and counted."""

    def runTest(self) -> None:
        self.offload(REJECTING)
        before = self.drops("RULE_REJECT")
        self.drop_out(udp(GUEST, REMOTE, 40000, 69))
        self.assertEqual(self.drops("RULE_REJECT") - before, 1)
        tu.verify_no_other_packets(self)
