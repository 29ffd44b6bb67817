"""Where the compiled VNIC pipeline lives, and whether it matches its sources.

The P4 program is the single source of truth. Its compiled form (BMv2 JSON,
P4Info in text format, and the constants of ``include/defines.p4``) is
committed under ``p4src/build/`` together with a stamp: the sha256 of every P4
source and of every output, and the compiler that produced them. Checking the
stamp needs no compiler, so every machine can tell stale artifacts apart.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path

import attrs

REPO_ROOT = Path(__file__).resolve().parent.parent
P4SRC_DIR = REPO_ROOT / "p4src"
BUILD_DIR = P4SRC_DIR / "build"
MAIN_SOURCE = "vnic.p4"
JSON_NAME = "vnic.json"
P4INFO_NAME = "vnic.p4info.txtpb"
CONSTANTS_NAME = "vnic.constants.json"
STAMP_NAME = "stamp.json"
REBUILD_COMMAND = "scripts/build-p4"
VARIANTS: dict[str, tuple[str, ...]] = {
    "large": ("-DCT_SLOTS=1048576", "-DCT_OVERFLOW_SLOTS=16384"),
}
"""The same program compiled with other capacities (``include/sizes.p4``), each in
``build/<name>/`` with its own stamp: ``large`` tracks a million connections."""
LARGE_DIR = BUILD_DIR / "large"

_CONST_RE = re.compile(
    r"^\s*const\s+(?:bit<\d+>|port_t|vnic_id_t|flow_id_t)\s+([A-Z][A-Z0-9_]*)\s*=\s*"
    r"(0x[0-9a-fA-F]+|\d+)\s*;",
    re.MULTILINE,
)


class ArtifactError(Exception):
    """The compiled pipeline is missing or does not match its sources."""


@attrs.frozen(kw_only=True)
class Artifacts:
    """Paths of one compiled pipeline."""

    bmv2_json: Path
    p4info: Path
    constants: Path
    stamp: Path

    @classmethod
    def in_dir(cls, build_dir: Path = BUILD_DIR) -> Artifacts:
        return cls(
            bmv2_json=build_dir / JSON_NAME,
            p4info=build_dir / P4INFO_NAME,
            constants=build_dir / CONSTANTS_NAME,
            stamp=build_dir / STAMP_NAME,
        )

    def outputs(self) -> dict[str, Path]:
        return {p.name: p for p in (self.bmv2_json, self.p4info, self.constants)}


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def source_files(p4src: Path = P4SRC_DIR) -> list[Path]:
    """Every P4 source of the pipeline (the build directory excluded)."""
    build = p4src / "build"
    return sorted(p for p in p4src.rglob("*.p4") if build not in p.parents)


def source_digests(p4src: Path = P4SRC_DIR) -> dict[str, str]:
    return {p.relative_to(p4src).as_posix(): sha256_file(p) for p in source_files(p4src)}


def parse_constants(defines_text: str) -> dict[str, int]:
    """The ``const`` values of ``defines.p4`` (the numbers the control plane shares)."""
    return {name: int(value, 0) for name, value in _CONST_RE.findall(defines_text)}


def stale_reasons(p4src: Path = P4SRC_DIR, artifacts: Artifacts | None = None) -> list[str]:
    """Why the committed artifacts do not match the sources; empty when they do."""
    artifacts = artifacts or Artifacts.in_dir(p4src / "build")
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


def check_fresh(p4src: Path = P4SRC_DIR, variant: str = "") -> Artifacts:
    """The committed artifacts (of a variant), or an error that says how to regenerate them."""
    artifacts = Artifacts.in_dir(p4src / "build" / variant)
    reasons = stale_reasons(p4src, artifacts)
    if reasons:
        raise ArtifactError(
            "p4src/build does not match the P4 sources ("
            + "; ".join(reasons)
            + f"). Run `{REBUILD_COMMAND}` with p4c installed and commit p4src/build."
        )
    return artifacts


def load_constants(artifacts: Artifacts | None = None) -> dict[str, int]:
    """The pipeline's constants (verdicts, states, reasons) as compiled."""
    artifacts = artifacts or Artifacts.in_dir()
    data: dict[str, int] = json.loads(artifacts.constants.read_text())
    return data
