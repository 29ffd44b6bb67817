"""Benchmark the offload path: guest shim -> channel -> agent -> P4Runtime -> target.

``python -m benchmarks.bench_agent [--target embedded|bmv2] [--json FILE]``
prints, for a running target of the chosen kind:

* a 10,000-rule request, end to end from the guest shim to the acknowledged,
  installed request (goal: at most 2 s on the embedded target);
* single-rule updates of a small rule set, p50/p99 over 1,000 updates (goal:
  p99 at most 20 ms);
* the agent's overhead over raw P4Runtime writes of the same entities (batches
  of 1,000 over the agent's warm connection; goal: at most 20%): what a
  controller that holds the entities as finsy objects does (encode, then
  write), and, for reference, the writes alone of entities encoded
  beforehand. Agent and raw rounds alternate; the overhead is the median of
  the per-round ratios.

With two CPUs or more the target runs on CPU 0 and this process (guest shim,
agent, raw client) on CPU 1, for both the agent and the raw runs.

Figures, not assertions: nothing here fails on a slow machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from finsy import P4Schema
from finsy.p4entity import P4Entity
from finsy.proto import p4r
from guest_shim.client import Channel

from benchmarks.bench_wire import median_ratio
from guest_shim import offload_pb2 as pb
from pyoffload.agent import Agent
from pyoffload.agent.channel import serve_channel
from pyoffload.agent.config import parse_config
from pyoffload.compiler import ResourcePool, VnicTarget, compile_request
from pyoffload.p4runtime import P4RuntimeClient, UpdateType
from pyoffload.pipeline.artifacts import load_constants
from pyoffload.rules import from_proto
from pyoffload.targets import pin_process, start_target

FLOWS = 10
RULES_PER_FLOW = 1000



def single_rule_updates(guest: Channel, count: int) -> list[float]:
    """Milliseconds of ``count`` applies of a 10-rule set, each moving one rule's port."""
    small = big_request(flows=1, rules=10)
    guest.apply(small)
    latencies = []
    for i in range(count):
        port = 20000 + i % 40000
        small.flows[0].rules[0].match.dst_ports.lo = port
        small.flows[0].rules[0].match.dst_ports.hi = port
        small.generation = 0
        start = time.perf_counter()
        guest.apply(small)
        latencies.append((time.perf_counter() - start) * 1000)
    return latencies

def big_request(
    flows: int = FLOWS, rules: int = RULES_PER_FLOW, salt: int = 0
) -> pb.OffloadRequest:
    """``flows`` TCP flows of ``rules`` distinct allow rules each (one port per rule)."""
    request = pb.OffloadRequest()
    for f in range(flows):
        flow = request.flows.add(id=f"flow-{f}")
        flow.match.direction = pb.DIRECTION_FROM_GUEST
        flow.match.protocol = "tcp"
        flow.match.dst = f"10.{f}.0.0/16"
        flow.config.default_verdict = pb.VERDICT_DENY
        for r in range(rules):
            rule = flow.rules.add(id=f"r{r}", verdict=pb.VERDICT_ALLOW)
            port = 1 + (r + salt) % 65000
            rule.match.dst_ports.lo = port
            rule.match.dst_ports.hi = port
    return request


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def raw_round(client: P4RuntimeClient, schema: P4Schema, compiled: list[P4Entity]
              ) -> tuple[float, float]:
    """(encode + write, write alone) of ``compiled`` in batches of 1,000, each removed after."""
    # What a controller writing P4Runtime by hand does: encode, write.
    start = time.perf_counter()
    entities = [e.encode(schema) for e in compiled]
    for i in range(0, len(entities), 1000):
        client.write_entities(UpdateType.INSERT, entities[i:i + 1000])
    raw = time.perf_counter() - start
    for i in reversed(range(0, len(entities), 1000)):
        client.write_entities(UpdateType.DELETE, entities[i:i + 1000])
    # The writes alone, the updates made beforehand.
    batches = [[p4r.Update(type=UpdateType.INSERT.value, entity=e)
                for e in entities[i:i + 1000]] for i in range(0, len(entities), 1000)]
    start = time.perf_counter()
    for batch in batches:
        client.write(batch)
    preencoded = time.perf_counter() - start
    for i in reversed(range(0, len(entities), 1000)):
        client.write_entities(UpdateType.DELETE, entities[i:i + 1000])
    return raw, preencoded


