"""Whether the committed pipeline artifacts match the P4 sources (checkout only).

The stamp in each build directory records the sha256 of every P4 source and
of every output, and the compiler that produced them. Checking it needs no
compiler, so every checkout can tell stale artifacts apart; an installed
pyoffload has no sources and does not check.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path

from pyoffload.pipeline.artifacts import ArtifactError, Artifacts, build_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
P4SRC_DIR = REPO_ROOT / "p4src"
MAIN_SOURCE = "vnic.p4"
REBUILD_COMMAND = "scripts/build-p4"

_CONST_RE = re.compile(
    r"^\s*const\s+(?:bit<\d+>|port_t|vnic_id_t|flow_id_t)\s+([A-Z][A-Z0-9_]*)\s*=\s*"
    r"(0x[0-9a-fA-F]+|\d+)\s*;",
    re.MULTILINE,
)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def source_files(p4src: Path = P4SRC_DIR) -> list[Path]:
    """Every P4 source of the pipeline."""
    return sorted(p4src.rglob("*.p4"))


def source_digests(p4src: Path = P4SRC_DIR) -> dict[str, str]:
    return {p.relative_to(p4src).as_posix(): sha256_file(p) for p in source_files(p4src)}


def parse_constants(defines_text: str) -> dict[str, int]:
    """The ``const`` values of ``defines.p4`` (the numbers the control plane shares)."""
    return {name: int(value, 0) for name, value in _CONST_RE.findall(defines_text)}


def stale_reasons(p4src: Path = P4SRC_DIR, artifacts: Artifacts | None = None) -> list[str]:
    """Why the committed artifacts do not match the sources; empty when they do."""
    artifacts = artifacts or Artifacts.in_dir(build_dir())
    if not artifacts.stamp.exists():
        return [f"{artifacts.stamp} is missing"]
    stamp = json.loads(artifacts.stamp.read_text())
    reasons: list[str] = []
    recorded: Mapping[str, str] = stamp.get("sources", {})
    current = source_digests(p4src)
    for name in sorted(set(recorded) | set(current)):
        if name not in current:
            reasons.append(f"source {name} was removed")
        elif name not in recorded:
            reasons.append(f"source {name} is new")
        elif recorded[name] != current[name]:
            reasons.append(f"source {name} changed")
    for name, path in artifacts.outputs().items():
        if not path.exists():
            reasons.append(f"output {name} is missing")
        elif stamp.get("outputs", {}).get(name) != sha256_file(path):
            reasons.append(f"output {name} differs from the one the stamp records")
    return reasons


def check_fresh(p4src: Path = P4SRC_DIR, artifacts: Artifacts | None = None) -> Artifacts:
    """The committed artifacts, or an error that says how to regenerate them."""
    artifacts = artifacts or Artifacts.in_dir(build_dir())
    reasons = stale_reasons(p4src, artifacts)
    if reasons:
        raise ArtifactError(
            "pyoffload/pipeline/build does not match the P4 sources ("
            + "; ".join(reasons)
            + f"). Run `{REBUILD_COMMAND}` with p4c installed and commit the build."
        )
    return artifacts
