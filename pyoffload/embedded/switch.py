"""The embedded switch: ports, one pipeline, the CPU port.

Frames from every port go through the pipeline one at a time (the engine is
not thread safe, so `lock` serialises packet processing and control-plane
changes; the P4Runtime server takes the same lock, re-entrantly, to hold it
across a whole atomic batch or pipeline swap). The pipeline's outputs
are sent after the lock is released so a slow port never stalls the others.

Control-plane work that is long (a large Write) takes the lock in short slices,
ends a slice early when a frame waits for the lock, and between two slices
lets go of the interpreter lock and lets the frames that wait for the lock
through (`packets_waiting`, `yield_to_packets`), so forwarding is never
frozen for longer than a slice.

The CPU port is internal, as in BMv2: a frame the pipeline sends to it is
split into the `packet_in` header fields and payload and handed to the
packet-in listener (the P4Runtime stream); a packet-out is prefixed with the
`packet_out` header and processed as if received on the CPU port.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pyoffload.errors import PyoffloadError

from .p4runtime.packet_io import CpuHeaders
from .ports import Port

_log = logging.getLogger(__name__)

PacketInListener = Callable[[list[tuple[int, int]], bytes], None]
"""Called with ((metadata id, value) per packet_in field, payload)."""

DigestListener = Callable[[str, tuple[int, ...]], None]
"""Called with (digest name, field values) for every digest the pipeline emits."""

HANDOVER_S = 0.0003
"""How long a long control-plane job lets go of the interpreter between two slices:
long enough for a woken thread to take it (with 0.1 ms the job often took it back
first), short enough to cost ~10% of a large Write's time while frames flow."""

TRAFFIC_S = 0.1
"""Frames seen that recently: keep handing over (a slice in which the frames could not
get the interpreter lock must not stop the hand-overs that let them through)."""


class ProcessResult(Protocol):
    """What the switch reads from the engine's result of one packet."""

    @property
    def outputs(self) -> Sequence[tuple[int, bytes]]: ...

    @property
    def digests(self) -> Sequence[tuple[str, tuple[int, ...]]]: ...

    @property
    def logs(self) -> Sequence[str]: ...


class Processor(Protocol):
    """The data-plane half of the engine's `Pipeline`."""

    def process(self, ingress_port: int, packet: bytes) -> ProcessResult: ...


@dataclass(slots=True)
class PortStats:
    rx: int = 0
    tx: int = 0


@dataclass(slots=True)
class SwitchStats:
    """Frame counters, for operators and tests."""

    ports: dict[int, PortStats] = field(default_factory=dict)
    no_pipeline_drops: int = 0
    no_port_drops: int = 0
    packet_in: int = 0
    packet_out: int = 0
    errors: int = 0


class SwitchError(PyoffloadError):
    """A switch operation cannot be done (bad port number, no CPU port...)."""


