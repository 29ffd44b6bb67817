"""Matching a P4Info to its BMv2 JSON (`p4runtime/config_match.py`): p4c's own pairs
are accepted even where the JSON lacks objects; pairs that really differ are not."""

from __future__ import annotations

from pathlib import Path

import pytest
from finsy.proto import p4i

from pyoffload.embedded.engine import Pipeline
from pyoffload.embedded.p4runtime.config_match import Absent, match_config
from pyoffload.embedded.p4runtime.errors import StatusError
from pyoffload.embedded.p4runtime.p4info import P4InfoIndex
from pyoffload.embedded.p4runtime.testing import load_program

PROGRAMS = Path(__file__).parent / "programs"
SOURCES = sorted(p.stem for p in PROGRAMS.glob("*.p4"))


def pair(name: str) -> tuple[p4i.P4Info, Pipeline]:
    info, device_config = load_program(PROGRAMS, name)
    return info, Pipeline.load(device_config.decode())


@pytest.mark.parametrize("name", SOURCES)
def test_every_program_of_ours_matches(name: str) -> None:
    info, pipe = pair(name)
    index = P4InfoIndex(info)
    dead = "MyIngress.dead"
    expected = {index.names[dead]: Absent("table", dead)} if name == "nested_switch" else {}
    assert match_config(index, pipe.state) == expected


def test_a_renamed_table_is_refused() -> None:
    info, pipe = pair("srv_switch")
    info.tables[0].preamble.name = "NoSuch.table"
    with pytest.raises(StatusError, match="that the P4Info does not name"):
        match_config(P4InfoIndex(info), pipe.state)


def test_a_key_of_another_width_is_refused() -> None:
    info, pipe = pair("nested_switch")
    outer = next(t for t in info.tables if t.preamble.name == "MyIngress.outer")
    outer.match_fields[0].bitwidth = 16
    with pytest.raises(StatusError, match=r"key field 'hdr\.req\.op' is exact bit<16>"):
        match_config(P4InfoIndex(info), pipe.state)


def test_a_register_of_another_size_is_refused() -> None:
    info, pipe = pair("externs")
    info.registers[0].size += 1
    with pytest.raises(StatusError, match="cells"):
        match_config(P4InfoIndex(info), pipe.state)
