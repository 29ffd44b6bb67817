"""The test ends of a target's veths: send one frame, collect what comes out.

A frame may leave on any port or on none, so "wait until nothing more comes"
would be a fixed sleep per frame. Instead a sync frame (a non-IP ethertype
the pipeline passes untouched to the peer port) follows each input on the
same ingress port; the target handles a port's frames in order, so once the
sync frame is out, the input's outputs are out too, save for targets that
queue per egress port (BMv2): a short quiet period after the sync covers them.
Everything is bounded: a target that never returns the sync frame is an error.
"""

from __future__ import annotations

import contextlib
import queue
import struct
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

from finsy import P4Schema

from pyoffload.embedded.ports import RawSocketPort
from pyoffload.p4runtime import P4RuntimeClient
from pyoffload.playground.topology import Topology
from pyoffload.targets import start_target

SYNC_ETHERTYPE = 0x88B5  # IEEE local experimental: never a protocol we parse
SYNC_MAGIC = b"pyoffload-sync"
Output = tuple[int, bytes]


class WireError(Exception):
    """The target did not behave like a switch (lost a sync frame)."""


def sync_frame(seq: int) -> bytes:
    return (b"\x02\x00\x00\x00\xee\x01" + b"\x02\x00\x00\x00\xee\x02"
            + struct.pack("!H", SYNC_ETHERTYPE) + SYNC_MAGIC + struct.pack("!Q", seq)
            + b"\x00" * 16)


class Wire:
    """Raw sockets on the test ends, one reader thread each, one output queue."""

    def __init__(self, test_ends: dict[int, str], peers: dict[int, int],
                 *, sync_timeout: float = 5.0, quiet: float = 0.03) -> None:
        self._ports = {p: RawSocketPort(name) for p, name in test_ends.items()}
        self._peers = peers
        self._out: queue.Queue[Output] = queue.Queue()
        self._seq = 0
        self._sync_timeout = sync_timeout
        self._quiet = quiet
        self._threads = [threading.Thread(target=self._read, args=(p, port), daemon=True)
                         for p, port in self._ports.items()]
        for thread in self._threads:
            thread.start()

    def _read(self, number: int, port: RawSocketPort) -> None:
        while (frame := port.receive()) is not None:
            self._out.put((number, frame))

    def exchange(self, port: int, frame: bytes) -> Counter[Output]:
        """Send ``frame`` on ``port``; the multiset of (port, frame) that came out."""
        self._seq += 1
        sync = sync_frame(self._seq)
        self._ports[port].transmit(frame)
        self._ports[port].transmit(sync)
        seen: Counter[Output] = Counter()
        expected = (self._peers[port], sync)
        got_sync = False
        while True:
            try:
                item = self._out.get(timeout=self._quiet if got_sync else self._sync_timeout)
            except queue.Empty:
                if got_sync:
                    return seen
                raise WireError(
                    f"sync frame {self._seq} sent on port {port} did not come out on port "
                    f"{self._peers[port]} within {self._sync_timeout:g} s") from None
            if item == expected:
                got_sync = True
            elif SYNC_MAGIC not in item[1][14:14 + len(SYNC_MAGIC)]:
                seen[item] += 1

    def close(self) -> None:
        for port in self._ports.values():
            port.close()
        for thread in self._threads:
            thread.join(timeout=5)
        for port in self._ports.values():
            port.release()

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


@contextlib.contextmanager
def target_on_veths(kind: str, ports: Iterable[int], p4info: Path, bmv2_json: Path,
                    log_dir: Path) -> Iterator[tuple[P4RuntimeClient, P4Schema, dict[int, str]]]:
    """``kind`` started on a fresh veth pair per port with ``p4info``/``bmv2_json`` pushed:
    its primary client, the schema, and the test ends of the veths (port -> interface)."""
    with Topology() as topo:
        for port in ports:
            topo.add_veth(port)
        switch_ends = {p: pair.switch_end for p, pair in topo.pairs.items()}
        test_ends = {p: pair.test_end for p, pair in topo.pairs.items()}
        with start_target(kind, switch_ends, output=log_dir / f"{kind}-{topo.tag}.log") \
                as target, \
                P4RuntimeClient(target.grpc_address, device_id=target.device_id) as client:
            yield client, client.set_pipeline(p4info, bmv2_json), test_ends
