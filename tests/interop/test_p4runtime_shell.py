"""Interoperability with the upstream P4Runtime shell (p4lang/p4runtime-shell).

An operator's first tool against a P4Runtime target is often the shell; our
embedded target must work with it unchanged. The shell runs in a venv of its
own (it pins an old protobuf) and drives the target through its public API;
the steps it runs are in ``p4rt_shell_client.py``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyoffload.pipeline.artifacts import Artifacts
from pyoffload.targets import RunningTarget, TargetUnavailable, start_target
from tests.interop.shell_venv import ShellVenvUnavailable, ensure_shell_venv

CLIENT = Path(__file__).with_name("p4rt_shell_client.py")


@pytest.fixture(scope="session")
def shell_python() -> Path:
    try:
        return ensure_shell_venv()
    except ShellVenvUnavailable as exc:
        pytest.skip(f"p4runtime-shell venv unavailable: {exc}")


@pytest.fixture(scope="session")
def artifacts() -> Artifacts:
    return Artifacts.packaged()


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[RunningTarget]:
    """The embedded target with no ports: the shell only talks P4Runtime."""
    try:
        target = start_target("embedded", {}, output=tmp_path / "target.log")
    except TargetUnavailable as exc:
        pytest.fail(f"embedded target did not start: {exc}")
    with target:
        yield target


def test_shell_drives_embedded_target(
    shell_python: Path, artifacts: Artifacts, embedded: RunningTarget
) -> None:
    run = subprocess.run(
        [str(shell_python), str(CLIENT), embedded.grpc_address, str(embedded.device_id),
         str(artifacts.p4info), str(artifacts.bmv2_json)],
        capture_output=True, text=True, timeout=90,
    )
    assert run.returncode == 0, f"shell client crashed:\n{run.stderr[-3000:]}"
    report = json.loads(run.stdout.splitlines()[-1])
    failed = [f"{s['step']}: {s['detail']}\n{s.get('trace', '')}" for s in report if not s["ok"]]
    assert not failed, (
        "p4runtime-shell steps failed:\n" + "\n".join(failed)
        + f"\n--- target output ---\n{embedded.output_tail(40)}"
    )
    assert len(report) == 13, [s["step"] for s in report]
