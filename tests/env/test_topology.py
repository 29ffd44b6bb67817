"""Veth pairs and namespaces are created for real and removed afterwards."""

from __future__ import annotations

import os
import subprocess

import pytest

from pyoffload.playground.topology import Topology, TopologyError, require_root, run_ip
from pyoffload.playground.traffic import EchoServer, echo_exchange, ping
from pyoffload.targets import TargetUnavailable, resolve_kind

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for veth pairs")


def link_exists(name: str, netns: str | None = None) -> bool:
    cmd = ["ip", *(["-n", netns] if netns else []), "link", "show", name]
    return subprocess.run(cmd, capture_output=True).returncode == 0


@needs_root
def test_veth_pairs_and_namespaces_are_cleaned_up() -> None:
    with Topology() as topo:
        ns = topo.add_namespace("h")
        pair = topo.add_veth(1, test_netns=ns)
        plain = topo.add_veth(2)
        assert link_exists(pair.switch_end)
        assert link_exists(pair.test_end, ns)
        assert link_exists(plain.test_end)
        assert len(pair.switch_end) <= 15
    assert not link_exists(pair.switch_end)
    assert not link_exists(plain.switch_end)
    assert ns not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                    text=True).stdout


@needs_root
def test_real_traffic_between_two_namespaces_over_one_cable() -> None:
    """The traffic helpers work on a direct cable (no P4 target in between)."""
    with Topology() as topo:
        a = topo.add_namespace("a")
        b = topo.add_namespace("b")
        pair = topo.add_veth(1, test_netns=b, mtu=1500)
        run_ip("link", "set", pair.switch_end, "netns", a)
        run_ip("addr", "add", "10.99.0.1/24", "dev", pair.switch_end, netns=a)
        run_ip("link", "set", pair.switch_end, "up", netns=a)
        run_ip("addr", "add", "10.99.0.2/24", "dev", pair.test_end, netns=b)
        with EchoServer(b, "tcp", "10.99.0.2", 7000), EchoServer(b, "udp", "10.99.0.2", 7001):
            assert echo_exchange(a, "tcp", "10.99.0.2", 7000).reply == "echo:hello"
            assert echo_exchange(a, "udp", "10.99.0.2", 7001).reply == "echo:hello"
        assert not echo_exchange(a, "tcp", "10.99.0.2", 7002, timeout=1.0).ok
        assert ping(a, "10.99.0.2", count=1)
        # the link moved into namespace a: delete it there
        run_ip("link", "del", pair.switch_end, netns=a)


def test_require_root_explains_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(TopologyError, match="needs root"):
        require_root("the PTF runner")


def test_unknown_and_missing_targets_are_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TargetUnavailable, match="unknown target"):
        resolve_kind("tofino")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(TargetUnavailable, match="simple_switch_grpc is not installed"):
        resolve_kind("bmv2")
