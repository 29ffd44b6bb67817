"""The traffic sender of the wire benchmark, run as its own process.

``python -m benchmarks.bench_sender IFACE FRAMES_FILE SECONDS`` sends the frames
of FRAMES_FILE (each prefixed by a 2-byte big-endian length) round-robin out
of IFACE through an AF_PACKET socket, as fast as one core allows, for SECONDS;
then prints how many it sent. Its own process so ``taskset`` can pin it to a
core apart from the target's. A full socket buffer is the saturation we want:
ENOBUFS is counted as a drop and the loop goes on.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path


def read_frames(path: Path) -> list[bytes]:
    data = path.read_bytes()
    frames, i = [], 0
    while i < len(data):
        n = int.from_bytes(data[i:i + 2], "big")
        frames.append(data[i + 2:i + 2 + n])
        i += 2 + n
    return frames


def write_frames(path: Path, frames: list[bytes]) -> None:
    path.write_bytes(b"".join(len(f).to_bytes(2, "big") + f for f in frames))


def send(ifname: str, frames: list[bytes], seconds: float) -> tuple[int, int]:
    sent = dropped = 0
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((ifname, 0))
        deadline = time.monotonic() + seconds
        n = len(frames)
        while time.monotonic() < deadline:
            for i in range(0, n, 256):
                for frame in frames[i:i + 256]:
                    try:
                        sock.send(frame)
                        sent += 1
                    except OSError:
                        dropped += 1
                if time.monotonic() >= deadline:
                    break
    return sent, dropped


def main() -> int:
    ifname, path, seconds = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
    if not ifname.startswith("pyo"):
        print(f"refusing to send on {ifname!r}: not a benchmark veth", file=sys.stderr)
        return 2
    sent, dropped = send(ifname, read_frames(path), seconds)
    print(f"{sent} {dropped}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
