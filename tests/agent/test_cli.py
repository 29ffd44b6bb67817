"""``pyoffload up`` and ``pyoffload status`` as real subprocesses."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def test_up_serves_channels_and_status_reports(tmp_path: Path) -> None:
    config = tmp_path / "host.yaml"
    channel = f"unix:{tmp_path}/web-1.sock"
    admin = f"unix:{tmp_path}/admin.sock"
    config.write_text(yaml.safe_dump({
        "target": {"kind": "embedded", "pipeline": "large"},
        "vnics": [{"name": "web-1", "id": 7, "guest_port": 1, "uplink_port": 2,
                   "channel": channel, "quotas": {"rules": 100}}],
        "state": {"path": "state.db"},  # beside the config
    }))
    up, _lines = _start_up(config, admin)
    try:
        applied = run(str(BIN / "guest-shim"), "--channel", channel, "apply",
                      str(REPO / "pyoffload" / "examples" / "stateful-web-server.yaml"))
        assert applied.returncode == 0, applied.stderr
        status = run(str(BIN / "pyoffload"), "status", "--admin", admin)
        assert status.returncode == 0, status.stderr
        assert "VNIC web-1 (id 7" in status.stdout
        assert "generation 1" in status.stdout
        assert "rule http" in status.stdout
        doc = json.loads(run(str(BIN / "pyoffload"), "status", "--admin", admin,
                             "--json").stdout)
        assert doc["occupancy"]["vnic.acl"][0] == 3
        assert doc["occupancy"]["vnic.ct_overflow"] == [0, 16384]  # the large build runs
        assert doc["target"]["connected"] is True
        assert doc["drops"]["CT_QUOTA"] == 0 and doc["connection_quota_reached"] == []
        assert "dropped by the pipeline:" in status.stdout
        flows = run(str(BIN / "pyoffload"), "flows", "--admin", admin, "--vnic", "web-1")
        assert flows.returncode == 0, flows.stderr
        assert "0 tracked connection(s)" in flows.stdout  # no traffic was sent
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=30)
    assert up.returncode == 0


def test_status_without_agent_says_so(tmp_path: Path) -> None:
    result = run(str(BIN / "pyoffload"), "status", "--admin", f"unix:{tmp_path}/none.sock")
    assert result.returncode == 1
    assert result.stderr.strip() == (f"pyoffload status: no agent: {tmp_path}/none.sock does "
                                      "not exist; is `pyoffload up` running?")
    assert "Traceback" not in result.stderr


def test_bad_host_config_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "host.yaml"
    config.write_text("vnics:\n  - {name: a, id: 1, guest_port: 1, uplink_port: 1}\n")
    result = run(str(BIN / "pyoffload"), "up", str(config), "--admin",
                 f"unix:{tmp_path}/a.sock")
    assert result.returncode == 2
    assert "guest_port and uplink_port are both 1" in result.stderr
    assert "Traceback" not in result.stderr


def _start_up(config: Path, admin: str) -> tuple[subprocess.Popen[str], list[str]]:
    """``pyoffload up`` running, its admin endpoint ready; the lines it printed."""
    up = subprocess.Popen([str(BIN / "pyoffload"), "up", str(config), "--admin", admin],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    assert up.stdout is not None
    deadline = time.monotonic() + 60
    lines: list[str] = []
    while time.monotonic() < deadline:
        line = up.stdout.readline()
        lines.append(line)
        if "admin endpoint" in line or not line:
            break
    assert any("admin endpoint" in line for line in lines), "".join(lines)
    # Go on reading what it says (its log), so that it never blocks on a full pipe.
    threading.Thread(target=lines.extend, args=(up.stdout,), daemon=True).start()
    return up, lines


def _host_config(tmp_path: Path) -> tuple[Path, str, str, Path]:
    """A host configuration with one VNIC and an embedded target at an address of its own:
    the file, the VNIC's channel, the admin endpoint and the target's socket."""
    config = tmp_path / "host.yaml"
    channel = f"unix:{tmp_path}/web-1.sock"
    admin = f"unix:{tmp_path}/admin.sock"
    socket_path = tmp_path / "p4rt" / "p4rt.sock"
    config.write_text(yaml.safe_dump({
        "target": {"kind": "embedded", "address": f"unix:{socket_path}"},
        "vnics": [{"name": "web-1", "id": 7, "guest_port": 1, "uplink_port": 2,
                   "channel": channel}],
        "state": {"path": "state.db", "reconcile_interval": 1.0},
    }))
    return config, channel, admin, socket_path


def test_a_restarted_up_adopts_the_target_a_killed_one_left(tmp_path: Path) -> None:
    """``kill -9`` of ``pyoffload up`` leaves its target forwarding; the next ``up`` finds
    it on its configured address and adopts it (rules and all), never starting a second
    target on the same ports."""
    config, channel, admin, socket_path = _host_config(tmp_path)
    first, _ = _start_up(config, admin)
    second = None
    try:
        applied = run(str(BIN / "guest-shim"), "--channel", channel, "apply",
                      str(REPO / "pyoffload" / "examples" / "stateful-web-server.yaml"))
        assert applied.returncode == 0, applied.stderr
        first.kill()  # kill -9: its target is left running
        first.wait(timeout=30)
        second, lines = _start_up(config, admin)
        assert any("adopted, not started again" in line for line in lines), "".join(lines)
        doc = json.loads(run(str(BIN / "pyoffload"), "status", "--admin", admin,
                             "--json").stdout)
        assert doc["target"]["connected"] is True
        assert doc["target"]["device_id"] == 1
        assert doc["vnics"][0]["generation"] == 1
        assert doc["occupancy"]["vnic.acl"][0] == 3
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0
        time.sleep(0.2)  # the reader thread takes the last lines
        said = "".join(lines)
        # in the log too (with times), not only in the banner on stdout
        assert re.search(r"INFO pyoffload.up: a target already serves on unix:\S+ \(a "
                         r"previous agent's\): adopted, not started again", said), said
        assert "INFO pyoffload.up: stopping (SIGTERM): the channels, the admin endpoint and " \
            "the agent; the target keeps what it holds" in said, said
    finally:
        for up in (first, second):
            if up is not None and up.poll() is None:
                up.send_signal(signal.SIGTERM)
                up.wait(timeout=30)
        # the adopted target is no one's child now: stop it by the socket it serves
        subprocess.run(["pkill", "-f", str(socket_path)], check=False)


def _pids_serving(socket_path: Path) -> list[int]:
    """PIDs of the processes whose command line names ``socket_path`` (its target)."""
    found = subprocess.run(["pgrep", "-f", f"grpc-server-addr unix:{socket_path}"],
                           capture_output=True, text=True, check=False)
    return [int(pid) for pid in found.stdout.split()]


def test_up_starts_its_target_again_when_it_dies(tmp_path: Path) -> None:
    """``kill -9`` of the target ``pyoffload up`` started: ``up`` starts a new one on the
    same address and ports, and the agent puts the guest's rules back into it."""
    config, channel, admin, socket_path = _host_config(tmp_path)
    log = tmp_path / "up.log"
    with log.open("w") as out:
        up = subprocess.Popen([str(BIN / "pyoffload"), "up", str(config), "--admin", admin],
                              stdout=out, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    try:
        def status() -> dict[str, object] | None:
            shown = run(str(BIN / "pyoffload"), "status", "--admin", admin, "--json")
            return json.loads(shown.stdout) if shown.returncode == 0 else None

        deadline = time.monotonic() + 60
        while status() is None:
            assert up.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        applied = run(str(BIN / "guest-shim"), "--channel", channel, "apply",
                      str(REPO / "pyoffload" / "examples" / "stateful-web-server.yaml"))
        assert applied.returncode == 0, applied.stderr
        (first,) = _pids_serving(socket_path)
        subprocess.run(["kill", "-9", str(first)], check=True)

        deadline = time.monotonic() + 60
        while True:
            doc = status()
            if doc is not None:
                target = doc["target"]
                assert isinstance(target, dict)
                if target["reconnects"] == 1 and target["connected"] \
                        and doc["occupancy"]["vnic.acl"][0] == 3:  # type: ignore[index]
                    break
            assert time.monotonic() < deadline, (doc, log.read_text())
            time.sleep(0.2)
        (second,) = _pids_serving(socket_path)
        assert second != first
        said = f"the target serves again on unix:{socket_path} (pid {second}"
        deadline = time.monotonic() + 10  # `up` says so once the new one answered it
        while said not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert f"the target (pid {first}) exited with status -9; starting it again" \
            in log.read_text()
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=30)
    assert up.returncode == 0, log.read_text()
    assert _pids_serving(socket_path) == []  # stopped with `up`, not started once more


