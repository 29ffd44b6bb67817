"""Start a P4 target on switch ports and wait until its P4Runtime server answers.

Two kinds: BMv2 ``simple_switch_grpc`` (the reference, when installed) and
pyoffload's embedded target (always available). Both get the same command-line
options; ``auto`` picks BMv2 when it is installed and the embedded target
otherwise.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

import attrs
import grpc
from finsy.proto import p4r, p4r_grpc

from pyoffload.errors import PyoffloadError

KINDS = ("auto", "bmv2", "embedded")
BMV2_BINARY = "simple_switch_grpc"
CPU_PORT = 510


class TargetUnavailable(PyoffloadError):
    """The requested target cannot run on this machine (reason in the message)."""


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pin_process(pid: int, cpu: int) -> None:
    """Every thread of process ``pid`` on ``cpu`` (threads it starts later inherit it),
    so benchmarks keep a target and its load on cores of their own."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), {cpu})
        except ProcessLookupError:  # a thread that just ended
            continue


def bmv2_path() -> str | None:
    """``$PYOFFLOAD_BMV2`` (e.g. a performance build elsewhere), else simple_switch_grpc on PATH."""
    override = os.environ.get("PYOFFLOAD_BMV2")
    if override:
        return override if os.access(override, os.X_OK) else None
    return shutil.which(BMV2_BINARY)


def embedded_available() -> str | None:
    """None when the embedded target can run, else why not."""
    try:
        found = importlib.util.find_spec("pyoffload.embedded.cli")
    except ImportError as exc:
        return f"the embedded target is not importable ({exc})"
    if found is None:
        return "the embedded target (pyoffload.embedded) is not installed"
    return None


def resolve_kind(kind: str) -> str:
    """``bmv2`` or ``embedded``, or TargetUnavailable saying what is missing."""
    if kind not in KINDS:
        raise TargetUnavailable(f"unknown target {kind!r}; choose one of {', '.join(KINDS)}")
    if kind in ("auto", "bmv2") and bmv2_path() is not None:
        return "bmv2"
    if kind == "bmv2":
        raise TargetUnavailable(
            f"BMv2 {BMV2_BINARY} is not installed (not on PATH); it is in no package "
            "registry: build p4lang/behavioral-model with PI, or use --target embedded"
        )
    reason = embedded_available()
    if reason is not None:
        raise TargetUnavailable(reason)
    return "embedded"


def target_command(
    kind: str,
    ports: Mapping[int, str],
    grpc_address: str,
    *,
    device_id: int,
    cpu_port: int,
    log_file: Path | None,
) -> list[str]:
    """The command line that starts ``kind`` (simple_switch_grpc's options)."""
    if kind == "bmv2":
        path = bmv2_path()
        if path is None:
            raise TargetUnavailable(f"{BMV2_BINARY} is not on PATH")
        program = [path, "--thrift-port", str(free_tcp_port())]
    else:
        program = [sys.executable, "-m", "pyoffload.embedded"]
    argv = [*program, "--no-p4", "--device-id", str(device_id)]
    for port, iface in sorted(ports.items()):
        argv += ["-i", f"{port}@{iface}"]
    if log_file is not None and kind == "bmv2" and os.environ.get("PYOFFLOAD_TARGET_LOG"):
        # BMv2's per-packet log: for debugging only, it slows BMv2 down ~20x.
        argv += ["--log-file", str(log_file.with_suffix("")), "--log-flush"]
    argv += ["--", "--grpc-server-addr", grpc_address, "--cpu-port", str(cpu_port)]
    return argv


def serves_p4runtime(address: str, timeout: float = 1.0) -> bool:
    """Whether a P4Runtime server answers at ``address`` now (any answer: it serves)."""
    with grpc.insecure_channel(address) as channel:
        try:
            p4r_grpc.P4RuntimeStub(channel).Capabilities(p4r.CapabilitiesRequest(),
                                                         timeout=timeout)
        except grpc.RpcError as exc:
            return exc.code() not in (grpc.StatusCode.UNAVAILABLE,
                                      grpc.StatusCode.DEADLINE_EXCEEDED)
    return True


