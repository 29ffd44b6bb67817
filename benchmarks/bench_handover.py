"""Benchmark: state handover of many live connections between two targets.

``sudo .venv/bin/python -m benchmarks.bench_handover --connections 100000
[--source embedded|bmv2] [--destination embedded|bmv2] [--json FILE]``

Two sites, each a target on its own guest and uplink veths with an agent for
VNIC "app" (VNIC id 3 at the source, 9 at the destination, so every slot and
signature is recomputed) and the same rules: a stateful firewall for TCP from
the guest to port 8080, nothing admitted from outside.

1. Real packets open the connections on the source: each its SYN from the
   guest, SYN-ACK from the uplink and ACK from the guest, paced below what the
   target forwards; the source's agent learns them from the pipeline's
   new-connection digests.
2. Control: replies of 1,000 of them sent to the destination are all dropped
   there (it knows none of them).
3. The handover, timed, as ``pyoffload migrate`` does it: the admin Export of
   the source agent, then the admin Import into the destination's, while
   packets of the connections keep flowing through the source.
4. Proof: one reply per exported connection is sent from the uplink into the
   destination; the frames delivered to its guest side are counted from the
   kernel's ``rx_packets`` of that veth. Every established connection must
   come through (an unknown one is dropped as unsolicited).

The pipeline must have room: ``--artifacts DIR`` names a build compiled with
more conntrack slots (``scripts/build-p4`` writes ``pyoffload/pipeline/build/large`` with
1,048,576 when p4c is installed); by default that one is used if present.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import socket
import struct
import sys
import threading
import time
from contextlib import ExitStack
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import grpc

from benchmarks.bench_wire import rx_packets
from benchmarks.figures import publish
from pyoffload.agent import Agent
from pyoffload.agent.admin import migrate, query, serve_admin
from pyoffload.agent.config import parse_config
from pyoffload.pipeline.artifacts import Artifacts, build_dir
from pyoffload.pipeline.constants import ConnState
from pyoffload.playground.topology import require_root, run_tag
from pyoffload.rules import load_data
from pyoffload.targets import RunningTarget, start_wired_target

GUEST_PORT, UPLINK_PORT = 1, 2
SERVER_PORT = 8080
RULES = {"flows": [
    {"id": "egress", "match": {"direction": "from-guest", "protocol": "tcp"},
     "config": {"services": ["conntrack"], "default_verdict": "deny"},
     "rules": [{"id": "web", "match": {"dst_ports": SERVER_PORT, "ct_state": "new"},
                "verdict": "allow-track"}]},
    {"id": "ingress", "match": {"direction": "to-guest"},
     "config": {"services": ["conntrack"], "default_verdict": "deny"}},
]}


def ipv4_checksum(header: bytes) -> int:
    total: int = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class Frames:
    """TCP frames of connection i between a guest endpoint and 192.0.2.20:``server_port``.

    The guest endpoints (an address in 10.1.0.0/16 and a port) are drawn at
    random, with a fixed seed: structured tuples (one address, consecutive
    ports) never collide in a CRC-hashed table, random ones collide as real
    traffic does, so the overflow path is part of what is measured. Frames are
    padded to Ethernet's minimum (60 bytes, 64 with the FCS); TCP checksums are
    left zero (the pipeline does not check them).
    """

    SERVER = 0xC0000214  # 192.0.2.20

    def __init__(self, count: int, seed: int = 7, server_port: int = SERVER_PORT) -> None:
        self.server_port = server_port
        rng = random.Random(seed)
        picks = rng.sample(range(256 * 256 * 55_000), count)
        self.endpoints = [(0x0A010000 | p // 55_000, 10_000 + p % 55_000) for p in picks]
        self.index = {e: i for i, e in enumerate(self.endpoints)}
        self._macs = {False: bytes.fromhex("020000000002020000000001"),
                      True: bytes.fromhex("020000000001020000000002")}

    def frame(self, i: int, flags: str, *, reply: bool = False) -> bytes:
        guest, guest_port = self.endpoints[i]
        src, dst = (self.SERVER, guest) if reply else (guest, self.SERVER)
        server_port = self.server_port
        sport, dport = (server_port, guest_port) if reply else (guest_port, server_port)
        bits = sum(TCP_FLAGS[f] for f in flags)
        ip = bytearray(struct.pack("!BBHHHBBHII", 0x45, 0, 40, 0, 0, 64, 6, 0, src, dst))
        struct.pack_into("!H", ip, 10, ipv4_checksum(bytes(ip)))
        tcp = struct.pack("!HHIIBBHHH", sport, dport, 1000, 2000 if bits & 0x10 else 0,
                          0x50, bits, 65535, 0, 0)
        return self._macs[reply] + b"\x08\x00" + bytes(ip) + tcp + bytes(6)


TCP_FLAGS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10}


def send_paced(ifname: str, frames: list[bytes], pps: float) -> None:
    """Send ``frames`` out of ``ifname`` at about ``pps`` (bounded by the frame count)."""
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as sock:
        sock.bind((ifname, 0))
        start = time.monotonic()
        for n, frame in enumerate(frames):
            if n % 8 == 0:  # short bursts: a pcap-based target (BMv2) drops long ones
                ahead = start + n / pps - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            try:
                sock.send(frame)
            except OSError:  # a full socket buffer: the frame is lost, as on a wire
                time.sleep(0.001)


def wait_delivered(ifname: str, before: int, want: int, timeout: float,
                   quiet: float = 1.5) -> int:
    """Frames received on ``ifname`` since ``before``, once ``want`` came or it stopped
    growing for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last, quiet_since = rx_packets(ifname), time.monotonic()
    while time.monotonic() < deadline and last - before < want:
        time.sleep(0.01)
        now = rx_packets(ifname)
        if now != last:
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since > quiet:
            break
    return rx_packets(ifname) - before


