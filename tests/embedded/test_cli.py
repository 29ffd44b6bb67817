"""`pyoffload-target`: simple_switch_grpc's options, errors, a real process."""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from finsy.proto import p4r, p4r_grpc

from pyoffload import __version__
from pyoffload.embedded.cli import DEFAULT_GRPC_ADDRESS, UsageError, main, parse_args
from pyoffload.embedded.p4runtime.testing import Client, Names, action, insert, load_program
from pyoffload.embedded.ports import RawSocketPort


def test_bmv2_style_command_line() -> None:
    opts = parse_args(["--no-p4", "-i", "1@veth1", "--interface", "2@veth3", "--device-id", "3",
                       "--thrift-port", "9090", "--log-console", "-L", "warn",
                       "--", "--grpc-server-addr", "127.0.0.1:50001", "--cpu-port", "255"])
    assert opts.no_p4 and opts.json is None
    assert opts.interfaces == [(1, "veth1"), (2, "veth3")]
    assert opts.device_id == 3
    assert opts.cpu_port == 255
    assert opts.grpc_address == "127.0.0.1:50001"
    assert opts.log_console and opts.log_level == logging.WARNING
    assert any("--thrift-port" in n for n in opts.notices)


def test_json_positional_or_option_and_defaults() -> None:
    opts = parse_args(["prog.json"])
    assert opts.json == Path("prog.json")
    assert opts.grpc_address == DEFAULT_GRPC_ADDRESS == "unix:/run/pyoffload/p4rt.sock"
    assert opts.cpu_port is None
    assert parse_args(["--json", "p.json", "--cpu-port", "64"]).cpu_port == 64


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        ([], "JSON file or --no-p4"),
        (["--no-p4", "-i", "veth1"], "PORT@INTERFACE"),
        (["--no-p4", "-i", "x@veth1"], "not an integer"),
        (["--no-p4", "-i", "1@a", "-i", "1@b"], "port 1 given twice"),
        (["--no-p4", "--device-id", "-1"], "negative"),
        (["--no-p4", "--bogus"], "unrecognized arguments"),
        (["--no-p4", "-L", "loud"], "unknown log level"),
        (["--no-p4", "--", "--grpc-server-addr", "nocolon"], "HOST:PORT"),
        (["a.json", "--no-p4"], "exclude each other"),
    ],
)
def test_bad_options_are_one_line_errors(argv: list[str], fragment: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UsageError, match=fragment):
        parse_args(argv)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pyoffload-target: error:")


def test_unreadable_json_is_one_line_error(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    for path in (bad, tmp_path / "missing.json"):
        code = main([str(path), "--", "--grpc-server-addr", "127.0.0.1:0"])
        assert code == 1
        err = capsys.readouterr().err
        assert "error: cannot" in err and "Traceback" not in err


def test_missing_interface_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--no-p4", "-i", "1@pyo-missing0"]) == 1
    assert "no network interface named 'pyo-missing0'" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_process_serves_p4runtime_and_stops_on_sigterm() -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyoffload.embedded", "--no-p4", "--device-id", "1",
         "--thrift-port", "9090", "--", "--grpc-server-addr", f"127.0.0.1:{port}",
         "--cpu-port", "64"],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=20)
            stub = p4r_grpc.P4RuntimeStub(channel)
            caps = stub.Capabilities(p4r.CapabilitiesRequest())
            assert caps.p4runtime_api_version.startswith("1.")
            config = stub.GetForwardingPipelineConfig(
                p4r.GetForwardingPipelineConfigRequest(device_id=1))
            assert not config.HasField("config")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "--thrift-port is a BMv2 option this target ignores" in err
    assert f"P4Runtime on 127.0.0.1:{port}" in err
    assert "stopped" in err and "Traceback" not in err


def test_version_alone() -> None:
    result = subprocess.run([sys.executable, "-m", "pyoffload.embedded", "--version"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stdout.strip()) == (0, f"pyoffload-target {__version__}")


def test_port_in_use_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        assert main(["--no-p4", "--", "--grpc-server-addr", f"127.0.0.1:{busy}"]) == 1
    assert "cannot listen" in capsys.readouterr().err


@pytest.fixture
def veth_pair() -> Iterator[tuple[str, str]]:
    """A veth pair with unique names, deleted afterwards; only we send on it."""
    if os.geteuid() != 0:
        pytest.skip("needs root for veth pairs")
    tag = uuid.uuid4().hex[:6]
    inside, outside = f"pyo{tag}c", f"pyo{tag}d"
    subprocess.run(["ip", "link", "add", inside, "type", "veth", "peer", "name", outside],
                   check=True, capture_output=True)
    try:
        for name in (inside, outside):
            subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{name}.disable_ipv6=1"],
                           check=False, capture_output=True)
            subprocess.run(["ip", "link", "set", name, "up"], check=True, capture_output=True)
        yield inside, outside
    finally:
        subprocess.run(["ip", "link", "del", inside], check=False, capture_output=True)


def test_drop_in_for_simple_switch_grpc(veth_pair: tuple[str, str]) -> None:
    """JSON on the command line, a veth port, the P4Info pushed over P4Runtime, a frame."""
    programs = Path(__file__).parent / "programs"
    try:
        p4info, device_config = load_program(programs, "srv_switch")
    except FileNotFoundError:
        pytest.skip("srv_switch is not compiled")
    inside, outside = veth_pair
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyoffload.embedded", str(programs / "srv_switch.json"),
         "-i", f"1@{inside}", "--device-id", "1", "--log-console", "-L", "warn",
         "--", "--grpc-server-addr", f"127.0.0.1:{port}", "--cpu-port", "64"],
        stderr=subprocess.PIPE, text=True,
    )
    far = RawSocketPort(outside)
    try:
        client = Client(f"127.0.0.1:{port}")
        try:
            assert client.arbitrate().status.code == 0
            client.set_pipeline(p4info, device_config)
            names = Names(p4info)
            client.write(insert(p4r.Entity(table_entry=p4r.TableEntry(
                table_id=names.id("l2"),
                match=[p4r.FieldMatch(field_id=names.field("l2", "hdr.ethernet.dstAddr"),
                                      exact=p4r.FieldMatch.Exact(value=b"\x02\x00\x00\x00\x00\x02"))],
                action=p4r.TableAction(action=action(names.id("forward"), 1))))))
            frame = bytes.fromhex("020000000002" "020000000001" "88b5") + b"z" * 50
            far.transmit(frame)
            assert _next_frame_of_type(far, b"\x88\xb5") == frame  # hairpinned back out port 1
        finally:
            client.close()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        far.release()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def _next_frame_of_type(port: RawSocketPort, ethertype: bytes,
                        timeout: float = 3.0) -> bytes | None:
    frames: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

    def pump() -> None:
        while (frame := port.receive()) is not None:
            frames.put(frame)
        frames.put(None)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        while True:
            frame = frames.get(timeout=timeout)
            if frame is None or frame[12:14] == ethertype:
                return frame
    finally:
        port.close()
        thread.join(timeout=2)
