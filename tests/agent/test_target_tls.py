"""The agent reaches a target that only speaks mutual TLS (``target.tls`` in the host
config), and without its client certificate it cannot: it refuses to start with one
line (no traceback, no wipe)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pyoffload.agent import Agent
from pyoffload.agent.config import load_config
from pyoffload.errors import PyoffloadError
from pyoffload.rules import load_data
from tests.pki import make_pki

RULES = {"vnic": "web-1", "flows": [
    {"id": "out", "match": {"direction": "from-guest", "protocol": "tcp"},
     "config": {"default_verdict": "deny"},
     "rules": [{"id": "web", "match": {"dst_ports": 80}, "verdict": "allow"}]}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_agent_over_mutual_tls(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    make_pki(pki, {"target": ("ca", "IP:127.0.0.1,DNS:localhost"), "agent": ("ca", "DNS:agent")})
    address = f"127.0.0.1:{free_port()}"
    target = subprocess.Popen(
        [sys.executable, "-m", "pyoffload.embedded", "--no-p4", "--device-id", "1", "--",
         "--grpc-server-addr", address, "--cpu-port", "510", "--grpc-server-ssl",
         "--grpc-server-cert", str(pki / "target.crt"),
         "--grpc-server-key", str(pki / "target.key"),
         "--grpc-server-cacert", str(pki / "ca.crt"), "--grpc-server-with-client-auth"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def config(tls: dict[str, str] | None) -> Path:
            path = tmp_path / "host.yaml"
            target_section: dict[str, object] = {"kind": "remote", "address": address}
            if tls is not None:
                target_section["tls"] = tls
            path.write_text(yaml.safe_dump({
                "target": target_section,
                "vnics": [{"name": "web-1", "id": 1, "guest_port": 1, "uplink_port": 2}],
                "state": {"path": "state.db"}}))
            return path

        with_tls = load_config(config({"ca": "pki/ca.crt", "cert": "pki/agent.crt",
                                       "key": "pki/agent.key"}))
        deadline = time.monotonic() + 30
        while True:  # the target process takes a moment to listen
            try:
                agent = Agent(with_tls, address).start(timeout=2)
                break
            except PyoffloadError:
                if time.monotonic() > deadline:
                    raise
        try:
            assert agent.apply("web-1", load_data(RULES)).generation == 1
            assert agent.target_status().primary
        finally:
            agent.stop()

        without = load_config(config(None))
        with pytest.raises(PyoffloadError) as info:
            Agent(without, address).start(timeout=2)
        assert "\n" not in str(info.value).strip()
    finally:
        target.terminate()
        target.wait(timeout=10)
