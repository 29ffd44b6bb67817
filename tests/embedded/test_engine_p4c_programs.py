"""Our v1model test programs: the committed p4c outputs load in the engine, and are current.

The JSON and P4Info next to each `X.p4` are p4c-bm2-ss outputs. Where p4c is
installed, each program is compiled again (from the programs directory, with a
relative name, as the README says) and must equal the committed files byte for
byte; elsewhere that check is skipped and only the committed JSON is loaded.
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


def test_every_program_is_compiled() -> None:
    assert SOURCES
    missing = [
        p.name
        for src in SOURCES
        for p in (src.with_suffix(".json"), src.with_suffix(".p4info.txtpb"))
        if not p.exists()
    ]
    assert missing == [], "compile with p4c-bm2-ss and commit the outputs (see README.md)"
    strays = sorted(j.name for j in PROGRAMS.glob("*.json") if not j.with_suffix(".p4").exists())
    assert strays == [], "JSON without its P4 source"


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_committed_json_loads(src: Path) -> None:
    Pipeline.load(src.with_suffix(".json").read_text())


@pytest.mark.p4c
@pytest.mark.skipif(P4C is None, reason="p4c-bm2-ss not installed: committed outputs not rechecked")
@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_committed_outputs_equal_a_fresh_compile(src: Path, tmp_path: Path) -> None:
    assert P4C is not None
    out = tmp_path / f"{src.stem}.json"
    info = tmp_path / f"{src.stem}.p4info.txtpb"
    proc = subprocess.run(
        [P4C, "--arch", "v1model", "--std", "p4-16", "-o", str(out),
         "--p4runtime-files", str(info), src.name],
        cwd=PROGRAMS,
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == src.with_suffix(".json").read_text(), f"{src.stem}.json is stale"
    assert info.read_text() == src.with_suffix(".p4info.txtpb").read_text(), (
        f"{src.stem}.p4info.txtpb is stale"
    )
    Pipeline.load(out.read_text())