class Switch:
    """Ports plus the currently running pipeline of the embedded target."""

    def __init__(self, *, cpu_port: int | None = None) -> None:
        if cpu_port is not None and cpu_port < 0:
            raise SwitchError(f"CPU port must be a port number >= 0, not {cpu_port}")
        self.cpu_port = cpu_port
        self.lock = threading.RLock()
        self._waiting: list[None] = []  # one item per frame waiting for `lock`
        self._frames = 0  # frames processed, counted under `lock`
        self._frames_at_yield = 0
        self._handover_until = 0.0  # yield_to_packets hands over until then
        self.stats = SwitchStats()
        self._ports: dict[int, Port] = {}
        self._threads: dict[int, threading.Thread] = {}
        self._pipeline: Processor | None = None
        self._cpu_headers = CpuHeaders(None, None)
        self._packet_in: PacketInListener | None = None
        self._digest: DigestListener | None = None
        self._running = False

    # configuration -------------------------------------------------------
    def add_port(self, number: int, port: Port) -> None:
        """Attach a port; its receive thread starts now if the switch runs."""
        if number < 0 or number == self.cpu_port:
            raise SwitchError(f"port number {number} is negative or the CPU port")
        if number in self._ports:
            raise SwitchError(f"port {number} is already attached ({self._ports[number].name})")
        self._ports[number] = port
        self.stats.ports[number] = PortStats()
        if self._running:
            self._start_thread(number, port)

    @property
    def ports(self) -> Mapping[int, Port]:
        return dict(self._ports)

    @property
    def pipeline(self) -> Processor | None:
        return self._pipeline

    @property
    def cpu_headers(self) -> CpuHeaders:
        return self._cpu_headers

    def set_pipeline(
        self, pipeline: Processor | None, cpu_headers: CpuHeaders | None = None
    ) -> None:
        """Replace the running pipeline atomically (between two packets)."""
        with self.lock:
            self._pipeline = pipeline
            self._cpu_headers = cpu_headers or CpuHeaders(None, None)

    def set_cpu_headers(self, cpu_headers: CpuHeaders | None) -> None:
        with self.lock:
            self._cpu_headers = cpu_headers or CpuHeaders(None, None)

    def on_packet_in(self, listener: PacketInListener | None) -> None:
        self._packet_in = listener

    def on_digest(self, listener: DigestListener | None) -> None:
        self._digest = listener

    # running -------------------------------------------------------------
    def start(self) -> None:
        """Start one receive thread per port."""
        if self._running:
            return
        self._running = True
        for number, port in self._ports.items():
            self._start_thread(number, port)

    def stop(self) -> None:
        """Close every port, wait for the receive threads, free the ports."""
        self._running = False
        for port in self._ports.values():
            port.close()
        for thread in self._threads.values():
            thread.join(timeout=5)
        self._threads.clear()
        for port in self._ports.values():
            port.release()

    def __enter__(self) -> Switch:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start_thread(self, number: int, port: Port) -> None:
        thread = threading.Thread(
            target=self._receive_loop, args=(number, port), name=f"port-{number}-{port.name}",
            daemon=True,
        )
        self._threads[number] = thread
        thread.start()

    def _receive_loop(self, number: int, port: Port) -> None:
        while True:
            frame = port.receive()
            if frame is None:
                return
            try:
                self.receive(number, frame)
            except Exception:  # a bad frame must not kill the port
                self.stats.errors += 1
                _log.exception("port %d: processing a frame failed", number)

    # data path -----------------------------------------------------------
    def packets_waiting(self) -> bool:
        """True while a frame waits for `lock`."""
        return bool(self._waiting)

    def yield_to_packets(self, limit_s: float = 0.002) -> None:
        """Called between two slices of a long control-plane job, without `lock` held.

        When frames flowed in the last `TRAFFIC_S`, first a real sleep of
        `HANDOVER_S`: it hands the interpreter lock to the threads that wait for
        it (a port thread woken by a frame, the sender of a frame);
        time.sleep(0) would take it straight back, and otherwise they get it
        only when the interpreter's switch interval forces it, once per waiting
        thread. Without traffic the job goes on at full speed. Then wait (at
        most `limit_s`) until the frames that wait for `lock` got it, so a long
        control-plane job cannot starve them.
        """
        waiting = self._waiting
        now = time.perf_counter()
        frames = self._frames
        if frames != self._frames_at_yield or waiting:
            self._frames_at_yield = frames
            self._handover_until = now + TRAFFIC_S
        if now < self._handover_until:
            time.sleep(HANDOVER_S)
        if not waiting:
            return
        deadline = time.perf_counter() + limit_s
        while waiting and time.perf_counter() < deadline:
            time.sleep(0.00005)

    def receive(self, ingress_port: int, frame: bytes) -> None:
        """Process one frame arriving on `ingress_port` and deliver its outputs."""
        waiting = self._waiting
        waiting.append(None)  # list append/pop are atomic: an exact count of waiters
        with self.lock:
            waiting.pop()
            self._frames += 1
            pipeline = self._pipeline
            if pipeline is None:
                self.stats.no_pipeline_drops += 1
                return
            stats = self.stats.ports.get(ingress_port)
            if stats is not None:
                stats.rx += 1
            result = pipeline.process(ingress_port, frame)
            cpu_headers = self._cpu_headers
        for line in result.logs:
            _log.info("%s", line)
        for egress, out in result.outputs:
            self._emit(egress, out, cpu_headers)
        if result.digests and self._digest is not None:
            for name, values in result.digests:
                self._digest(name, values)

    def _emit(self, egress: int, frame: bytes, cpu_headers: CpuHeaders) -> None:
        if egress == self.cpu_port:
            listener = self._packet_in
            if listener is None:
                return
            layout = cpu_headers.packet_in
            if layout is None:
                metadata: list[tuple[int, int]] = []
                payload = frame
            else:
                try:
                    metadata, payload = layout.unpack(frame)
                except Exception:
                    self.stats.errors += 1
                    return
            self.stats.packet_in += 1
            listener(metadata, payload)
            return
        port = self._ports.get(egress)
        if port is None:
            self.stats.no_port_drops += 1
            return
        self.stats.ports[egress].tx += 1
        port.transmit(frame)

    def packet_out(self, metadata: Mapping[int, int], payload: bytes) -> None:
        """Inject a controller packet on the CPU port, prefixed with the packet_out header."""
        if self.cpu_port is None:
            raise SwitchError("no CPU port configured (start the target with --cpu-port)")
        layout = self._cpu_headers.packet_out
        frame = payload if layout is None else layout.pack(metadata) + payload
        self.stats.packet_out += 1
        self.receive(self.cpu_port, frame)