def test_up_refuses_an_admin_socket_others_could_replace(tmp_path: Path) -> None:
    """The admin endpoint is set up like a guest channel: not on a channel's socket (it
    replaced it: the guest got UNIMPLEMENTED), not in a directory others can write to."""
    config, channel, _admin, _socket = _host_config(tmp_path)
    clash = run(str(BIN / "pyoffload"), "up", str(config), "--admin", channel)
    assert clash.returncode == 2
    assert clash.stderr.strip() == (f"pyoffload up: --admin {channel} is the socket of VNIC "
                                    "web-1's guest channel; give the admin endpoint a path "
                                    "of its own")
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    exposed = run(str(BIN / "pyoffload"), "up", str(config), "--admin",
                  f"unix:{open_dir}/admin.sock")
    assert exposed.returncode == 2, exposed.stderr
    assert f"{open_dir} is writable by others (mode 0777), who could replace the socket" \
        in exposed.stderr, exposed.stderr
    assert list(open_dir.iterdir()) == []


def test_up_stops_cleanly_on_sighup(tmp_path: Path) -> None:
    """A hangup (its terminal closed) stops `up` as SIGTERM does: said in the log, its
    sockets removed (it used to die at once, leaving them)."""
    config, channel, admin, socket_path = _host_config(tmp_path)
    up, lines = _start_up(config, admin)
    try:
        up.send_signal(signal.SIGHUP)
        assert up.wait(timeout=30) == 0
    finally:
        if up.poll() is None:
            up.kill()
        subprocess.run(["pkill", "-f", str(socket_path)], check=False)
    time.sleep(0.2)  # the reader thread takes the last lines
    assert "stopping (SIGHUP)" in "".join(lines), "".join(lines)
    assert not Path(channel.removeprefix("unix:")).exists()
    assert not Path(admin.removeprefix("unix:")).exists()  # its admin socket too
