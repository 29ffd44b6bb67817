"""Real traffic between test hosts: kernel TCP/UDP sockets and ping, run
inside network namespaces with ``ip netns exec``.

Every helper is bounded: sockets have timeouts, servers serve a fixed number
of exchanges and exit, and all processes are waited for or killed by PID.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from types import TracebackType

import attrs

_SERVER = r"""
import socket, sys
proto, addr, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_INET, kind)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((addr, port))
s.settimeout(30)
if proto == "tcp":
    s.listen(8)
print("ready", flush=True)
for _ in range(count):
    try:
        if proto == "tcp":
            c, _peer = s.accept()
            c.settimeout(10)
            data = c.recv(65536)
            c.sendall(b"echo:" + data)
            c.close()
        else:
            data, peer = s.recvfrom(65536)
            s.sendto(b"echo:" + data, peer)
    except OSError:
        break
"""

_CLIENT = r"""
import socket, sys
proto, addr, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_INET, kind)
s.settimeout(timeout)
try:
    if proto == "tcp":
        s.connect((addr, port))
        s.sendall(b"hello")
        reply = s.recv(65536)
    else:
        s.sendto(b"hello", (addr, port))
        reply, _peer = s.recvfrom(65536)
    print(reply.decode(errors="replace"))
except (OSError, TimeoutError) as exc:
    print(f"failed: {type(exc).__name__}", file=sys.stderr)
    sys.exit(1)
"""


def netns_cmd(netns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", netns, *argv]


@attrs.define
class EchoServer:
    """A TCP or UDP echo server in a namespace, serving ``count`` exchanges."""

    netns: str
    proto: str
    address: str
    port: int
    count: int = 16
    process: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 10.0) -> EchoServer:
        self.process = subprocess.Popen(
            netns_cmd(self.netns, sys.executable, "-c", _SERVER, self.proto, self.address,
                      str(self.port), str(self.count)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        line = self.process.stdout.readline()
        if line.strip() != "ready" or time.monotonic() > deadline:
            self.stop()
            raise RuntimeError(f"{self.proto} echo server in {self.netns} did not start")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> EchoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@attrs.frozen(kw_only=True)
class Exchange:
    """What one client exchange achieved."""

    ok: bool
    reply: str


def echo_exchange(
    netns: str, proto: str, address: str, port: int, timeout: float = 3.0
) -> Exchange:
    """Send "hello" from ``netns`` and wait for the echo (a real kernel socket)."""
    result = subprocess.run(
        netns_cmd(netns, sys.executable, "-c", _CLIENT, proto, address, str(port), str(timeout)),
        capture_output=True,
        text=True,
        timeout=timeout + 10,
    )
    return Exchange(ok=result.returncode == 0, reply=result.stdout.strip())


def ping(netns: str, address: str, count: int = 2, timeout: float = 3.0) -> bool:
    """True when ``address`` answers ICMP echo from ``netns``."""
    result = subprocess.run(
        netns_cmd(netns, "ping", "-c", str(count), "-i", "0.2", "-W", str(int(timeout)), address),
        capture_output=True,
        timeout=timeout * count + 10,
    )
    return result.returncode == 0


class RawWire:
    """Frames in and out of one test-side interface (AF_PACKET), bounded waits."""

    def __init__(self, ifname: str) -> None:
        # Bound before it receives anything (protocol 0 until bind names
        # ETH_P_ALL on this interface): no frame of another interface slips in.
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self.sock.bind((ifname, 3))
        self.sock.settimeout(0.2)

    def send(self, frame: bytes) -> None:
        self.sock.send(frame)

    def receive(self, seconds: float = 3.0, *, settle: bool = True) -> list[bytes]:
        """Frames that arrive within ``seconds`` (once one came, stop at the next quiet 0.2 s)."""
        frames: list[bytes] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                if frames and settle:
                    break
                continue
            if addr[2] != socket.PACKET_OUTGOING:
                frames.append(data)
        return frames

    def close(self) -> None:
        self.sock.close()
