"""The packages as users get them: both wheels built from this checkout, installed
into a new virtual environment, and run from a directory outside the checkout.

An installed pyoffload must find its compiled pipeline and example rule files as
package data, never through the source tree, and must not ship the lab
(benchmarks, PTF tests, dev tools) as packages of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import guest_shim
import pyoffload

REPO = Path(__file__).resolve().parent.parent


def _run(argv: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels and sdists of pyoffload and the guest shim (no build isolation: the
    build backend comes from the test environment, so no download is needed)."""
    out = tmp_path_factory.mktemp("dist")
    # Built from a copy: setuptools leaves build/ and *.egg-info beside the sources.
    source = tmp_path_factory.mktemp("source") / "pyoffload"
    scratch = shutil.ignore_patterns(".git", ".venv", "*.egg-info", "__pycache__", ".*_cache")

    def ignore(directory: str, names: list[str]) -> set[str]:
        top = Path(directory) in (REPO, REPO / "guest_shim")  # not pyoffload/pipeline/build
        return set(scratch(directory, names)) | ({"build", "dist"} & set(names) if top else set())

    shutil.copytree(REPO, source, ignore=ignore)
    for project in (source / "guest_shim", source):
        result = _run([sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel",
                       "--outdir", str(out), str(project)], cwd=out)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A new virtual environment with both wheels (and their dependencies) installed."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True)
    wheels = sorted(str(w) for w in dist.glob("*.whl"))
    result = _run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", *wheels],
                  cwd=env_dir)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    yield env_dir / "bin"


def test_both_projects_make_a_wheel_and_an_sdist(dist: Path) -> None:
    names = sorted(p.name for p in dist.iterdir())
    version = pyoffload.__version__
    assert f"pyoffload-{version}-py3-none-any.whl" in names
    assert f"pyoffload-{version}.tar.gz" in names
    shim = guest_shim.__version__
    assert f"pyoffload_guest_shim-{shim}-py3-none-any.whl" in names
    assert f"pyoffload_guest_shim-{shim}.tar.gz" in names


def test_the_wheel_ships_the_product_and_not_the_lab(dist: Path) -> None:
    wheel = next(dist.glob("pyoffload-*.whl"))
    files = set(zipfile.ZipFile(wheel).namelist())
    for variant in ("", "large/"):
        for name in ("vnic.json", "vnic.p4info.txtpb", "vnic.constants.json", "stamp.json"):
            assert f"pyoffload/pipeline/build/{variant}{name}" in files
    for example in ("demo.yaml", "snat.yaml", "load-balancer.json", "README.md"):
        assert f"pyoffload/examples/{example}" in files
    assert "pyoffload/py.typed" in files
    top = {name.split("/")[0] for name in files if not name.startswith("pyoffload-")}
    assert top == {"pyoffload"}, f"the wheel installs more than pyoffload: {sorted(top)}"


def test_installed_commands_run_outside_the_checkout(installed: Path, tmp_path: Path) -> None:
    version = _run([str(installed / "pyoffload"), "--version"], cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"pyoffload {pyoffload.__version__}"
    shim = _run([str(installed / "guest-shim"), "--version"], cwd=tmp_path)
    assert shim.stdout.strip() == f"guest-shim {guest_shim.__version__}", shim.stderr
    for command in ("pyoffload-target", "guest-shim"):
        result = _run([str(installed / command), "--help"], cwd=tmp_path)
        assert result.returncode == 0, f"{command} --help: {result.stderr}"
        assert "usage" in result.stdout.lower()
    where = _run([str(installed / "python"), "-c",
                  "import pyoffload, sys; "
                  "from pyoffload.pipeline.artifacts import Artifacts; "
                  "from pyoffload.examples import example_path; "
                  "print(pyoffload.__file__); print(Artifacts.packaged('large').p4info); "
                  "print(example_path('demo.yaml'))"], cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    for line in where.stdout.splitlines():
        assert str(REPO) not in line, f"the installed package reads the checkout: {line}"
        assert "site-packages" in line


@pytest.mark.netns
@pytest.mark.skipif(os.geteuid() != 0, reason="the demo needs root (network namespaces)")
def test_installed_demo_runs_outside_the_checkout(installed: Path, tmp_path: Path) -> None:
    result = _run([str(installed / "pyoffload"), "demo"], cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "embedded target" in result.stdout
    assert "demo: all traffic behaved as the rules say" in result.stdout
    assert str(REPO) not in result.stdout
