"""Benchmark (a): the VNIC pipeline in memory, ``Pipeline.process`` only.

No sockets, no threads, no P4Runtime: the engine's own packet rate, which
bounds what the embedded target can do on any port. Setup: the demo VNIC
with 1,000 ACL rules and 10,000 TCP connections established by sending each
its SYN, SYN-ACK and ACK through the pipeline. The connections are opened
while only the allow rules are installed and the 998 filler rules are added
afterwards: established packets skip the ACL (the stateful fast path), so the
order changes nothing measured and saves the setup ~30 s of full ACL scans.
Then, each bounded by count and time:

- established TCP packets, round-robin over the 10,000 connections, at 64
  and 1,500 bytes (the fast path);
- first packets of new UDP flows, each compared with the full 1,000-rule
  ACL before it is tracked (the slow path);
- new TCP connections per second: SYN, SYN-ACK and ACK of fresh connections
  (the "pps" column counts connections).
"""

from __future__ import annotations

import time
from collections import Counter

import attrs
from finsy import P4Schema
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from benchmarks.bench_entries import (
    GUEST_PORT,
    TRAFFIC_DPORT,
    UPLINK_PORT,
    acl_rules,
    engine_install,
    vnic_entities,
)
from benchmarks.corpus import GUEST_MAC, UPLINK_IP, UPLINK_MAC, flow_frames
from pyoffload.embedded.engine import Pipeline
from pyoffload.pipeline.artifacts import Artifacts, load_constants


@attrs.frozen(kw_only=True)
class Rate:
    """One timed loop."""

    label: str
    frame_bytes: int
    packets: int
    seconds: float
    outputs: dict[int, int]
    """egress port -> frames (port 2 forwarded; 510 punted)"""

    @property
    def pps(self) -> float:
        return self.packets / self.seconds if self.seconds else 0.0


def _tcp(src: str, sport: int, flags: str, size: int, *, reply: bool = False) -> bytes:
    if reply:
        pkt = Ether(src=UPLINK_MAC, dst=GUEST_MAC) / IP(src=UPLINK_IP, dst=src) / TCP(
            sport=TRAFFIC_DPORT, dport=sport, flags=flags, seq=5000, ack=1001)
    else:
        pkt = Ether(src=GUEST_MAC, dst=UPLINK_MAC) / IP(src=src, dst=UPLINK_IP) / TCP(
            sport=sport, dport=TRAFFIC_DPORT, flags=flags, seq=1000, ack=5001)
    return bytes(pkt / Raw(b"\x5a" * max(size - len(pkt), 0)))


