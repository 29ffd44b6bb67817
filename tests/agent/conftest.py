"""A real embedded target (P4Runtime server in its own process) for agent tests, bare or
between two veths (guest on port 1, uplink on port 2) with raw wires on their test ends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from pyoffload.playground.topology import Topology
from pyoffload.playground.traffic import RawWire
from pyoffload.targets import RunningTarget, start_target


@pytest.fixture
def target(tmp_path: Path) -> Iterator[RunningTarget]:
    with start_target("embedded", {}, output=tmp_path / "target.log") as running:
        yield running


class Wire(RawWire):
    """A raw socket on a test-side veth end, reporting UDP ports."""

    def udp_ports(self, seconds: float = 3.0) -> set[tuple[int, int]]:
        """(sport, dport) of the UDP frames that arrive within ``seconds``."""
        found = set()
        for data in self.receive(seconds):
            packet = Ether(data)
            if packet.haslayer(UDP):
                found.add((packet[UDP].sport, packet[UDP].dport))
        return found


def udp(src: str, dst: str, sport: int, dport: int) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                 / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / b"x")


@pytest.fixture
def wired(tmp_path: Path) -> Iterator[tuple[RunningTarget, Wire, Wire]]:
    with Topology() as topo:
        topo.add_veth(1)
        topo.add_veth(2)
        ports = {p: pair.switch_end for p, pair in topo.pairs.items()}
        with start_target("embedded", ports, output=tmp_path / "t.log") as target:
            yield target, Wire(topo.pairs[1].test_end), Wire(topo.pairs[2].test_end)
