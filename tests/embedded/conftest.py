"""Shared fixtures of the P4Runtime server tests: the srv_switch program and a
running target (switch + server + an arbitrated primary client) with it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from finsy.proto import p4i

from pyoffload.embedded.p4runtime.testing import Target, load_program, running_target

PROGRAMS = Path(__file__).parent / "programs"


@pytest.fixture
def srv_program() -> tuple[p4i.P4Info, bytes]:
    """The compiled tests/embedded/programs/srv_switch.p4 (P4Info, BMv2 JSON)."""
    return load_program(PROGRAMS, "srv_switch")


@pytest.fixture
def t(srv_program: tuple[p4i.P4Info, bytes]) -> Iterator[Target]:
    """A running target with srv_switch pushed and committed."""
    with running_target(*srv_program) as target:
        yield target
