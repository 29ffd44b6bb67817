"""Benchmark (e): resident memory of a target holding a big conntrack table.

The program is compiled again with ``-DCT_SLOTS=1048576`` into a temporary
directory (needs ``p4c-bm2-ss``); a fresh target process is started with no
program, its RSS read (idle), the pipeline pushed over P4Runtime (which
allocates every register cell, zeroed), and its RSS read again. The same is
done with the committed 65,536-slot program for scale. Without p4c, the
engine's register storage for 1,048,576 slots is measured in this process
instead (tracemalloc), and the report says so.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import tracemalloc
from pathlib import Path

from bmv2_env.targets import start_target
from pyoffload.p4artifacts import P4SRC_DIR, Artifacts
from pyoffload.p4runtime import P4RuntimeClient

BIG_SLOTS = 1_048_576


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def compile_variant(out_dir: Path, slots: int) -> tuple[Path, Path] | None:
    """(BMv2 JSON, P4Info) of the program with CT_SLOTS=slots, or None without p4c."""
    p4c = shutil.which("p4c-bm2-ss")
    if p4c is None:
        return None
    json_path, p4info = out_dir / "vnic.json", out_dir / "vnic.p4info.txtpb"
    subprocess.run([p4c, "--arch", "v1model", "--std", "p4-16", f"-DCT_SLOTS={slots}",
                    "-o", str(json_path), "--p4runtime-files", str(p4info),
                    str(P4SRC_DIR / "vnic.p4")], check=True, capture_output=True, timeout=600)
    return json_path, p4info


def target_rss(kind: str, json_path: Path, p4info: Path, workdir: Path) -> dict[str, int]:
    """RSS (KiB) of a fresh target idle, then with the pipeline loaded."""
    with start_target(kind, {}, output=workdir / f"mem-{kind}-{json_path.parent.name}.log") \
            as target:
        idle = rss_kib(target.process.pid)
        with P4RuntimeClient(target.grpc_address, device_id=target.device_id) as client:
            client.set_pipeline(p4info, json_path)
            loaded = rss_kib(target.process.pid)
    return {"idle_kib": idle, "loaded_kib": loaded, "delta_kib": loaded - idle}


def engine_register_bytes(json_text: str) -> int:
    """Bytes the engine allocates while loading ``json_text`` (this process)."""
    from pyoffload.embedded.engine import Pipeline
    tracemalloc.start()
    try:
        pipe = Pipeline.load(json_text)
        size, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del pipe
    return size


def run(artifacts: Artifacts, kinds: list[str], workdir: Path) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="pyoffload-bench-mem-") as tmp:
        big_dir = Path(tmp) / f"ct{BIG_SLOTS}"
        big_dir.mkdir()
        compiled = compile_variant(big_dir, BIG_SLOTS)
        if compiled is None:
            return {"method": "engine register storage (tracemalloc); p4c not installed",
                    "ct_slots": 65536,
                    "bytes": engine_register_bytes(artifacts.bmv2_json.read_text())}
        result: dict[str, object] = {"method": "target RSS after pipeline push minus idle",
                                     "ct_slots_big": BIG_SLOTS}
        for kind in kinds:
            result[kind] = {
                "ct_slots_65536": target_rss(kind, artifacts.bmv2_json, artifacts.p4info,
                                             workdir),
                f"ct_slots_{BIG_SLOTS}": target_rss(kind, *compiled, workdir),
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
    if "bytes" in result:
        lines.append(f"    engine allocations for the 65,536-slot program: "
                     f"{int(str(result['bytes'])) / 2**20:.1f} MiB")
    return lines