def deliver(out_if: str, in_if: str, frames: list[bytes], pps: float) -> int:
    """Send ``frames`` out of ``out_if`` no faster than ``in_if`` receives them: blocks of
    256 at ``pps``, at most two blocks ahead of what came out (a slow target is not
    overrun, so what does not come out was dropped by the pipeline, not by a full
    socket buffer); the number of frames that came out."""
    before = rx_packets(in_if)
    sent = 0
    for start in range(0, len(frames), 256):
        block = frames[start:start + 256]
        send_paced(out_if, block, pps)
        sent += len(block)
        wait_delivered(in_if, before, sent - 512, timeout=30, quiet=0.3)
    return wait_delivered(in_if, before, sent, timeout=30, quiet=1.0)


class Site:
    """A target with guest and uplink veths, its agent for VNIC "app", its admin socket."""

    def __init__(self, stack: ExitStack, workdir: Path, name: str, kind: str, vnic_id: int,
                 artifacts: Artifacts) -> None:
        wired = start_wired_target(stack, kind, tag=f"h{name}{run_tag()[:2]}",
                                   output=workdir / f"handover-{name}.log",
                                   guest_port=GUEST_PORT, uplink_port=UPLINK_PORT)
        self.target: RunningTarget = wired.target
        self.guest_if, self.uplink_if = wired.guest_if, wired.uplink_if
        config = parse_config({
            "target": {"kind": "remote", "address": "unused"},
            "vnics": [{"name": "app", "id": vnic_id, "guest_port": GUEST_PORT,
                       "uplink_port": UPLINK_PORT,
                       "quotas": {"tracked_connections": 2**31 - 1}}],
        })
        self.agent = Agent(config, self.target.grpc_address, device_id=self.target.device_id,
                           thrift_address=self.target.thrift_address,
                           artifacts=artifacts).start()
        stack.callback(self.agent.stop)
        self.admin = f"unix:{workdir}/{name}-admin.sock"
        stack.callback(serve_admin(self.agent, self.admin).stop, None)
        self.agent.apply("app", load_data(RULES))

    def known(self) -> int:
        return len(self.agent.slow_path.connections.known())


