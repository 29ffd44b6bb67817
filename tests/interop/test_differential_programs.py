"""Differential test, part two: small v1model programs for the corners where the
embedded target once differed from BMv2 (header-union stacks, reading invalid
headers, frames shorter than the first header).

``test_differential.py`` compares the product's pipeline on veths; frames of 0..13
bytes cannot cross a veth (the kernel refuses to send them), so here every frame
enters through the CPU port as a P4Runtime PacketOut, and the programs send every
packet back to the CPU port with a report header (the port the program picked, the
parser error, what it read), so each output comes back whole as a PacketIn. Frames
go one at a time, in order, into a freshly started target: BMv2 recycles PHVs, and
what a packet reads from an invalid header is what an earlier packet left there.

The outputs BMv2 gave are recorded in ``recorded/<program>.json``: the embedded
target is checked against the recording everywhere, and where BMv2 is installed
BMv2 itself is checked against the recording (so both agree with each other, frame
by frame). ``python -m tests.interop.test_differential_programs`` re-records.
"""

from __future__ import annotations

import json
import queue
import struct
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from pyoffload.p4runtime import P4RuntimeClient
from pyoffload.targets import bmv2_path, start_target

PROGRAMS_DIR = Path(__file__).parent.parent / "embedded" / "programs"
RECORDED_DIR = Path(__file__).parent / "recorded"
CPU_PORT = 510  # the programs send everything to 510


def eth(dst: int, src: int, etype: int) -> bytes:
    return dst.to_bytes(6, "big") + src.to_bytes(6, "big") + struct.pack("!H", etype)


def short_frames(full: bytes) -> list[bytes]:
    """Every prefix of ``full`` from 0 bytes to 15 (shorter than, as long as, and just
    longer than an Ethernet header)."""
    return [full[:n] for n in range(16)]


def union_stack_frames() -> list[bytes]:
    bodies = [b"", b"\x0a", b"\x0a\x05", b"\x0b\x01\x12", b"\x0a\x05\x0b\x01\x12\x34",
              b"\x0a\x05\x0b\x01\x12\x34\x0a\x09", b"\x0b\x00\xab\xcd\x0a\x01\x0b\x02\x00\x01",
              b"\x0a\x01\x0a\x02\x0a\x03\x0a\x04", b"\x0c\x01", b"\x0b\x01\x12\x34\x0c"]
    frames = short_frames(eth(0x0102030405, 0xA0B0C0D0E0F, 0x88B6) + b"\x0a\x05")
    for op in range(5):  # the destination's low byte picks what the ingress does
        frames += [eth(op, 1, 0x88B6) + body for body in bodies]
    frames += [eth(1, 1, 0x0800) + b"\x0a\x05", eth(2, 2, 0x88B6)]
    return frames


def invalid_read_frames() -> list[bytes]:
    x = b"\x11\x22\x33"
    y = b"\x44\x55\x66\x77"
    x2 = b"\x88\x99\xaa"
    frames: list[bytes] = []
    for op in range(9):  # the source's low byte picks what the ingress does
        frames += [eth(1, op, 0x1001) + x, eth(2, op, 0x0000), eth(3, op, 0x1002) + y,
                   eth(4, op, 0x1001) + x2, eth(5, op, 0x1003) + y + x,
                   eth(6, op, 0x1004) + x + x2, eth(7, op, 0x0000) + x, eth(8, op, 0x1004) + x,
                   eth(9, op, 0x1001) + x[:2]]
    frames += short_frames(eth(0xAABBCCDDEEFF, 0x112233445504, 0x1001) + x)
    return frames


def short_frames_frames() -> list[bytes]:
    ip = bytes([0x45, 0x14, 0x12, 0x34, 10, 0, 0, 1, 10, 0, 0, 2])
    frames: list[bytes] = []
    for dst in (1, 2, 0x33):
        frames += short_frames(eth(dst, 0x0A, 0x0800) + ip)
    for dst, etype, body in (
        (1, 0x0800, ip), (2, 0x0800, ip[:5]), (1, 0x8100, b"\x00\x01\x00\x02"),
        (2, 0x8100, b"\x00\x01\x00"), (1, 0x88B5, b"\x08\x00" + ip), (1, 0x88B5, b"\x08"),
        (2, 0x88B5, b"\x08\x00" + ip[:3]), (1, 0x88B6, b"\x03\x01\x02"), (1, 0x88B6, b"\x05\x01"),
        (1, 0x88B6, b"\x0b" + bytes(12)), (1, 0x88B6, b""), (2, 0x88B7, b"\x00" * 4 + ip),
        (2, 0x88B7, b"\x00\x00"), (0x44, 0x88B7, b"\x00" * 4 + ip[:6]),
    ):
        frames.append(eth(dst, 0x0B, etype) + body)
    # short frames after a long one and after each other: what they read is stale
    for n in (0, 1, 5, 13, 6, 12, 14):
        frames.append(eth(0x02, 0x0C, 0x0800)[:n])
        frames.append(eth(0x01, 0x0D, 0x0800) + ip)
    return frames


