"""Packets the scenario tests send: one guest and the hosts beyond its uplink.

Builders take addresses of either family (IPv6 when the address has a ``:``)
and a direction: ``inbound`` frames come from the network to the guest, the
others from the guest. ``TcpConversation`` keeps the sequence numbers of one
TCP connection so that a test reads like the exchange it checks.
"""

from __future__ import annotations

from typing import Any

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Ether

GUEST_MAC = "02:00:00:00:00:01"
GATEWAY_MAC = "02:00:00:00:00:fe"

Packet = Any  # scapy packets are untyped


def _l2l3(src: str, dst: str, inbound: bool, **ip: Any) -> Packet:
    ether = (Ether(src=GATEWAY_MAC, dst=GUEST_MAC) if inbound
             else Ether(src=GUEST_MAC, dst=GATEWAY_MAC))
    if ":" in src:
        return ether / IPv6(src=src, dst=dst)
    return ether / IP(src=src, dst=dst, id=1, **ip)


def tcp(src: str, dst: str, sport: int, dport: int, flags: str = "S", *, seq: int = 1000,
        ack: int = 0, payload: bytes = b"", inbound: bool = False,
        options: list[tuple[str, Any]] | None = None, **ip: Any) -> Packet:
    return (_l2l3(src, dst, inbound, **ip)
            / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack,
                  options=options or []) / payload)


def udp(src: str, dst: str, sport: int, dport: int, *, payload: bytes = b"udp-data",
        inbound: bool = False) -> Packet:
    return _l2l3(src, dst, inbound) / UDP(sport=sport, dport=dport) / payload


def echo(src: str, dst: str, ident: int, *, reply: bool = False, inbound: bool = False) -> Packet:
    if ":" in src:
        kind = ICMPv6EchoReply if reply else ICMPv6EchoRequest
        return _l2l3(src, dst, inbound) / kind(id=ident, seq=1, data=b"ping")
    return _l2l3(src, dst, inbound) / ICMP(type=0 if reply else 8, id=ident, seq=1) / b"ping"


def parse(frame: bytes) -> Packet:
    return Ether(frame)


def with_fresh_checksums(frame: bytes) -> Packet:
    """``frame`` with its IPv4, TCP and UDP checksums computed again by scapy."""
    pkt = Ether(frame)
    for layer in (IP, TCP, UDP):
        if layer in pkt:
            del pkt[layer].chksum
    return Ether(bytes(pkt))


def rewritten(pkt: Packet, *, src: tuple[str, int] | None = None,
              dst: tuple[str, int] | None = None) -> Packet:
    """``pkt`` with a new source and/or destination, checksums computed again."""
    out = pkt.copy()
    l4 = out[TCP] if TCP in out else out[UDP]
    if src is not None:
        out[IP].src, l4.sport = src
    if dst is not None:
        out[IP].dst, l4.dport = dst
    del out[IP].chksum
    del l4.chksum
    return Ether(bytes(out))


def checksums_valid(frame: bytes) -> bool:
    """True when the frame's IPv4/TCP/UDP checksums are what they must be."""
    return bytes(with_fresh_checksums(frame)) == frame


class TcpConversation:
    """One TCP connection between the guest and a remote host, seen on the wire."""

    def __init__(self, guest: str, remote: str, guest_port: int = 40000,
                 remote_port: int = 80) -> None:
        self.guest, self.remote = guest, remote
        self.guest_port, self.remote_port = guest_port, remote_port
        self.guest_seq, self.remote_seq = 1000, 5000

    def out(self, flags: str, payload: bytes = b"") -> Packet:
        """A segment from the guest to the remote host."""
        pkt = tcp(self.guest, self.remote, self.guest_port, self.remote_port, flags,
                  seq=self.guest_seq, ack=self.remote_seq if "A" in flags else 0,
                  payload=payload)
        self.guest_seq += len(payload) + ("S" in flags) + ("F" in flags)
        return pkt

    def back(self, flags: str, payload: bytes = b"") -> Packet:
        """A segment from the remote host to the guest."""
        pkt = tcp(self.remote, self.guest, self.remote_port, self.guest_port, flags,
                  seq=self.remote_seq, ack=self.guest_seq if "A" in flags else 0,
                  payload=payload, inbound=True)
        self.remote_seq += len(payload) + ("S" in flags) + ("F" in flags)
        return pkt
