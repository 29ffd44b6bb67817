"""Switch and ports: frames through memory ports, a veth pair, and the CPU port.

The pipeline here is a minimal real object defined in this file (the engine
is tested on its own): it forwards a frame to the port named by its first
byte, which is enough to exercise threads, ports and the CPU header layout.
"""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from pyoffload.embedded.p4runtime.packet_io import CpuHeaders
from pyoffload.embedded.ports import MemoryPort, PortError, RawSocketPort
from pyoffload.embedded.switch import Switch, SwitchError

CPU = 64


@dataclass
class Result:
    outputs: list[tuple[int, bytes]] = field(default_factory=list)
    digests: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)


class FirstByteRouter:
    """Sends each frame to the port in its first byte; digests the ingress port."""

    def process(self, ingress_port: int, packet: bytes) -> Result:
        return Result(outputs=[(packet[0], packet)], digests=[("seen", (ingress_port,))])


def test_frames_flow_between_memory_ports() -> None:
    a, b = MemoryPort("a"), MemoryPort("b")
    switch = Switch()
    switch.add_port(1, a)
    switch.add_port(2, b)
    digests: list[tuple[str, tuple[int, ...]]] = []
    switch.on_digest(lambda name, values: digests.append((name, values)))
    with switch:
        a.inject(b"\x02hello")
        assert b.take() is None  # no pipeline yet: dropped
        switch.set_pipeline(FirstByteRouter())
        a.inject(b"\x02hello")
        assert b.take() == b"\x02hello"
        b.inject(b"\x01back")
        assert a.take() == b"\x01back"
        b.inject(b"\x07nowhere")
        assert a.take(timeout=0.05) is None
    assert switch.stats.ports[1].rx == 1 and switch.stats.ports[2].tx == 1
    assert switch.stats.no_port_drops == 1 and switch.stats.no_pipeline_drops == 1
    assert ("seen", (1,)) in digests


def test_cpu_port_packet_in_and_out_use_the_header_layout() -> None:
    port = MemoryPort()
    switch = Switch(cpu_port=CPU)
    switch.add_port(1, port)
    headers = CpuHeaders.from_fields(
        packet_in=[(1, "ingress_port", 9), (2, "_pad", 7)],
        packet_out=[(1, "egress_port", 9), (2, "_pad", 7)],
    )
    switch.set_pipeline(FirstByteRouter(), headers)
    got: list[tuple[list[tuple[int, int]], bytes]] = []
    switch.on_packet_in(lambda meta, payload: got.append((meta, payload)))
    # First byte 0x40 routes to the CPU port; the first two bytes are the
    # packet_in header: 9 bits of ingress_port (0x4000 >> 7 = 128), 7 of pad.
    switch.receive(1, bytes([CPU, 0x00]) + b"payload")
    assert got == [([(1, 128), (2, 0)], b"payload")]
    # packet-out: egress_port 2 packs to 0x0100, so its first byte routes to port 1.
    switch.packet_out({1: 2, 2: 0}, b"data")
    assert port.take() == b"\x01\x00data"
    assert switch.stats.packet_in == 1 and switch.stats.packet_out == 1


def test_packet_out_needs_a_cpu_port() -> None:
    switch = Switch()
    with pytest.raises(SwitchError):
        switch.packet_out({}, b"x")
    with pytest.raises(SwitchError):
        Switch(cpu_port=1).add_port(1, MemoryPort())


def test_raw_socket_port_rejects_unknown_interface() -> None:
    with pytest.raises(PortError, match="no network interface"):
        RawSocketPort("pyo-nonexistent0")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def veth_pair() -> Iterator[tuple[str, str]]:
    """A veth pair with unique names, deleted afterwards; only we send on it."""
    if os.geteuid() != 0:
        pytest.skip("needs root for veth pairs")
    tag = uuid.uuid4().hex[:6]
    inside, outside = f"pyo{tag}a", f"pyo{tag}b"
    _ip("link", "add", inside, "type", "veth", "peer", "name", outside)
    try:
        for name in (inside, outside):
            subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{name}.disable_ipv6=1"],
                           check=False, capture_output=True)
            _ip("link", "set", name, "up")
        yield inside, outside
    finally:
        _ip("link", "del", inside)


def test_raw_socket_port_through_a_veth_pair(veth_pair: tuple[str, str]) -> None:
    inside, outside = veth_pair
    mem = MemoryPort()
    switch = Switch()
    switch.add_port(1, RawSocketPort(inside))
    switch.add_port(2, mem)
    switch.set_pipeline(FirstByteRouter())
    far = RawSocketPort(outside)
    try:
        with switch:
            # Ethernet frame whose destination MAC starts with 0x02: routed to port 2.
            frame = bytes([2, 0, 0, 0, 0, 1]) + bytes([2, 0, 0, 0, 0, 2]) + b"\x88\xb5" + b"x" * 50
            far.transmit(frame)
            assert mem.take(timeout=2.0) == frame
            back = bytes([1, 0, 0, 0, 0, 9]) + bytes([2, 0, 0, 0, 0, 3]) + b"\x88\xb5" + b"y" * 50
            mem.inject(back)
            assert _next_test_frame(far) == back
    finally:
        far.release()


def _next_test_frame(port: RawSocketPort, timeout: float = 2.0) -> bytes | None:
    """The next frame of our test EtherType, ignoring anything the kernel sends."""
    frames: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

    def pump() -> None:
        while (frame := port.receive()) is not None:
            frames.put(frame)
        frames.put(None)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        while True:
            frame = frames.get(timeout=timeout)
            if frame is None or frame[12:14] == b"\x88\xb5":
                return frame
    finally:
        port.close()
        thread.join(timeout=2)