PROGRAMS: dict[str, Callable[[], list[bytes]]] = {
    "union_stack": union_stack_frames,
    "invalid_read": invalid_read_frames,
    "short_frames": short_frames_frames,
}

Outputs = list[list[str]]
"""Per input frame, in order: the hex of each frame that reached the CPU port, sorted."""


def run_program(kind: str, program: str, frames: list[bytes], workdir: Path,
                *, first_timeout: float = 5.0, quiet: float = 0.05) -> Outputs:
    """Start ``kind`` with no ports, push ``program``, send ``frames`` one at a time."""
    outputs: Outputs = []
    with start_target(kind, {}, output=workdir / f"{kind}-{program}.log",
                      cpu_port=CPU_PORT) as target, \
            P4RuntimeClient(target.grpc_address, device_id=target.device_id) as client:
        client.set_pipeline(PROGRAMS_DIR / f"{program}.p4info.txtpb",
                            PROGRAMS_DIR / f"{program}.json")
        for frame in frames:
            client.packet_out(frame, [])
            seen: list[str] = []
            timeout = first_timeout
            while True:
                try:
                    message = client.stream_messages.get(timeout=timeout)
                except queue.Empty:
                    break
                if message.WhichOneof("update") == "packet":
                    seen.append(message.packet.payload.hex())
                    timeout = quiet  # anything more for this frame comes at once
            outputs.append(sorted(seen))
    return outputs


def recorded(program: str) -> Outputs:
    data = json.loads((RECORDED_DIR / f"{program}.json").read_text())
    frames = [bytes.fromhex(f) for f in data["frames"]]
    assert frames == PROGRAMS[program](), (
        f"recorded/{program}.json was made for other frames: re-record with BMv2 "
        "(python -m tests.interop.test_differential_programs)")
    out: Outputs = data["outputs"]
    return out


def differences(program: str, frames: list[bytes], want: Outputs, got: Outputs,
                kind: str) -> str:
    lines = [f"frame {i} ({frame.hex() or 'empty'}):\n  BMv2: {w or 'nothing'}\n"
             f"  {kind}: {g or 'nothing'}"
             for i, (frame, w, g) in enumerate(zip(frames, want, got, strict=True)) if w != g]
    return f"{program}: {len(lines)} of {len(frames)} frames differ from BMv2:\n" + \
        "\n".join(lines[:20])


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_embedded_target_gives_bmv2_outputs(program: str, tmp_path: Path) -> None:
    """The embedded target against what BMv2 gave for the same frames (recorded)."""
    frames = PROGRAMS[program]()
    want = recorded(program)
    got = run_program("embedded", program, frames, tmp_path)
    assert got == want, differences(program, frames, want, got, "embedded")
    # every frame, the empty one included, came back exactly once
    assert all(len(out) == 1 for out in got)


@pytest.mark.bmv2
@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_bmv2_gives_recorded_outputs(program: str, tmp_path: Path) -> None:
    """BMv2 itself, live, against the recording the embedded target is checked with."""
    if bmv2_path() is None:
        pytest.skip("BMv2 simple_switch_grpc is not installed (not on PATH): the embedded "
                    "target is checked against BMv2's recorded outputs only")
    frames = PROGRAMS[program]()
    got = run_program("bmv2", program, frames, tmp_path)
    want = recorded(program)
    assert got == want, differences(program, frames, got, want, "recording")


def record() -> None:
    """Run every program through BMv2 and write ``recorded/``."""
    if bmv2_path() is None:
        sys.exit("BMv2 simple_switch_grpc is not on PATH: nothing to record")
    RECORDED_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for program, make in sorted(PROGRAMS.items()):
            frames = make()
            outputs = run_program("bmv2", program, frames, Path(tmp))
            data = {"program": f"tests/embedded/programs/{program}.p4",
                    "target": "BMv2 simple_switch_grpc, fresh, frames sent in order",
                    "frames": [f.hex() for f in frames], "outputs": outputs}
            (RECORDED_DIR / f"{program}.json").write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    record()