def _serve_site(conn: Connection, workdir: Path, name: str, kind: str, vnic_id: int,
                build: Path) -> None:
    """A site in a process of its own (as each host runs its own agent); answers ``conn``."""
    with ExitStack() as stack:
        try:
            site = Site(stack, workdir, name, kind, vnic_id, Artifacts.in_dir(build))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
            return
        conn.send(("ready", (site.guest_if, site.uplink_if, site.admin)))
        while (request := conn.recv()) != "stop":
            conn.send(site.known() if request == "known" else None)


class RemoteSite:
    """The benchmark's handle on a site process: its wires, its admin socket."""

    def __init__(self, stack: ExitStack, workdir: Path, name: str, kind: str, vnic_id: int,
                 build: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve_site, daemon=True,
                                        args=(child, workdir, name, kind, vnic_id, build))
        self._process.start()
        stack.callback(self.stop)
        if not self._conn.poll(120):
            raise RuntimeError(f"site {name} did not start within 120 s")
        status, value = self._conn.recv()
        if status != "ready":
            raise RuntimeError(f"site {name} failed to start: {value}")
        self.guest_if, self.uplink_if, self.admin = value

    def known(self) -> int:
        self._conn.send("known")
        return int(self._conn.recv())

    def stop(self) -> None:
        if self._process.is_alive():
            self._conn.send("stop")
            self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=10)


def establish(site: RemoteSite, frames: Frames, count: int, pps: float) -> float:
    """Open ``count`` connections through ``site``; seconds until the agent knew them.

    Each step (SYNs, SYN-ACKs, ACKs of a block) waits until the target has
    forwarded the previous one, as seen on the far veth's counters: frames of
    two ports are not ordered with each other inside a target.
    """
    t0 = time.monotonic()
    for start in range(0, count, 5_000):
        ids = range(start, min(count, start + 5_000))
        for out_if, in_if, flags, reply in ((site.guest_if, site.uplink_if, "S", False),
                                            (site.uplink_if, site.guest_if, "SA", True),
                                            (site.guest_if, site.uplink_if, "A", False)):
            deliver(out_if, in_if, [frames.frame(i, flags, reply=reply) for i in ids], pps)
    last, deadline = -1, time.monotonic() + 30
    while site.known() != last and time.monotonic() < deadline:
        last = site.known()
        time.sleep(0.5)  # digests come in lists at most 10 ms late; stop when none come
    return time.monotonic() - t0


