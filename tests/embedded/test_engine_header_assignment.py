"""Whole-header assignment (hdr_assign.p4) and a P4Info/JSON pair p4c made unequal
(nested_switch.p4), run by the engine: the outputs written in program_inputs.py.

The same inputs go through BMv2 in tests/interop/test_program_differential.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pyoffload.embedded.engine import Exact, Pipeline
from pyoffload.embedded.engine.packet import Pkt
from tests.embedded.program_inputs import (
    HDR_ASSIGN,
    NESTED_SWITCH,
    NESTED_SWITCH_ENTRIES,
    Case,
)

PROGRAMS = Path(__file__).parent / "programs"


def load(name: str) -> Pipeline:
    return Pipeline.load((PROGRAMS / f"{name}.json").read_text(), seed=1)


@pytest.mark.parametrize("case", HDR_ASSIGN, ids=lambda c: c.name)
def test_header_assignment(case: Case) -> None:
    assert tuple(load("hdr_assign").process(1, case.frame).outputs) == case.expected


def test_an_invalid_source_keeps_the_destination_fields() -> None:
    """BMv2 only marks the destination invalid; its fields keep their values (which a
    read of the invalid header sees). Run the compiled action on a PHV made by hand."""
    pipe = load("hdr_assign")
    one = pipe.lay.headers["one"]
    f = list(pipe.lay.init)
    f[one.base:one.base + 3] = [1, 0xC1, 0xC2]  # valid, a = 0xc1, b = 0xc2
    action = next(a for a in pipe.actions.values() if a.name == "MyIngress.invalidate")
    action.fn(f, Pkt(f, b"", 0, []), ())  # one = src[2], which is invalid
    assert f[one.base:one.base + 3] == [0, 0xC1, 0xC2]


@pytest.mark.parametrize("case", NESTED_SWITCH, ids=lambda c: c.name)
def test_nested_switch(case: Case) -> None:
    pipe = load("nested_switch")
    for e in NESTED_SWITCH_ENTRIES:
        pipe.state.table(e.table).add([Exact(e.key)], e.action, list(e.args))
    assert tuple(pipe.process(1, case.frame).outputs) == case.expected


def test_nested_switch_json_lacks_the_dead_table() -> None:
    """The premise of the P4Runtime tests: p4c's mid end removed `dead` from the JSON."""
    names = load("nested_switch").state.names()["tables"]
    assert "MyIngress.outer" in names and "MyIngress.dead" not in names
    assert "MyIngress.dead" in (PROGRAMS / "nested_switch.p4info.txtpb").read_text()
