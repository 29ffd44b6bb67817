"""Packet corpora for the VNIC pipeline, built with scapy.

Two jobs, one module, because both need the same addresses and framing:

- ``build_corpus()``: a differential-testing corpus: a valid frame of every
  kind the parser knows (Ethernet/ARP, 802.1Q, IPv4 with and without options,
  fragments, IPv6, TCP with many flag sets, UDP, ICMP and ICMPv6 echo), short
  conversations so connection tracking sees both directions, every frame cut
  at every header boundary (and one byte short of it), malformed headers
  (IP version, IHL, IPv4 checksum, lengths, TCP data offset) and frames larger
  than standard Ethernet. Order matters: conversations rely on it.
- ``flow_frames()``: many frames of distinct 5-tuples at a fixed size, for
  benchmarks.

Each frame names the side it enters the VNIC from (``guest`` or ``uplink``);
the caller maps sides to switch ports.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import attrs
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP, IPOption_RR
from scapy.layers.inet6 import (
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NS,
    IPv6,
    IPv6ExtHdrHopByHop,
)
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet, Raw

Side = Literal["guest", "uplink"]

GUEST_MAC = "02:00:00:00:00:01"
UPLINK_MAC = "02:00:00:00:00:02"
GUEST_IP = "10.77.0.1"
UPLINK_IP = "10.77.0.2"
GUEST_IP6 = "fd00:77::1"
UPLINK_IP6 = "fd00:77::2"
#: The smallest and the largest frame size the benchmarks use (without FCS).
MIN_FRAME = 64
MTU_FRAME = 1514


@attrs.frozen(kw_only=True)
class CorpusFrame:
    """One input of the corpus."""

    name: str
    """What the frame exercises, unique in the corpus (used in failure reports)."""
    side: Side
    """The VNIC side the frame enters from."""
    frame: bytes
    """The frame as on the wire, without FCS."""


def _raw(pkt: Packet) -> bytes:
    return bytes(pkt)


def _from_guest(l3: Packet, vlan: int | None = None) -> Packet:
    eth: Packet = Ether(src=GUEST_MAC, dst=UPLINK_MAC)
    if vlan is not None:
        eth = eth / Dot1Q(vlan=vlan)
    return eth / l3


def _from_uplink(l3: Packet, vlan: int | None = None) -> Packet:
    eth: Packet = Ether(src=UPLINK_MAC, dst=GUEST_MAC)
    if vlan is not None:
        eth = eth / Dot1Q(vlan=vlan)
    return eth / l3


def _g4(**kw: Any) -> Packet:
    return IP(src=GUEST_IP, dst=UPLINK_IP, **kw)


def _u4(**kw: Any) -> Packet:
    return IP(src=UPLINK_IP, dst=GUEST_IP, **kw)


def _g6(**kw: Any) -> Packet:
    return IPv6(src=GUEST_IP6, dst=UPLINK_IP6, **kw)


def _u6(**kw: Any) -> Packet:
    return IPv6(src=UPLINK_IP6, dst=GUEST_IP6, **kw)


def _tcp_conversation(tag: str, l3_out: Packet, l3_back: Packet, sport: int,
                      dport: int, vlan: int | None = None) -> Iterator[CorpusFrame]:
    """SYN, SYN-ACK, ACK, data both ways, FIN both ways: every TCP state."""
    steps: list[tuple[Side, str, int, int, bytes]] = [
        ("guest", "S", 1000, 0, b""),
        ("uplink", "SA", 5000, 1001, b""),
        ("guest", "A", 1001, 5001, b""),
        ("guest", "PA", 1001, 5001, b"GET / HTTP/1.0\r\n\r\n"),
        ("uplink", "PA", 5001, 1019, b"HTTP/1.0 200 OK\r\n\r\nhello"),
        ("guest", "FA", 1019, 5025, b""),
        ("uplink", "FA", 5025, 1020, b""),
        ("guest", "A", 1020, 5026, b""),
    ]
    for i, (side, flags, seq, ack, data) in enumerate(steps):
        if side == "guest":
            pkt = _from_guest(l3_out.copy() / TCP(sport=sport, dport=dport, flags=flags,
                                                  seq=seq, ack=ack), vlan)
        else:
            pkt = _from_uplink(l3_back.copy() / TCP(sport=dport, dport=sport, flags=flags,
                                                    seq=seq, ack=ack), vlan)
        if data:
            pkt = pkt / Raw(data)
        yield CorpusFrame(name=f"{tag} step {i} {side} {flags}", side=side, frame=_raw(pkt))


def valid_frames() -> Iterator[CorpusFrame]:
    """One or more well-formed frames of every kind the parser handles."""
    yield CorpusFrame(name="arp request", side="guest", frame=_raw(
        Ether(src=GUEST_MAC, dst="ff:ff:ff:ff:ff:ff")
        / ARP(op=1, hwsrc=GUEST_MAC, psrc=GUEST_IP, pdst=UPLINK_IP)))
    yield CorpusFrame(name="arp reply", side="uplink", frame=_raw(
        _from_uplink(ARP(op=2, hwsrc=UPLINK_MAC, psrc=UPLINK_IP, hwdst=GUEST_MAC,
                         pdst=GUEST_IP))))
    yield CorpusFrame(name="lldp-like unknown ethertype", side="guest", frame=_raw(
        Ether(src=GUEST_MAC, dst="01:80:c2:00:00:0e", type=0x88CC) / Raw(b"\x02\x07" * 20)))
    yield CorpusFrame(name="802.1Q arp", side="guest", frame=_raw(
        _from_guest(ARP(op=1, hwsrc=GUEST_MAC, psrc=GUEST_IP, pdst=UPLINK_IP), vlan=10)))

    yield from _tcp_conversation("tcp4 8080", _g4(), _u4(), 40001, 8080)
    yield from _tcp_conversation("tcp6 8080", _g6(), _u6(), 40002, 8080)
    yield from _tcp_conversation("tcp4 vlan 8080", _g4(), _u4(), 40003, 8080, vlan=10)
    yield from _tcp_conversation("tcp4 443 (snat on vnic 2)", _g4(), _u4(), 40004, 443)
    yield from _tcp_conversation("tcp4 to dnat vip", IP(src=GUEST_IP, dst="203.0.113.10"),
                                 IP(src="10.9.9.9", dst=GUEST_IP), 40005, 80)
    for flags in ("S", "SF", "SR", "", "FPU", "R", "A", "U", "SEC"):
        yield CorpusFrame(name=f"tcp4 9090 flags {flags or 'none'}", side="guest",
                          frame=_raw(_from_guest(_g4() / TCP(sport=41000, dport=9090,
                                                             flags=flags))))
    yield CorpusFrame(name="tcp4 25 syn", side="guest", frame=_raw(
        _from_guest(_g4() / TCP(sport=41001, dport=25, flags="S"))))
    yield CorpusFrame(name="tcp4 23 ack with data", side="guest", frame=_raw(
        _from_guest(_g4() / TCP(sport=41002, dport=23, flags="PA", seq=7, ack=9)
                    / Raw(b"x" * 33))))
    yield CorpusFrame(name="tcp4 unsolicited inbound syn", side="uplink", frame=_raw(
        _from_uplink(_u4() / TCP(sport=41003, dport=22, flags="S"))))
    yield CorpusFrame(name="tcp4 with options rr+nop", side="guest", frame=_raw(
        _from_guest(_g4(options=[IPOption_NOP(), IPOption_RR(routers=["1.2.3.4", "5.6.7.8"])])
                    / TCP(sport=41004, dport=8080, flags="S"))))
    yield CorpusFrame(name="tcp4 with 40 bytes of options", side="guest", frame=_raw(
        _from_guest(_g4(options=[IPOption_RR(routers=["9.9.9.9"] * 9), IPOption_NOP()])
                    / TCP(sport=41005, dport=8080, flags="S"))))
    yield CorpusFrame(name="tcp6 vlan syn", side="guest", frame=_raw(
        _from_guest(_g6() / TCP(sport=41006, dport=8080, flags="S"), vlan=20)))

    yield CorpusFrame(name="udp4 5353 request", side="guest", frame=_raw(
        _from_guest(_g4() / UDP(sport=42000, dport=5353) / Raw(b"query"))))
    yield CorpusFrame(name="udp4 5353 reply", side="uplink", frame=_raw(
        _from_uplink(_u4() / UDP(sport=5353, dport=42000) / Raw(b"answer"))))
    yield CorpusFrame(name="udp4 zero checksum", side="guest", frame=_raw(
        _from_guest(_g4() / UDP(sport=42001, dport=5353, chksum=0) / Raw(b"nocsum"))))
    yield CorpusFrame(name="udp4 53 (dnat on vnic 2)", side="guest", frame=_raw(
        _from_guest(_g4() / UDP(sport=42002, dport=53) / Raw(b"dns"))))
    yield CorpusFrame(name="udp4 9999 (punted on vnic 2)", side="guest", frame=_raw(
        _from_guest(_g4() / UDP(sport=42010, dport=9999) / Raw(b"to the agent"))))
    yield CorpusFrame(name="udp6 9999 (punted on vnic 2), 802.1Q", side="guest", frame=_raw(
        _from_guest(_g6() / UDP(sport=42011, dport=9999) / Raw(b"to the agent, v6"), vlan=20)))
    yield CorpusFrame(name="udp4 default policy", side="guest", frame=_raw(
        _from_guest(_g4() / UDP(sport=42003, dport=7777) / Raw(b"other"))))
    yield CorpusFrame(name="udp6 5353 request", side="guest", frame=_raw(
        _from_guest(_g6() / UDP(sport=42004, dport=5353) / Raw(b"query6"))))
    yield CorpusFrame(name="udp6 5353 reply", side="uplink", frame=_raw(
        _from_uplink(_u6() / UDP(sport=5353, dport=42004) / Raw(b"answer6"))))

    yield CorpusFrame(name="icmp4 echo request", side="guest", frame=_raw(
        _from_guest(_g4() / ICMP(type=8, id=0x1234, seq=1) / Raw(b"ping"))))
    yield CorpusFrame(name="icmp4 echo reply", side="uplink", frame=_raw(
        _from_uplink(_u4() / ICMP(type=0, id=0x1234, seq=1) / Raw(b"ping"))))
    yield CorpusFrame(name="icmp4 unreachable", side="uplink", frame=_raw(
        _from_uplink(_u4() / ICMP(type=3, code=3) / Raw(b"\x00" * 28))))
    yield CorpusFrame(name="icmp6 echo request", side="guest", frame=_raw(
        _from_guest(_g6() / ICMPv6EchoRequest(id=0x4321, seq=1, data=b"ping6"))))
    yield CorpusFrame(name="icmp6 echo reply", side="uplink", frame=_raw(
        _from_uplink(_u6() / ICMPv6EchoReply(id=0x4321, seq=1, data=b"ping6"))))
    yield CorpusFrame(name="icmp6 neighbour solicitation", side="guest", frame=_raw(
        _from_guest(_g6() / ICMPv6ND_NS(tgt=UPLINK_IP6))))
    yield CorpusFrame(name="ipv6 hop-by-hop then udp", side="guest", frame=_raw(
        _from_guest(_g6() / IPv6ExtHdrHopByHop() / UDP(sport=42005, dport=5353))))
    yield CorpusFrame(name="ipv4 gre (no l4 parser)", side="guest", frame=_raw(
        _from_guest(_g4(proto=47) / Raw(b"\x00\x00\x08\x00" + b"g" * 20))))

    payload = b"f" * 64
    yield CorpusFrame(name="udp4 first fragment", side="guest", frame=_raw(
        _from_guest(_g4(id=99, flags="MF", frag=0) / UDP(sport=42006, dport=5353, len=8 + 128)
                    / Raw(payload))))
    yield CorpusFrame(name="udp4 last fragment", side="guest", frame=_raw(
        _from_guest(_g4(id=99, frag=9, proto=17) / Raw(payload))))
    yield CorpusFrame(name="tcp4 middle fragment", side="guest", frame=_raw(
        _from_guest(_g4(id=100, flags="MF", frag=185, proto=6) / Raw(payload))))


def oversized_frames() -> Iterator[CorpusFrame]:
    """Frames beyond 1,514 bytes (jumbo), which veths with MTU 9500 still carry."""
    for size in (1514, 1515, 4000, 9000):
        yield CorpusFrame(name=f"udp4 5353 frame of {size} bytes", side="guest", frame=_pad_to(
            _from_guest(_g4() / UDP(sport=43000 + size % 1000, dport=5353)), size))
        yield CorpusFrame(name=f"tcp4 443 frame of {size} bytes", side="guest", frame=_pad_to(
            _from_guest(_g4() / TCP(sport=44000 + size % 1000, dport=443, flags="S")), size))
    yield CorpusFrame(name="tcp6 8080 frame of 9000 bytes", side="guest", frame=_pad_to(
        _from_guest(_g6() / TCP(sport=45000, dport=8080, flags="S")), 9000))


def _pad_to(pkt: Packet, size: int) -> bytes:
    """The packet with a payload making the frame ``size`` bytes (lengths consistent)."""
    return _raw(pkt / Raw(b"\xa5" * (size - len(pkt))))


def malformed_frames() -> Iterator[CorpusFrame]:
    """Headers the parser must refuse, or that carry inconsistent lengths."""
    good = _from_guest(_g4() / TCP(sport=46000, dport=8080, flags="S"))
    raw = bytearray(_raw(good))
    for name, offset, value in (
        ("ipv4 version 5", 14, 0x55),
        ("ipv4 version 6 under ethertype ipv4", 14, 0x65),
        ("ipv4 ihl 0", 14, 0x40),
        ("ipv4 ihl 4", 14, 0x44),
        ("ipv4 ihl 15 beyond the frame", 14, 0x4F),
        ("ipv4 ihl 6 (options eat tcp)", 14, 0x46),
    ):
        frame = bytearray(raw)
        frame[offset] = value
        yield CorpusFrame(name=name, side="guest", frame=bytes(frame))
    bad_sum = bytearray(raw)
    bad_sum[24] ^= 0xFF
    yield CorpusFrame(name="ipv4 bad header checksum", side="guest", frame=bytes(bad_sum))
    yield CorpusFrame(name="ipv4 total length larger than frame", side="guest", frame=_raw(
        _from_guest(_g4(len=400) / TCP(sport=46001, dport=8080, flags="S"))))
    yield CorpusFrame(name="ipv4 total length smaller than headers", side="guest", frame=_raw(
        _from_guest(_g4(len=30) / TCP(sport=46002, dport=8080, flags="S"))))
    yield CorpusFrame(name="ipv4 trailing padding", side="guest", frame=_raw(
        _from_guest(_g4() / UDP(sport=46003, dport=5353)) / Raw(b"\x00" * 20)))
    yield CorpusFrame(name="tcp data offset 2", side="guest", frame=_raw(
        _from_guest(_g4() / TCP(sport=46004, dport=8080, flags="S", dataofs=2))))
    yield CorpusFrame(name="tcp bad checksum", side="guest", frame=_raw(
        _from_guest(_g4() / TCP(sport=46005, dport=8080, flags="S", chksum=0xDEAD))))
    yield CorpusFrame(name="ipv6 version 4 under ethertype ipv6", side="guest", frame=_raw(
        _from_guest(_g6(version=4) / UDP(sport=46006, dport=5353))))
    yield CorpusFrame(name="ipv4 inside ethertype ipv6", side="guest", frame=_raw(
        Ether(src=GUEST_MAC, dst=UPLINK_MAC, type=0x86DD) / _g4() / UDP(dport=5353)))
    yield CorpusFrame(name="ipv6 payload length larger than frame", side="guest", frame=_raw(
        _from_guest(_g6(plen=900) / UDP(sport=46007, dport=5353))))


def _boundaries(pkt: Packet) -> list[int]:
    """Byte offsets where each header of ``pkt`` ends."""
    total = len(pkt)
    out = []
    layer: Packet | None = pkt
    while layer is not None and not isinstance(layer, Raw):
        payload = layer.payload
        out.append(total - len(payload) if payload else total)
        layer = payload if payload else None
    return out


def truncated_frames() -> Iterator[CorpusFrame]:
    """Frames cut at each header boundary and one byte short of it."""
    bases = {
        "vlan ipv4-options tcp": _from_guest(
            _g4(options=[IPOption_NOP()] * 4) / TCP(sport=47000, dport=8080, flags="S")
            / Raw(b"data"), vlan=30),
        "ipv4 udp": _from_guest(_g4() / UDP(sport=47001, dport=5353) / Raw(b"data")),
        "ipv4 icmp": _from_guest(_g4() / ICMP(type=8, id=7) / Raw(b"data")),
        "ipv6 tcp": _from_guest(_g6() / TCP(sport=47002, dport=8080, flags="S") / Raw(b"d")),
        "ipv6 icmpv6": _from_guest(_g6() / ICMPv6EchoRequest(id=8, data=b"data")),
    }
    seen: set[bytes] = set()
    for label, pkt in bases.items():
        raw = _raw(pkt)
        for end in _boundaries(pkt.__class__(raw)):
            for cut in (end - 1, end):
                if 0 < cut < len(raw) and raw[:cut] not in seen:
                    seen.add(raw[:cut])
                    yield CorpusFrame(name=f"{label} cut at {cut}", side="guest",
                                      frame=raw[:cut])


def build_corpus() -> list[CorpusFrame]:
    """The whole differential corpus, in sending order; names are unique."""
    frames = [*valid_frames(), *oversized_frames(), *malformed_frames(), *truncated_frames()]
    names = [f.name for f in frames]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"corpus frame names are not unique: {sorted(duplicates)}")
    return frames


def flow_frames(count: int, size: int, *, proto: str = "udp", dport: int = 5353,
                src_base: str = GUEST_IP, dst_ip: str = UPLINK_IP) -> list[bytes]:
    """``count`` IPv4 frames of ``size`` bytes, each of its own 5-tuple.

    Source ports vary first, then the source address's low 16 bits, so any
    count up to millions gives distinct tuples; checksums are complete, as a
    kernel behind a veth with offloads off sends them.
    """
    if size < MIN_FRAME - 4 or size > 9000:
        raise ValueError(f"frame size {size} outside 60..9000 bytes")
    base = int.from_bytes(bytes(int(b) for b in src_base.split(".")), "big")
    frames = []
    for i in range(count):
        sport = 1024 + i % 60000
        host = base + i // 60000
        src = ".".join(str((host >> s) & 0xFF) for s in (24, 16, 8, 0))
        l4: Packet = (UDP(sport=sport, dport=dport) if proto == "udp"
                      else TCP(sport=sport, dport=dport, flags="A", seq=1, ack=1))
        frames.append(_pad_to(_from_guest(IP(src=src, dst=dst_ip) / l4), size))
    return frames
