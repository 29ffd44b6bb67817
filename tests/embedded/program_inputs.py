"""Inputs, control-plane writes and expected outputs of hdr_assign.p4 and nested_switch.p4.

Shared by the engine tests (tests/embedded) and the differential test against
BMv2 (tests/interop/test_program_differential.py), so both run the same frames.
Every input enters on port 1; the programs send it out of port 2 unless a
table says otherwise. Expected outputs are written by hand from the P4 source.
"""

from __future__ import annotations

from dataclasses import dataclass

ETH = bytes.fromhex("020000000002" "020000000001" "9000")
PAYLOAD = bytes(range(0x30, 0x50))
SRC0, SRC1, ONE = bytes.fromhex("a1b1"), bytes.fromhex("a2b2"), bytes.fromhex("c1c2")


@dataclass(frozen=True, slots=True)
class Case:
    """One input frame and what must come out: (port, frame) pairs."""

    name: str
    frame: bytes
    expected: tuple[tuple[int, bytes], ...]


def _assign(op: int, arg: int, *, src: bytes, one: bytes = b"", pcopy: bytes = b"",
            dst: bytes = b"", u: bytes = b"", u2: bytes = b"") -> tuple[bytes, bytes]:
    """hdr_assign.p4: the input (req op/arg, src[0], src[1], one) and the output, whose
    headers are emitted in the deparser's order (invalid ones leave no bytes)."""
    head = ETH + bytes([op, arg])
    frame = head + SRC0 + SRC1 + ONE + PAYLOAD
    return frame, head + src + one + pcopy + dst + u + u2 + PAYLOAD


def _hdr_assign_cases() -> list[Case]:
    both = SRC0 + SRC1
    shapes = {
        # mux_copy: dst[0] = src[1] when arg <= 3 (p4c: `arg <= 3 ? src[1] : dst[0]`)
        "mux copy taken": _assign(1, 2, src=both, one=ONE, dst=SRC1),
        "mux copy not taken": _assign(1, 4, src=both, one=ONE),
        # const_index_copy: dst[1] = src[0]; one = src[1]
        "stack elements": _assign(2, 0, src=both, one=SRC1, dst=SRC0),
        # field_indexed_copy: pcopy = src[arg] (src[2] is invalid)
        "index from the packet 1": _assign(4, 1, src=both, one=ONE, pcopy=SRC1),
        "index from the packet 2": _assign(4, 2, src=both, one=ONE),
        # to_union: u.x = src[0]; u.y = one if arg == 1 (then u.x turns invalid); u2 = u
        "union member x": _assign(5, 0, src=both, one=ONE, u=SRC0, u2=SRC0),
        "union member y replaces x": _assign(5, 1, src=both, one=ONE, u=ONE, u2=ONE),
        # invalidate: src[0] = dst[2] (invalid) and one = src[2] (invalid)
        "invalid source invalidates": _assign(6, 0, src=SRC1),
        # whole_stack: dst = src (src[2] invalid), then dst[2] = one
        "whole stack": _assign(7, 0, src=both, one=ONE, dst=SRC0 + SRC1 + ONE),
        # swap through a local header
        "swap": _assign(8, 0, src=SRC1 + SRC0, one=ONE),
        # the parser: pcopy = one
        "assignment in the parser": _assign(9, 0, src=both, one=ONE, pcopy=ONE),
        # outside an action: one = src[1]
        "assignment in a control block": _assign(10, 0, src=both, one=SRC1),
        "no assignment": _assign(11, 0, src=both, one=ONE),
    }
    return [Case(name, frame, ((2, out),)) for name, (frame, out) in shapes.items()]


HDR_ASSIGN = _hdr_assign_cases()


@dataclass(frozen=True, slots=True)
class Entry:
    """A table entry of nested_switch.p4 by names: table, exact key, action, arguments."""

    table: str
    key: int
    action: str
    args: tuple[int, ...] = ()


NESTED_SWITCH_ENTRIES = (
    Entry("MyIngress.outer", 1, "MyIngress.tag", (5,)),
    Entry("MyIngress.outer", 2, "MyIngress.pass"),
    Entry("MyIngress.outer", 4, "MyIngress.tag", (7,)),
    Entry("MyIngress.inner", 5, "MyIngress.set_port", (1,)),
)


def _req(op: int, arg: int, path: int) -> bytes:
    return ETH + bytes([op, arg, path]) + PAYLOAD


NESTED_SWITCH = [
    # outer: tag(5) -> inner: set_port(1) -> path 1, back out of port 1
    Case("tag then set_port", _req(1, 0, 0), ((1, _req(1, 5, 1)),)),
    # outer: pass -> the constant branch (the one with `dead` is gone) -> path 3
    Case("pass", _req(2, 0, 0), ((2, _req(2, 0, 3)),)),
    # outer misses: NoAction -> the switch's default -> path 4
    Case("outer misses", _req(3, 9, 0), ((2, _req(3, 9, 4)),)),
    # outer: tag(7) -> inner misses (pass) -> inner switch's default -> path 2
    Case("tag then inner misses", _req(4, 0, 0), ((2, _req(4, 7, 2)),)),
]
