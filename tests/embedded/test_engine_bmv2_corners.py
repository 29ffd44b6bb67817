"""The engine in-process against BMv2's recorded outputs for the corner programs
(header-union stacks, invalid headers read, frames of 0..15 bytes); the same
recordings `tests/interop/test_differential_programs.py` checks the embedded target
and BMv2 against over P4Runtime."""

from __future__ import annotations

import json

import pytest

from pyoffload.embedded.engine import Pipeline, PipelineLoadError
from tests.interop.test_differential_programs import CPU_PORT, PROGRAMS, PROGRAMS_DIR, recorded


def load(program: str) -> Pipeline:
    return Pipeline.load((PROGRAMS_DIR / f"{program}.json").read_text(), seed=1)


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_engine_replays_bmv2_recording(program: str) -> None:
    pipe = load(program)
    frames = PROGRAMS[program]()
    want = recorded(program)
    for i, frame in enumerate(frames):
        got = sorted(out.hex() for port, out in pipe.process(CPU_PORT, frame).outputs
                     if port == CPU_PORT)
        assert got == want[i], f"frame {i} ({frame.hex() or 'empty'})"


def test_invalid_header_keeps_an_earlier_packets_bits() -> None:
    """BMv2 recycles PHVs: x.a read by a packet without x is the previous packet's."""
    pipe = load("invalid_read")
    eth = bytes(6) + bytes(6)
    pipe.process(CPU_PORT, eth + b"\x10\x01" + b"\x42\x00\x07")  # extracts x = (0x42, 7)
    out = pipe.process(CPU_PORT, eth + b"\x00\x00").outputs  # no x
    assert out[0][1][0] == 0x42  # report.xa
    # setInvalid then setValid zeroes it (op 2 in the source MAC's last byte)
    out = pipe.process(CPU_PORT, bytes(6) + bytes(5) + b"\x02" + b"\x10\x01\x42\x00\x07").outputs
    assert out[0][1][0] == 0


def test_union_stack_push_front_rotates() -> None:
    """BMv2's push_front on a header-union stack marks nothing invalid: a full stack
    rotates (the last union comes round to the front, still valid)."""
    pipe = load("union_stack")
    frame = bytes(5) + b"\x05" + bytes(6) + b"\x88\xb6" + b"\x0a\x01\x0a\x02\x0a\x03"
    out = pipe.process(CPU_PORT, frame).outputs[0][1]
    assert out[-6:] == b"\x0a\x01\x0a\x02\x0a\x03"  # op 5 does nothing: parsed order
    frame = bytes(5) + b"\x02" + bytes(6) + b"\x88\xb6" + b"\x0a\x01\x0a\x02\x0a\x03"
    out = pipe.process(CPU_PORT, frame).outputs[0][1]
    # op 2: push_front(1) then u[0].b set valid (u[0].a, rotated in from u[2], goes)
    assert out[-8:] == b"\x0b\x00\xbe\xef\x0a\x01\x0a\x02"


def test_union_stack_select_on_last_is_refused_as_by_bmv2() -> None:
    """p4c writes `select(u.last.a.v)` as a field of a header named `u`, which BMv2
    refuses to load; so does the engine."""
    cfg = json.loads((PROGRAMS_DIR / "union_stack.json").read_text())
    state = cfg["parsers"][0]["parse_states"][2]
    state["transition_key"] = [{"type": "field", "value": ["u", "a.v"]}]
    with pytest.raises(PipelineLoadError, match="'u'"):
        Pipeline.load(cfg)