def run(kind: str, updates: int, rounds: int, pinned: bool) -> dict[str, Any]:
    results: dict[str, Any] = {"target": kind}
    with tempfile.TemporaryDirectory(prefix="pyoffload-bench-") as tmp:
        channel = f"unix:{tmp}/bench.sock"
        config = parse_config({
            "target": {"kind": "remote", "address": "unused"},
            "vnics": [{"name": "bench", "id": 1, "guest_port": 1, "uplink_port": 2,
                       "channel": channel, "quotas": {"flows": 100, "rules": 20000}}],
        })
        with start_target(kind, {}, output=Path(tmp) / "target.log") as target:
            results["target"] = target.kind
            results["pinned"] = pinned
            if pinned:
                pin_process(target.process.pid, 0)
                pin_process(os.getpid(), 1)
            agent = Agent(config, target.grpc_address, device_id=target.device_id,
                          reconnect=False).start()
            address = config.vnic("bench").channel
            assert address is not None
            server = serve_channel(agent, "bench", address)
            # The raw controller writes the same entities (for another VNIC id) over the
            # agent's own warm connection, between the agent's rounds: both see the
            # machine in the same state.
            compiled = list(compile_request(from_proto(big_request()),
                                            VnicTarget(name="raw", vnic_id=2),
                                            load_constants(), ResourcePool()).entities)
            try:
                with Channel(channel) as guest:
                    # 1. a 10,000-rule request (install, then withdraw), alternating with
                    # raw P4Runtime writes of the same entities
                    times, raw_times, preencoded_times = [], [], []
                    for i in range(rounds):
                        request = big_request(salt=i)
                        start = time.perf_counter()
                        guest.apply(request)
                        times.append(time.perf_counter() - start)
                        guest.withdraw(all_flows=True)
                        raw, preencoded = agent.with_client(
                            lambda client: raw_round(client, agent.schema, compiled))
                        raw_times.append(raw)
                        preencoded_times.append(preencoded)
                    results["request_10k_rules_s"] = {
                        "median": statistics.median(times), "min": min(times),
                        "rounds": rounds, "times": times}
                    results["raw_p4runtime_writes_s"] = {
                        "median": statistics.median(raw_times), "entities": len(compiled),
                        "batch": 1000, "times": raw_times}
                    results["preencoded_writes_s"] = {
                        "median": statistics.median(preencoded_times),
                        "times": preencoded_times}
                    results["agent_overhead"] = median_ratio(times, raw_times) - 1
                    results["agent_overhead_over_preencoded"] = \
                        median_ratio(times, preencoded_times) - 1

                    # 2. single-rule updates of a 10-rule set
                    latencies = single_rule_updates(guest, updates)
                    results["single_rule_update_ms"] = {
                        "p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
                        "updates": updates, "rule_set": 10}
                    guest.withdraw(all_flows=True)
            finally:
                server.stop(None)
                agent.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_agent",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="embedded", choices=["embedded", "bmv2"])
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-pin", action="store_true",
                        help="leave the target and this process unpinned")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    pinned = not args.no_pin and (os.cpu_count() or 1) >= 2
    results = run(args.target, args.updates, args.rounds, pinned)
    r = results
    print(f"offload path on the {r['target']} target")
    print(f"  10,000-rule request, guest shim to installed: "
          f"{r['request_10k_rules_s']['median']:.2f} s median of {args.rounds}")
    print(f"  single-rule update (10-rule set): p50 {r['single_rule_update_ms']['p50']:.1f} ms, "
          f"p99 {r['single_rule_update_ms']['p99']:.1f} ms over {args.updates}")
    print(f"  raw P4Runtime writes of the same {r['raw_p4runtime_writes_s']['entities']} "
          f"entities: {r['raw_p4runtime_writes_s']['median']:.2f} s; agent overhead "
          f"{r['agent_overhead'] * 100:.0f}%")
    print(f"  the writes alone (encoded beforehand): "
          f"{r['preencoded_writes_s']['median']:.2f} s; agent "
          f"{r['agent_overhead_over_preencoded'] * 100:+.0f}% over them")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