@attrs.define
class RunningTarget:
    """A started target process; ``stop`` ends it (by PID, never by name)."""

    kind: str
    grpc_address: str
    device_id: int
    cpu_port: int
    process: subprocess.Popen[bytes]
    output: Path

    @property
    def thrift_address(self) -> str | None:
        """BMv2's Thrift runtime address (where its registers are reached); None otherwise."""
        argv = [str(a) for a in self.process.args]  # type: ignore[union-attr]
        if self.kind != "bmv2" or "--thrift-port" not in argv:
            return None
        return f"127.0.0.1:{argv[argv.index('--thrift-port') + 1]}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Ask the target for its capabilities until it answers (any answer: it serves);
        fail early if the process dies. (Not ``grpc.channel_ready_future``: its poller
        thread can outlive the channel and fail in the background.)"""
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.grpc_address) as channel:
            stub = p4r_grpc.P4RuntimeStub(channel)
            while True:
                if self.process.poll() is not None:
                    raise TargetUnavailable(
                        f"{self.kind} target exited with code {self.process.returncode} "
                        f"before serving P4Runtime:\n{self.output_tail()}"
                    )
                try:
                    stub.Capabilities(p4r.CapabilitiesRequest(), timeout=0.5,
                                      wait_for_ready=True)
                    return
                except grpc.RpcError as exc:
                    if exc.code() not in (grpc.StatusCode.UNAVAILABLE,
                                          grpc.StatusCode.DEADLINE_EXCEEDED):
                        return  # it answered: it serves
                    if time.monotonic() > deadline:
                        self.stop()
                        raise TargetUnavailable(
                            f"{self.kind} target did not serve P4Runtime on "
                            f"{self.grpc_address} within {timeout:g} s:\n{self.output_tail()}"
                        ) from None

    def output_tail(self, lines: int = 20) -> str:
        try:
            text = self.output.read_text(errors="replace")
        except OSError:
            return "(no output)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.grpc_address.startswith("unix:"):
            socket_dir = Path(self.grpc_address.removeprefix("unix:")).parent
            if socket_dir.name.startswith("pyoffload-p4rt-"):  # ours: gone with the target
                shutil.rmtree(socket_dir, ignore_errors=True)  # (and what a killed one left)

    def __enter__(self) -> RunningTarget:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_target(
    kind: str,
    ports: Mapping[int, str],
    *,
    output: Path,
    device_id: int = 1,
    cpu_port: int = CPU_PORT,
    grpc_address: str | None = None,
    ready_timeout: float = 30.0,
) -> RunningTarget:
    """Start a target with ``ports`` (port number -> interface) and wait for it.

    The embedded target serves P4Runtime on a Unix socket in a fresh directory only
    its owner may enter (no other local user can reach the pipeline's control plane);
    BMv2 on a loopback TCP port. ``grpc_address`` chooses another address.
    """
    kind = resolve_kind(kind)
    if grpc_address is not None:
        address = grpc_address
    elif kind == "embedded":
        address = f"unix:{tempfile.mkdtemp(prefix='pyoffload-p4rt-')}/p4rt.sock"
    else:
        address = f"127.0.0.1:{free_tcp_port()}"
    argv = target_command(
        kind, ports, address, device_id=device_id, cpu_port=cpu_port, log_file=output
    )
    with output.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    target = RunningTarget(
        kind=kind,
        grpc_address=address,
        device_id=device_id,
        cpu_port=cpu_port,
        process=process,
        output=output,
    )
    target.wait_ready(ready_timeout)
    return target


@attrs.frozen(kw_only=True)
class WiredTarget:
    """A started target between a guest veth and an uplink veth (their test ends)."""

    target: RunningTarget
    guest_if: str
    uplink_if: str


def start_wired_target(stack: ExitStack, kind: str, *, tag: str, output: Path,
                       guest_port: int = 1, uplink_port: int = 2) -> WiredTarget:
    """``kind`` on two fresh veth pairs (removed, and the target stopped, with ``stack``)."""
    from pyoffload.playground.topology import Topology

    topo = stack.enter_context(Topology(tag=tag))
    for port in (guest_port, uplink_port):
        topo.add_veth(port)
    ports = {p: pair.switch_end for p, pair in topo.pairs.items()}
    target = stack.enter_context(start_target(kind, ports, output=output))
    return WiredTarget(target=target, guest_if=topo.pairs[guest_port].test_end,
                       uplink_if=topo.pairs[uplink_port].test_end)