def run(source: str, destination: str, connections: int, build: Path,
        workdir: Path, pps: float) -> dict[str, Any]:
    require_root("the handover benchmark (veth pairs)")
    frames = Frames(connections)
    with ExitStack() as stack:
        a = RemoteSite(stack, workdir, "a", source, 3, build)
        b = RemoteSite(stack, workdir, "b", destination, 9, build)
        setup_s = establish(a, frames, connections, pps)
        learned = a.known()

        sample = list(range(0, connections, max(1, connections // 1000)))[:1000]
        control = deliver(b.uplink_if, b.guest_if,
                          [frames.frame(i, "A", reply=True) for i in sample], pps)

        # Traffic keeps flowing through the source while its state is exported.
        stop = threading.Event()

        def background() -> None:
            n = 0
            while not stop.is_set() and n < 10 * connections:
                ids = range(n % connections, min(connections, n % connections + 500))
                send_paced(a.guest_if, [frames.frame(i, "PA") for i in ids], 5_000)
                n += len(ids)

        flowing = threading.Thread(target=background, daemon=True)
        flowing.start()
        t0 = time.perf_counter()
        try:
            moved, result = migrate("app", a.admin, b.admin)
        except grpc.RpcError as exc:
            raise SystemExit(f"handover failed: {exc.code().name}: {exc.details()}") from None
        t1 = time.perf_counter()
        stop.set()
        flowing.join(timeout=30)

        # What moved, as the destination now holds it (not timed).
        exported = query("Export", {"vnic": "app"}, address=b.admin, timeout=600)
        rows = exported["connections"]
        info_at = exported["fields"].index("info")
        established_state = ConnState.TCP_ESTABLISHED
        established = sum(1 for r in rows if r[info_at] & 0xF == established_state)
        lo_addr, lo_port = exported["fields"].index("lo_addr"), exported["fields"].index("lo_port")
        ids = sorted(frames.index[(r[lo_addr], r[lo_port])] for r in rows
                     if r[info_at] & 0xF == established_state)
        delivered = deliver(b.uplink_if, b.guest_if,
                            [frames.frame(i, "A", reply=True) for i in ids], pps)
    return {
        "source": source, "destination": destination, "connections_opened": connections,
        "setup_seconds": round(setup_s, 1), "learned_by_source_agent": learned,
        "exported": moved, "held_by_destination": len(rows),
        "established_at_destination": established,
        "handover_seconds": round(t1 - t0, 3),
        "imported": result["imported"], "already_there": result["present"],
        "in_overflow_slots": result["overflow"], "skipped": len(result["skipped"]),
        "control_replies_delivered_before_import": control, "control_replies_sent": len(sample),
        "replies_sent_after": len(ids), "replies_delivered_after": delivered,
        "lost": len(ids) - delivered,
    }


def report(r: dict[str, Any]) -> list[str]:
    return [
        f"handover {r['source']} -> {r['destination']}: {r['exported']:,} live connections "
        f"in {r['handover_seconds']:.2f} s (streamed export and import, as pyoffload migrate), "
        f"traffic flowing through the source meanwhile",
        f"  the destination holds {r['held_by_destination']:,} "
        f"({r['established_at_destination']:,} established)",
        f"  imported {r['imported']:,}, already there {r['already_there']:,}, "
        f"in overflow slots {r['in_overflow_slots']:,}, skipped {r['skipped']:,}",
        f"  before: {r['control_replies_delivered_before_import']} of "
        f"{r['control_replies_sent']} replies passed the destination (it knew none)",
        f"  after: replies of {r['replies_delivered_after']:,} of the "
        f"{r['replies_sent_after']:,} established connections passed the destination; "
        f"established connections lost: {r['lost']:,}",
        f"  setup: {r['connections_opened']:,} connections opened by real packets in "
        f"{r['setup_seconds']} s, {r['learned_by_source_agent']:,} learned by the source agent",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_handover",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=100_000)
    parser.add_argument("--source", default="embedded", choices=("embedded", "bmv2"))
    parser.add_argument("--destination", default="embedded", choices=("embedded", "bmv2"))
    parser.add_argument("--artifacts", type=Path, default=None,
                        help="build directory (default: pyoffload/pipeline/build/large if present)")
    parser.add_argument("--pps", type=float, default=None,
                        help="pace of the packets that open and check connections (default "
                             "15,000 between embedded targets, 2,000 with BMv2, whose "
                             "default build forwards ~3,000 a second)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if not 0 < args.connections <= 1_000_000:
        parser.error("--connections must be between 1 and 1,000,000")
    build = args.artifacts or build_dir("large")
    workdir = Path("/tmp") / f"pyoffload-handover-{run_tag()}"
    workdir.mkdir(parents=True, exist_ok=True)
    pps = args.pps or (2_000 if "bmv2" in (args.source, args.destination) else 15_000)
    result = run(args.source, args.destination, args.connections, build, workdir, pps)
    result["pps"] = pps
    result["artifacts"] = str(build)
    return publish(report(result), result, args.json)


if __name__ == "__main__":
    sys.exit(main())
