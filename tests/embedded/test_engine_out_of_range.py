"""Run-time indices beyond an object's size (issue 13, class 7).

BMv2 aborts the whole switch process on a header stack element or a register
cell a packet field points past (std::out_of_range). The engine keeps going and
does what API.md ("Out-of-range run-time indices") says, the same every time:
these tests pin it down. BMv2 cannot be compared here (it would crash).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from pyoffload.embedded.engine import Pipeline
from tests.embedded.program_inputs import ETH, ONE, PAYLOAD, SRC0, SRC1

PROGRAMS = Path(__file__).parent / "programs"


def load(name: str) -> Pipeline:
    return Pipeline.load((PROGRAMS / f"{name}.json").read_text(), seed=1)


def stack_request(index: int) -> bytes:
    """hdr_assign.p4 op 4: pcopy = src[index] (src holds 3, the first 2 valid)."""
    return ETH + bytes([4, index]) + SRC0 + SRC1 + ONE + PAYLOAD


@pytest.mark.parametrize("index", [3, 4, 200, 255])
def test_stack_index_beyond_the_stack(index: int) -> None:
    """Reading an element past the end reads an invalid header: pcopy = src[index] makes
    pcopy invalid (nothing emitted for it); the same on every packet, before and after
    packets with an index in range."""
    pipe = load("hdr_assign")
    untouched = ETH + bytes([4, index]) + SRC0 + SRC1 + ONE + PAYLOAD
    for _ in range(3):
        assert pipe.process(1, stack_request(index)).outputs == [(2, untouched)]
        assert pipe.process(1, stack_request(0)).outputs == [
            (2, ETH + bytes([4, 0]) + SRC0 + SRC1 + ONE + SRC0 + PAYLOAD)]


# ---- externs.p4: register cells, counters and meters past their size ----

ETH_PROBE = bytes.fromhex("ffffffffffff0a0b0c0d0e0f88b5")
OP_WRITE, OP_READ, OP_COUNT, OP_PACKET_METER = 1, 2, 4, 5
RESULT = 14 + 9  # offset of probe.result
COLOR = 14 + 35  # offset of probe.color


def probe(op: int, index: int, value: int = 0, result: int = 0, color: int = 0) -> bytes:
    head = struct.pack(">BIII", op, index, value, result)
    rest = bytearray(31)
    rest[COLOR - 14 - len(head)] = color
    return ETH_PROBE + head + bytes(rest)


@pytest.mark.parametrize("index", [1024, 5000, 2**32 - 1])
def test_register_index_beyond_the_register(index: int) -> None:
    """A write changes no cell; a read leaves its destination as it was (here the
    packet's own probe.result); the packet goes on."""
    pipe = load("externs")
    reg = pipe.state.register("MyIngress.reg32")
    before = [reg.read(i) for i in range(reg.size)]
    out = pipe.process(2, probe(OP_WRITE, index, value=0xDEADBEEF)).outputs
    assert [p for p, _ in out] == [2]
    assert [reg.read(i) for i in range(reg.size)] == before
    for _ in range(2):
        (port, frame), = pipe.process(2, probe(OP_READ, index, result=0x01020304)).outputs
        assert port == 2 and frame[RESULT:RESULT + 4] == bytes.fromhex("01020304")


def test_counter_and_meter_index_beyond_their_size() -> None:
    """A count past the end counts nothing; a meter past the end leaves its colour
    destination as it was (here the packet's own probe.color)."""
    pipe = load("externs")
    ctr = pipe.state.counter("MyIngress.ctr")
    pipe.process(2, probe(OP_COUNT, 64))
    assert all(ctr.read(i) == (0, 0) for i in range(ctr.size))
    for _ in range(3):
        (_, frame), = pipe.process(2, probe(OP_PACKET_METER, 16, color=7)).outputs
        assert frame[COLOR] == 7


# ---- stack_scratch.p4: what a packet writes past a stack's end stays with it ----

SCRATCH_ETH = bytes.fromhex("0000000000020000000000019000")


@pytest.mark.parametrize("index", [3, 9, 255])
def test_a_write_past_the_stack_never_reaches_a_later_packet(index: int) -> None:
    """Packet 1 writes `one` into s[index] (past the end: the scratch element); packet 2
    reads s[index] into `seen`, which is emitted only when valid: it finds the scratch
    element invalid, as every packet does, whatever an earlier one wrote there."""
    pipe = load("stack_scratch")
    write = SCRATCH_ETH + bytes([1, index]) + b"\xaa\xbb"
    read = SCRATCH_ETH + bytes([2, index]) + b"\xcc\xdd"
    for _ in range(3):
        assert pipe.process(1, write).outputs == [(2, write)]
        assert pipe.process(1, read).outputs == [(2, read)]
    in_range = SCRATCH_ETH + bytes([2, 0]) + b"\xcc\xdd"
    assert pipe.process(1, in_range).outputs == [(2, in_range)]  # s[0] never extracted
