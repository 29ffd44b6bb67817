"""Benchmarks of the VNIC pipeline: ``python -m benchmarks.bench WHAT [--json FILE]``.

WHAT is one of ``pipeline`` (in-memory engine rate), ``wire`` (veth
throughput, embedded vs BMv2 side by side), ``p4runtime`` (write rate and
latency), ``memory`` (RSS with a 1,048,576-slot conntrack), ``connections``
(new connections per second on veths, side by side) or ``all``. Figures
are printed and, with ``--json``, written as one JSON object. BMv2 joins every
side-by-side figure when ``simple_switch_grpc`` is on PATH. Every loop is
bounded in count and time; traffic only flows on veths created here.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import bench_cps, bench_inmemory, bench_memory, bench_p4rt, bench_wire
from pyoffload.pipeline.artifacts import ArtifactError, Artifacts
from pyoffload.targets import bmv2_path

WHAT = ("pipeline", "wire", "p4runtime", "memory", "connections", "all")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=WHAT)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--connections", type=int, default=10_000,
                        help="pipeline: tracked connections (default 10,000)")
    parser.add_argument("--rules", type=int, default=1000, help="ACL rules (default 1,000)")
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="pipeline: time bound per loop; wire: window per round")
    parser.add_argument("--rounds", type=int, default=3, help="wire: A B rounds (default 3)")
    args = parser.parse_args(argv)
    try:
        artifacts = Artifacts.packaged()
    except ArtifactError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    kinds = ["embedded", "bmv2"] if bmv2_path() else ["embedded"]
    if len(kinds) == 1:
        print("bench: BMv2 simple_switch_grpc not on PATH; embedded target only", flush=True)
    chosen = WHAT[:-1] if args.what == "all" else (args.what,)
    figures: dict[str, object] = {"command": " ".join(sys.argv), "started": time.time(),
                                  "targets": kinds}
    with tempfile.TemporaryDirectory(prefix="pyoffload-bench-") as tmp:
        workdir = Path(tmp)
        for what in chosen:
            lines: list[str]
            if what == "pipeline":
                result = bench_inmemory.run(artifacts, connections=args.connections,
                                            rules=args.rules, max_seconds=args.seconds)
                lines = bench_inmemory.report(result)
                figures["pipeline"] = result
            elif what == "wire":
                result = bench_wire.run(artifacts, kinds, workdir, rounds=args.rounds,
                                        window=args.seconds, rules=args.rules)
                lines = bench_wire.report(result)
                figures["wire"] = result
            elif what == "p4runtime":
                results = [bench_p4rt.run_one(kind, artifacts, workdir) for kind in kinds]
                lines = bench_p4rt.report(results)
                figures["p4runtime"] = results
            elif what == "connections":
                result = bench_cps.run(kinds, workdir, rounds=args.rounds, window=args.seconds,
                                       rules=args.rules)
                lines = bench_cps.report(result)
                figures["connections"] = result
            else:
                result = bench_memory.run(artifacts, kinds, workdir)
                lines = bench_memory.report(result)
                figures["memory"] = result
            print("\n".join(lines), flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"bench: figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
