"""Benchmark (e): resident memory of a target holding a big conntrack table.

A fresh target process is started with no program, its RSS read (idle), the
pipeline pushed over P4Runtime (which allocates every register cell, zeroed),
and its RSS read again: once with the committed 65,536-slot program, once with
its committed ``large`` variant (``pyoffload/pipeline/build/large``: 1,048,576 hash slots
and 16,384 overflow slots).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pyoffload.memory import resident_kib
from pyoffload.p4runtime import P4RuntimeClient
from pyoffload.pipeline import names
from pyoffload.pipeline.artifacts import Artifacts
from pyoffload.targets import start_target


def rss_mib(pid: int) -> float:
    return resident_kib(pid) / 1024


def settled_rss_mib(pid: int, timeout: float = 15.0) -> float:
    """A process's RSS once it stops moving: two reads 0.5 s apart within 0.2 MiB (or the
    last read after ``timeout``)."""
    deadline = time.monotonic() + timeout
    last = rss_mib(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = rss_mib(pid)
        if abs(now - last) < 0.2:
            return now
        last = now
    return last


def target_rss(kind: str, json_path: Path, p4info: Path, workdir: Path) -> dict[str, int]:
    """RSS (KiB) of a fresh target idle, then with the pipeline loaded."""
    with start_target(kind, {}, output=workdir / f"mem-{kind}-{json_path.parent.name}.log") \
            as target:
        idle = resident_kib(target.process.pid)
        with P4RuntimeClient(target.grpc_address, device_id=target.device_id) as client:
            client.set_pipeline(p4info, json_path)
            loaded = resident_kib(target.process.pid)
    return {"idle_kib": idle, "loaded_kib": loaded, "delta_kib": loaded - idle}


def run(artifacts: Artifacts, kinds: list[str], workdir: Path) -> dict[str, object]:
    large = Artifacts.packaged("large")
    slots = next(r["size"] for r in json.loads(large.bmv2_json.read_text())["register_arrays"]
                 if r["name"] == names.CT_INFO)
    result: dict[str, object] = {"method": "target RSS after pipeline push minus idle",
                                 "ct_cells_large": slots}
    for kind in kinds:
        result[kind] = {
            "ct_slots_65536": target_rss(kind, artifacts.bmv2_json, artifacts.p4info, workdir),
            "ct_slots_1048576": target_rss(kind, large.bmv2_json, large.p4info, workdir),
        }
    return result


def report(result: dict[str, object]) -> list[str]:
    lines = [f"(e) memory: {result['method']}"]
    for kind, value in result.items():
        if isinstance(value, dict):
            for variant, r in value.items():
                lines.append(f"    {kind:9} {variant:18} idle {r['idle_kib'] / 1024:7.1f} MiB, "
                             f"loaded {r['loaded_kib'] / 1024:7.1f} MiB, "
                             f"delta {r['delta_kib'] / 1024:7.1f} MiB")
    return lines
