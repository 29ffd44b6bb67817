"""The shim installs on its own (pip, a fresh venv) and its CLI runs from there."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_pip_install_alone(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    # A copy, so the build writes nothing into the checkout.
    source = tmp_path / "guest_shim"
    shutil.copytree(ROOT / "guest_shim", source, ignore=shutil.ignore_patterns("*.egg-info"))
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert pip.returncode == 0, pip.stderr
    freeze = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "freeze"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.lower()
    assert "pyoffload-guest-shim" in freeze and "pyoffload==" not in freeze
    assert "attrs" not in freeze and "finsy" not in freeze
    shim = venv / "bin" / "guest-shim"
    done = subprocess.run(
        [str(shim), "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "apply" in done.stdout and "watch" in done.stdout
    check = subprocess.run(
        [str(shim), "apply", "--check", str(ROOT / "pyoffload" / "examples" / "snat.yaml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stderr
