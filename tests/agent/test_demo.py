"""``pyoffload demo``, the README's main job, as a real subprocess on each target."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyoffload.targets import bmv2_path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the demo needs root for namespaces")

TARGETS = [
    pytest.param([], "embedded", id="default-embedded"),
    pytest.param(["--target", "bmv2"], "bmv2", id="bmv2", marks=pytest.mark.skipif(
        bmv2_path() is None, reason="BMv2 (simple_switch_grpc) is not installed")),
]


@pytest.mark.parametrize(("options", "target"), TARGETS)
def test_demo_traffic_behaves_as_the_rules_say(options: list[str], target: str) -> None:
    result = subprocess.run([str(BIN / "pyoffload"), "demo", *options],
                            capture_output=True, text=True, timeout=180, cwd=REPO)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert f"pyoffload demo: {target} target" in out
    assert "generation 1 applied" in out
    checks = [line for line in out.splitlines() if line.strip().startswith("[ok ]")]
    assert len(checks) == 5, out
    assert "UNEXPECTED" not in out
    assert "tracked connection(s)" in out
    assert out.rstrip().endswith("demo: all traffic behaved as the rules say")

