"""Benchmark (d): P4Runtime write rate and latency over a warm connection.

A target with no ports gets the pipeline and the demo VNIC; then ACL entries
are inserted in batches of 1,000 (entries per second over the whole run,
encoding done beforehand), and single-entry inserts are timed one by one
(p50/p99 over 1,000 writes). All entries go to ``vnic.acl`` (16,384 slots).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from finsy import P4TableAction, P4TableEntry, P4TableMatch
from finsy.proto import p4r

from benchmarks.bench_entries import VNIC, vnic_entities
from pyoffload.p4runtime import P4RuntimeClient, UpdateType
from pyoffload.pipeline import names
from pyoffload.pipeline.artifacts import Artifacts, load_constants
from pyoffload.targets import start_target

BATCH = 1000


def _rule(i: int) -> P4TableEntry:
    """A distinct ACL rule (by source port) the benchmark traffic never matches."""
    return P4TableEntry(
        names.ACL,
        match=P4TableMatch(vnic_id=VNIC, flow_id=1, protocol="6/&255",
                           src_port=f"{i}...{i}", dst_port="1...1"),
        action=P4TableAction("vnic.acl_deny"), priority=5000 + i)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_one(kind: str, artifacts: Artifacts, workdir: Path, *, batches: int = 10,
            singles: int = 1000) -> dict[str, object]:
    const = load_constants()
    with start_target(kind, {}, output=workdir / f"p4rt-{kind}.log") as target, \
            P4RuntimeClient(target.grpc_address, device_id=target.device_id) as client:
        schema = client.set_pipeline(artifacts.p4info, artifacts.bmv2_json)
        client.write_entities(UpdateType.INSERT, [e.encode(schema) for e in
                                                  vnic_entities(const, rules=0)])
        updates = [p4r.Update(type=p4r.Update.INSERT, entity=_rule(i).encode(schema))
                   for i in range(batches * BATCH + singles)]
        client.write(updates[:10])  # warm: first write paths, caches
        for u in updates[:10]:
            u.type = p4r.Update.DELETE
        client.write(updates[:10])
        for u in updates[:10]:
            u.type = p4r.Update.INSERT
        batch_s: list[float] = []
        start = time.perf_counter()
        for b in range(batches):
            t = time.perf_counter()
            client.write(updates[b * BATCH:(b + 1) * BATCH])
            batch_s.append(time.perf_counter() - t)
        total = time.perf_counter() - start
        single_s: list[float] = []
        for u in updates[batches * BATCH:]:
            t = time.perf_counter()
            client.write([u])
            single_s.append(time.perf_counter() - t)
    return {
        "target": kind,
        "batch_size": BATCH,
        "batches": batches,
        "entries_per_second": round(batches * BATCH / total, 1),
        "batch_ms_median": round(statistics.median(batch_s) * 1000, 2),
        "single_insert_ms_p50": round(percentile(single_s, 0.50) * 1000, 3),
        "single_insert_ms_p99": round(percentile(single_s, 0.99) * 1000, 3),
        "single_inserts": len(single_s),
    }


def report(results: list[dict[str, object]]) -> list[str]:
    lines = ["(d) P4Runtime writes to vnic.acl over a warm connection"]
    for r in results:
        lines.append(
            f"    {r['target']:9} batches of {r['batch_size']}: {r['entries_per_second']:>10,} "
            f"entries/s (median batch {r['batch_ms_median']} ms); single insert "
            f"p50 {r['single_insert_ms_p50']} ms, p99 {r['single_insert_ms_p99']} ms "
            f"over {r['single_inserts']}")
    return lines
