"""A real embedded target (P4Runtime server in its own process) for agent tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bmv2_env.targets import RunningTarget, start_target


@pytest.fixture
def target(tmp_path: Path) -> Iterator[RunningTarget]:
    with start_target("embedded", {}, output=tmp_path / "target.log") as running:
        yield running