def _endpoint(i: int) -> tuple[str, int]:
    """The i-th connection's guest address and port (distinct for i < 3.9 million)."""
    host = 10 << 24 | 78 << 16 | (i // 60000)
    return ".".join(str(host >> s & 0xFF) for s in (24, 16, 8, 0)), 1024 + i % 60000


def timed(pipe: Pipeline, label: str, port: int, frames: list[bytes], *,
          max_packets: int, max_seconds: float) -> Rate:
    """Process ``frames`` round-robin until either bound is reached."""
    outputs: Counter[int] = Counter()
    done = 0
    start = time.perf_counter()
    deadline = start + max_seconds
    clock = time.perf_counter
    while done < max_packets and clock() < deadline:
        frame = frames[done % len(frames)]
        for egress, _ in pipe.process(port, frame).outputs:
            outputs[egress] += 1
        done += 1
    return Rate(label=label, frame_bytes=len(frames[0]), packets=done,
                seconds=time.perf_counter() - start, outputs=dict(outputs))


def establish(pipe: Pipeline, connections: int, max_seconds: float) -> int:
    """SYN, SYN-ACK, ACK per connection (bounded in time); how many ACKs went through."""
    ok = 0
    deadline = time.perf_counter() + max_seconds
    for i in range(connections):
        if time.perf_counter() > deadline:
            break
        src, sport = _endpoint(i)
        pipe.process(GUEST_PORT, _tcp(src, sport, "S", 64))
        pipe.process(UPLINK_PORT, _tcp(src, sport, "SA", 64, reply=True))
        if any(p == UPLINK_PORT for p, _ in pipe.process(GUEST_PORT,
                                                          _tcp(src, sport, "A", 64)).outputs):
            ok += 1
    return ok


def new_connections(pipe: Pipeline, acl_size: int, *, first: int, count: int,
                    max_seconds: float) -> Rate:
    """New TCP connections per second through the stateful firewall: SYN (the
    full ACL, then tracked), SYN-ACK (fast path, state update), ACK (established).
    ``packets`` counts connections; the rate is connections per second."""
    frames = []
    for i in range(first, first + count):
        src, sport = _endpoint(i)
        frames.append((_tcp(src, sport, "S", 64), _tcp(src, sport, "SA", 64, reply=True),
                       _tcp(src, sport, "A", 64)))
    outputs: Counter[int] = Counter()
    done = 0
    start = time.perf_counter()
    deadline = start + max_seconds
    for syn, synack, ack in frames:
        if time.perf_counter() > deadline:
            break
        for port, frame in ((GUEST_PORT, syn), (UPLINK_PORT, synack), (GUEST_PORT, ack)):
            for egress, _ in pipe.process(port, frame).outputs:
                outputs[egress] += 1
        done += 1
    return Rate(label=f"new TCP connections/s, 3-way handshake ({acl_size}-rule ACL)",
                frame_bytes=64, packets=done, seconds=time.perf_counter() - start,
                outputs=dict(outputs))


def run(artifacts: Artifacts, *, connections: int = 10_000, rules: int = 1000,
        max_seconds: float = 5.0, max_setup_seconds: float = 120.0) -> dict[str, object]:
    const = load_constants()
    schema = P4Schema(artifacts.p4info)
    pipe = Pipeline.load(artifacts.bmv2_json.read_text())
    entries = vnic_entities(const, rules=0)
    engine_install(pipe.state, schema, entries)
    t0 = time.perf_counter()
    established = establish(pipe, connections, max_setup_seconds)
    setup_s = time.perf_counter() - t0
    engine_install(pipe.state, schema, acl_rules(rules)[:-2])  # the filler rules
    acl_size = len(pipe.state.table("vnic.acl").entries())
    results: list[Rate] = []
    for size in (64, 1500):
        frames = [_tcp(*_endpoint(i), "A", size) for i in range(established)]
        results.append(timed(pipe, f"established TCP, {established} connections", GUEST_PORT,
                             frames, max_packets=10 * connections, max_seconds=max_seconds))
    fresh = flow_frames(2000, 64, src_base="10.79.0.1", dport=TRAFFIC_DPORT)
    results.append(timed(pipe, f"first packet of a UDP flow ({acl_size}-rule ACL)",
                         GUEST_PORT, fresh, max_packets=len(fresh), max_seconds=max_seconds))
    results.append(new_connections(pipe, acl_size, first=connections, count=3000,
                                   max_seconds=max_seconds))
    return {
        "connections_requested": connections,
        "connections_established": established,
        "establish_seconds": round(setup_s, 2),
        "acl_rules": acl_size,
        "rates": [attrs.asdict(r) | {"pps": round(r.pps, 1)} for r in results],
    }


def report(result: dict[str, object]) -> list[str]:
    lines = [f"(a) in-memory Pipeline.process, {result['acl_rules']} ACL rules, "
             f"{result['connections_established']}/{result['connections_requested']} "
             f"connections established (setup {result['establish_seconds']} s)"]
    rates = result["rates"]
    assert isinstance(rates, list)
    for r in rates:
        lines.append(f"    {r['label']:55} {r['frame_bytes']:5} B  {r['pps']:10,.0f} pps "
                     f"({r['packets']} pkts in {r['seconds']:.2f} s; out {r['outputs']})")
    return lines

