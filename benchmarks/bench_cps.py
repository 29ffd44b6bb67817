"""Benchmark (f): new connections per second through the stateful firewall, on veths.

Each target runs the ``large`` build (1,048,576 conntrack slots) pinned to CPU
0 with the demo VNIC and 1,000 ACL rules; the sender (``bench_sender``) on
CPU 1 offers TCP SYNs at saturation, every one of them the first packet of a
connection never seen before (endpoints drawn at random, so they collide in
the hash table as real ones do; a colliding one goes to the CPU port, as the
agent's slow path would get it). A SYN the target forwards to the uplink is a
connection it compared with the ACL, admitted and now tracks: the delivered
SYNs per second, from the kernel's ``rx_packets`` of the uplink veth, are the
figure. Between rounds the conntrack table is emptied (``vnic.ct_info``
reset), so every round starts from the same occupancy; with BMv2 installed
both targets are measured alternately A B A B, with the same frames.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from contextlib import ExitStack
from pathlib import Path

from finsy import P4RegisterEntry

from benchmarks.bench_entries import TRAFFIC_DPORT, acl_rules, vnic_entities
from benchmarks.bench_handover import Frames
from benchmarks.bench_sender import write_frames
from benchmarks.bench_wire import SENDER_CPU, TARGET_CPU, Bench, median_ratio
from pyoffload.agent.registers import ThriftRegisters
from pyoffload.p4runtime import P4RuntimeClient, UpdateType
from pyoffload.pipeline import names
from pyoffload.pipeline.artifacts import Artifacts, load_constants
from pyoffload.playground.topology import run_tag

OFFERED = 300_000
"""Distinct SYNs per round: more than any target forwards in warm-up plus window."""


def syn_frames(count: int, seed: int) -> list[bytes]:
    """``count`` 64-byte SYNs from random guest endpoints (10.1.0.0/16) to the traffic port."""
    frames = Frames(count, seed, server_port=TRAFFIC_DPORT)
    return [frames.frame(i, "S") for i in range(count)]


class CpsBench(Bench):
    """A target with the large build, the demo VNIC and its ACL, registers resettable."""

    def __init__(self, kind: str, stack: ExitStack, workdir: Path, rules: int) -> None:
        self.kind = kind
        self.artifacts = Artifacts.packaged("large")
        self._start(stack, f"c{run_tag()[:3]}", workdir / f"cps-{kind}.log")
        self.client = stack.enter_context(P4RuntimeClient(self.target.grpc_address,
                                                          device_id=self.target.device_id))
        self.schema = self.client.set_pipeline(self.artifacts.p4info, self.artifacts.bmv2_json)
        entities = [e.encode(self.schema) for e in vnic_entities(load_constants(), rules=0)]
        entities += [e.encode(self.schema) for e in acl_rules(rules)[:-2]]
        for i in range(0, len(entities), 500):
            self.client.write_entities(UpdateType.INSERT, entities[i:i + 500])
        self.tracked = 0

    def empty_conntrack(self) -> None:
        """Every slot free again: ct_info zero (P4Runtime wildcard; BMv2: Thrift reset)."""
        thrift = self.target.thrift_address
        if thrift is None:
            reset = P4RegisterEntry(names.CT_INFO, data=0).encode(self.schema)
            reset.register_entry.ClearField("index")
            self.client.write_entities(UpdateType.MODIFY, [reset])
            return
        registers = ThriftRegisters(thrift)
        try:
            registers.reset(names.CT_INFO)
        finally:
            registers.close()


def run(kinds: list[str], workdir: Path, *, rounds: int = 3, warmup: float = 1.0,
        window: float = 5.0, rules: int = 1000) -> dict[str, object]:
    if os.geteuid() != 0:
        return {"skipped": "needs root to create veth pairs"}
    if (os.cpu_count() or 1) < 2:
        return {"skipped": "needs two CPUs (target and sender on their own cores)"}
    cps: dict[str, list[float]] = {kind: [] for kind in kinds}
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="pyoffload-cps-") as tmp:
        benches = [CpsBench(kind, stack, workdir, rules) for kind in kinds]
        for number in range(rounds):
            frames = Path(tmp) / f"syn-{number}.bin"
            write_frames(frames, syn_frames(OFFERED, seed=number))
            for bench in benches:  # A B, A B, ...
                bench.empty_conntrack()
                cps[bench.kind].append(bench.measure(frames, warmup, window))
    result: dict[str, object] = {
        "acl_rules": rules, "rounds": rounds, "window_s": window, "ct_slots": 1_048_576,
        "connections_per_s": {k: [round(v, 1) for v in vs] for k, vs in cps.items()},
        "median_connections_per_s": {k: round(statistics.median(vs), 1)
                                     for k, vs in cps.items()},
    }
    if len(kinds) == 2:
        a, b = kinds
        result["median_ratio"] = {f"{a}/{b}": median_ratio(cps[a], cps[b], 3)}
    return result


def report(result: dict[str, object]) -> list[str]:
    if "skipped" in result:
        return [f"(f) new connections per second skipped: {result['skipped']}"]
    lines = [f"(f) new TCP connections per second through the stateful firewall on veths "
             f"(first SYNs of fresh connections, target on CPU {TARGET_CPU}, sender on CPU "
             f"{SENDER_CPU}, {result['acl_rules']} ACL rules, {result['ct_slots']:,} slots, "
             f"{result['rounds']} rounds x {result['window_s']} s)"]
    medians = result["median_connections_per_s"]
    per_round = result["connections_per_s"]
    assert isinstance(medians, dict) and isinstance(per_round, dict)
    for kind, value in medians.items():
        lines.append(f"    {kind:9} median {value:>10,.0f} connections/s "
                     f"(rounds {per_round[kind]})")
    ratio = result.get("median_ratio")
    if isinstance(ratio, dict):
        for pair, value in ratio.items():
            lines.append(f"    median per-round ratio {pair}: {value}")
    return lines
