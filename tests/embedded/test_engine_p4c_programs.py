"""The engine's own v1model programs: they must compile with p4c and load in the engine.

Skipped where p4c is not installed (CI); there the committed JSON, if any, is loaded.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pyoffload.embedded.engine import Pipeline

PROGRAMS = Path(__file__).parent / "programs"
SOURCES = sorted(PROGRAMS.glob("*.p4"))
P4C = shutil.which("p4c-bm2-ss")


@pytest.mark.p4c
@pytest.mark.skipif(P4C is None, reason="p4c-bm2-ss not installed")
@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_program_compiles_and_loads(src: Path, tmp_path: Path) -> None:
    assert P4C is not None
    out = tmp_path / f"{src.stem}.json"
    info = tmp_path / f"{src.stem}.p4info.txtpb"
    proc = subprocess.run(
        [P4C, "--p4runtime-files", str(info), "-o", str(out), str(src)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    Pipeline.load(out.read_text())


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_committed_json_loads(src: Path) -> None:
    compiled = src.with_suffix(".json")
    if not compiled.exists():
        pytest.skip(f"{compiled.name} not compiled yet (needs p4c)")
    Pipeline.load(compiled.read_text())
