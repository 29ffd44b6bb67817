"""Benchmarks (b) and (c): end-to-end throughput on veth ports.

As DESIGN.md "How we measure" says: each target runs pinned to CPU 0
(all its threads, ``targets.pin_process``), the sender (``bench_sender``, its own
process) pinned to CPU 1; 4,096 UDP flows of distinct 5-tuples are offered at
saturation into the guest port for a fixed window, and delivered frames are
the kernel's ``rx_packets`` of the uplink veth's test end, sampled after a
warm-up and at the end of the window. Every flow is sent once, paced, before
measuring, so all are tracked connections (the fast path); the 998 filler
ACL rules are added after that. With BMv2 installed both targets run, on
veths of their own, and are measured alternately A B A B over the rounds;
the report gives each one's median and the median of the per-round ratios.
Traffic only flows on the veths created here.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from benchmarks.bench_entries import (
    GUEST_PORT,
    TRAFFIC_DPORT,
    UPLINK_PORT,
    acl_rules,
    vnic_entities,
)
from benchmarks.bench_sender import write_frames
from benchmarks.corpus import flow_frames
from pyoffload.embedded.ports import RawSocketPort
from pyoffload.p4runtime import P4RuntimeClient, UpdateType
from pyoffload.pipeline.artifacts import Artifacts, load_constants
from pyoffload.playground.topology import run_tag
from pyoffload.targets import RunningTarget, pin_process, start_wired_target

TARGET_CPU, SENDER_CPU = 0, 1
FLOWS = 4096


def rx_packets(ifname: str) -> int:
    return int(Path(f"/sys/class/net/{ifname}/statistics/rx_packets").read_text())


class Bench:
    """One target on its own two veths, configured and warmed, ready to be measured."""

    def __init__(self, kind: str, artifacts: Artifacts, stack: ExitStack, workdir: Path,
                 rules: int) -> None:
        self.kind = kind
        self._start(stack, f"b{run_tag()[:3]}", workdir / f"wire-{kind}.log")
        const = load_constants()
        with P4RuntimeClient(self.target.grpc_address,
                             device_id=self.target.device_id) as client:
            schema = client.set_pipeline(artifacts.p4info, artifacts.bmv2_json)
            client.write_entities(UpdateType.INSERT, [
                e.encode(schema) for e in vnic_entities(const, rules=0)])
            self.tracked = self._warm(flow_frames(FLOWS, 64, dport=TRAFFIC_DPORT))
            fillers = [e.encode(schema) for e in acl_rules(rules)[:-2]]
            for i in range(0, len(fillers), 500):
                client.write_entities(UpdateType.INSERT, fillers[i:i + 500])

    def _start(self, stack: ExitStack, tag: str, output: Path) -> None:
        """The target between the guest (sending) and uplink (receiving) veths, pinned."""
        wired = start_wired_target(stack, self.kind, tag=tag, output=output,
                                   guest_port=GUEST_PORT, uplink_port=UPLINK_PORT)
        self.target: RunningTarget = wired.target
        self.send_if, self.recv_if = wired.guest_if, wired.uplink_if
        pin_process(self.target.process.pid, TARGET_CPU)

    def _warm(self, frames: list[bytes], timeout: float = 60.0) -> int:
        """Send each flow once, 64 at a time, each group waited for; flows delivered."""
        port = RawSocketPort(self.send_if)
        try:
            start = rx_packets(self.recv_if)
            deadline = time.monotonic() + timeout
            for i in range(0, len(frames), 64):
                for frame in frames[i:i + 64]:
                    port.transmit(frame)
                want = start + min(i + 64, len(frames))
                while rx_packets(self.recv_if) < want and time.monotonic() < deadline:
                    time.sleep(0.002)  # polling a counter, not a readiness guess
            return rx_packets(self.recv_if) - start
        finally:
            port.release()

    def measure(self, frames_file: Path, warmup: float, window: float) -> float:
        """Delivered frames per second over ``window`` at saturation."""
        sender = subprocess.Popen(
            ["taskset", "-c", str(SENDER_CPU), sys.executable, "-m", "benchmarks.bench_sender",
             self.send_if, str(frames_file), str(warmup + window + 0.5)],
            stdout=subprocess.PIPE, text=True,
            cwd=str(Path(__file__).resolve().parent.parent))
        try:
            time.sleep(warmup)  # a measurement window, not a readiness wait
            first, t0 = rx_packets(self.recv_if), time.monotonic()
            time.sleep(window)
            last, t1 = rx_packets(self.recv_if), time.monotonic()
            sender.communicate(timeout=warmup + window + 30)
        finally:
            if sender.poll() is None:
                sender.kill()
                sender.wait()
        return (last - first) / (t1 - t0)


def median_ratio(a: list[float], b: list[float], digits: int = 4) -> float:
    """The median of the per-round ratios a/b (rounds alternate A B A B)."""
    return round(statistics.median(x / y if y else 0.0 for x, y in zip(a, b, strict=True)),
                 digits)


def run(artifacts: Artifacts, kinds: list[str], workdir: Path, *, rounds: int = 3,
        warmup: float = 1.0, window: float = 5.0, rules: int = 1000) -> dict[str, object]:
    if os.geteuid() != 0:
        return {"skipped": "needs root to create veth pairs"}
    if (os.cpu_count() or 1) < 2:
        return {"skipped": "needs two CPUs (target and sender on their own cores)"}
    sizes = (64, 1500)
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="pyoffload-wire-") as tmp:
        benches = [Bench(kind, artifacts, stack, workdir, rules) for kind in kinds]
        files = {}
        for size in sizes:
            files[size] = Path(tmp) / f"frames-{size}.bin"
            write_frames(files[size], flow_frames(FLOWS, size, dport=TRAFFIC_DPORT))
        pps: dict[str, dict[int, list[float]]] = {b.kind: {s: [] for s in sizes}
                                                  for b in benches}
        for _ in range(rounds):
            for size in sizes:
                for bench in benches:  # A B, A B, ...
                    pps[bench.kind][size].append(bench.measure(files[size], warmup, window))
        result: dict[str, object] = {
            "flows": FLOWS, "acl_rules": rules, "rounds": rounds, "window_s": window,
            "tracked_flows": {b.kind: b.tracked for b in benches},
            "pps": {k: {str(s): [round(v, 1) for v in vs] for s, vs in by.items()}
                    for k, by in pps.items()},
            "median_pps": {k: {str(s): round(statistics.median(vs), 1) for s, vs in by.items()}
                           for k, by in pps.items()},
        }
        if len(benches) == 2:
            a, b = (x.kind for x in benches)
            result["median_ratio"] = {
                f"{a}/{b}": {str(s): median_ratio(pps[a][s], pps[b][s]) for s in sizes}}
    return result


def report(result: dict[str, object]) -> list[str]:
    if "skipped" in result:
        return [f"(b, c) wire throughput skipped: {result['skipped']}"]
    lines = [f"(b, c) veth throughput, target on CPU {TARGET_CPU}, sender on CPU {SENDER_CPU}, "
             f"{result['flows']} UDP flows, {result['acl_rules']} ACL rules, "
             f"{result['rounds']} rounds x {result['window_s']} s"]
    medians = result["median_pps"]
    per_round = result["pps"]
    assert isinstance(medians, dict) and isinstance(per_round, dict)
    for kind, by_size in medians.items():
        for size, value in by_size.items():
            lines.append(f"    {kind:9} {size:>5} B frames: median {value:>10,.0f} pps "
                         f"(rounds {per_round[kind][size]})")
    ratio = result.get("median_ratio")
    if isinstance(ratio, dict):
        for pair, by_size in ratio.items():
            for size, value in by_size.items():
                lines.append(f"    median per-round ratio {pair} at {size} B: {value}")
    return lines
