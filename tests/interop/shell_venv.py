"""A virtual environment holding the upstream p4runtime-shell, apart from ours.

p4runtime-shell pins protobuf < 3.21 and an old p4runtime package, which must
never enter pyoffload's own environment; so it lives in a venv of its own,
built once per shell version under the user's cache directory and reused by
later runs. The venv is built in a temporary sibling and renamed into place,
so an interrupted build never leaves a half-made venv that looks ready.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SHELL_VERSION = "0.0.6"
PIP_TIMEOUT_S = 300


class ShellVenvUnavailable(Exception):
    """The venv cannot be created here (no PyPI, no venv module...): the reason."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pyoffload"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _base_python() -> str:
    """The interpreter our venv was made from (a venv of a venv still works)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def ensure_shell_venv(version: str = SHELL_VERSION, root: Path | None = None) -> Path:
    """The python of a venv with ``p4runtime-shell==version``, built if missing."""
    root = root or cache_root()
    venv = root / f"p4rt-shell-venv-{version}"
    python = venv_python(venv)
    if python.exists():
        return python
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".p4rt-shell-{version}-", dir=root))
    try:
        building = work / "venv"
        made = subprocess.run([_base_python(), "-m", "venv", str(building)],
                              capture_output=True, text=True, timeout=120)
        if made.returncode != 0:
            raise ShellVenvUnavailable(f"python -m venv failed: {made.stderr.strip()[-500:]}")
        try:
            pip = subprocess.run(
                [str(venv_python(building)), "-m", "pip", "install", "--quiet",
                 "--disable-pip-version-check", f"p4runtime-shell=={version}"],
                capture_output=True, text=True, timeout=PIP_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            raise ShellVenvUnavailable(
                f"pip install p4runtime-shell=={version} took over {PIP_TIMEOUT_S} s "
                "(no network to PyPI?)") from None
        if pip.returncode != 0:
            raise ShellVenvUnavailable(
                f"pip install p4runtime-shell=={version} failed (no network to PyPI?): "
                f"{pip.stderr.strip()[-500:]}")
        # The venv's scripts record their own path; they work after a rename
        # because we only ever run `bin/python`, never the entry-point scripts.
        try:
            building.rename(venv)
        except OSError:
            if not python.exists():  # someone else finished first: use theirs
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return python
