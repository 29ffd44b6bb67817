"""Connections outlive a target restart: the agent checkpoints the tracked
connections to its state file, and when the target comes back empty it puts
them back, with the rules, before the port maps admit traffic again.

1,000 TCP connections are established through the stateful firewall with real
frames on veth pairs; the target process is killed and a new one started on
the same ports and address; then every connection's server sends one more
segment towards the guest, which the firewall passes only for connections it
tracks (unsolicited inbound TCP is denied). The share that passes and the time
from the new target to rules and connections restored are printed.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from pyoffload.agent import Agent
from pyoffload.agent.config import parse_config
from pyoffload.agent.journal import Journal
from pyoffload.playground.topology import Topology
from pyoffload.playground.traffic import RawWire
from pyoffload.rules import load_data
from pyoffload.targets import RunningTarget, start_target
from tests.agent.service import eventually

pytestmark = [pytest.mark.netns,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root for veth pairs")]

GUEST, SERVER = "10.1.0.5", "192.0.2.20"
SO_RCVBUFFORCE = 33  # (Linux; root may pass rmem_max)
CONNECTIONS = 1000
RULES = {
    "flows": [
        {"id": "egress", "match": {"direction": "from-guest", "protocol": "tcp"},
         "config": {"services": ["conntrack"], "default_verdict": "deny"},
         "rules": [{"id": "web", "match": {"dst_ports": 8080, "ct_state": "new"},
                    "verdict": "allow-track"}]},
        {"id": "ingress", "match": {"direction": "to-guest"},
         "config": {"services": ["conntrack"], "default_verdict": "deny"}},
    ],
}


def frame(src: str, dst: str, sport: int, dport: int, flags: str, seq: int,
          ack: int = 0) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                 / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq,
                                              ack=ack))


def ports_seen(wire: RawWire, seconds: float = 5.0) -> set[int]:
    """Destination ports of the TCP segments that reach ``wire`` (the guest's ports)."""
    seen = set()
    for data in wire.receive(seconds):
        packet = Ether(data)
        if packet.haslayer(TCP) and packet[IP].src == SERVER:
            seen.add(int(packet[TCP].dport))
    return seen


def establish(guest: RawWire, uplink: RawWire, ports: range) -> None:
    """A TCP handshake for each guest port, through the firewall."""
    for port in ports:
        guest.send(frame(GUEST, SERVER, port, 8080, "S", 1000))
    for port in ports:
        uplink.send(frame(SERVER, GUEST, 8080, port, "SA", 5000, 1001))
    for port in ports:
        guest.send(frame(GUEST, SERVER, port, 8080, "A", 1001, 5001))
    guest.receive(1.0)
    uplink.receive(1.0)


def test_connections_survive_a_target_restart(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pyoffload")
    with ExitStack() as stack:
        topo = stack.enter_context(Topology())
        topo.add_veth(1)
        topo.add_veth(2)
        ports = {p: pair.switch_end for p, pair in topo.pairs.items()}
        first: RunningTarget = stack.enter_context(
            start_target("embedded", ports, output=tmp_path / "first.log"))
        guest, uplink = RawWire(topo.pairs[1].test_end), RawWire(topo.pairs[2].test_end)
        for wire in (guest, uplink):  # room for every frame of a burst until it is read
            wire.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 << 20)
        stack.callback(guest.close)
        stack.callback(uplink.close)
        config = parse_config({
            "target": {"kind": "remote", "address": first.grpc_address},
            "vnics": [{"name": "app", "id": 4, "guest_port": 1, "uplink_port": 2,
                       "quotas": {"tracked_connections": 4 * CONNECTIONS}}],
            "state": {"path": str(tmp_path / "state.db"), "checkpoint_interval": 0.2,
                      "reconcile_interval": 1.0},
        })
        journal = stack.enter_context(Journal.open(config.state.path))
        agent = Agent(config, first.grpc_address, device_id=first.device_id, journal=journal,
                      backoff=(0.05, 0.5)).start()
        stack.callback(agent.stop)
        agent.apply("app", load_data(RULES))

        guest_ports = range(20_000, 20_000 + CONNECTIONS)
        establish(guest, uplink, guest_ports)
        assert eventually(lambda: agent.checkpoints is not None
                          and agent.checkpoints.status("app").connections == CONNECTIONS, 20), (
            f"checkpointed: {agent.checkpoints.status('app') if agent.checkpoints else None}")

        first.stop()
        started = time.monotonic()
        second = stack.enter_context(start_target(
            "embedded", ports, output=tmp_path / "second.log", grpc_address=first.grpc_address))
        assert eventually(lambda: agent.target_status().reconnects == 1
                          and agent.target_status().connected, 30), agent.target_status()
        restored = time.monotonic() - started
        for port in guest_ports:
            uplink.send(frame(SERVER, GUEST, 8080, port, "A", 5001, 1001))
        passed = ports_seen(guest)
        print(f"\ntarget restart: {len(passed)} of {CONNECTIONS} established connections pass "
              f"on the new target; rules and connections restored {restored:.2f} s after it "
              "was started")
        assert passed == set(guest_ports)

        # The operator's log says what happened, once: not a failed checkpoint per interval.
        said = [r.getMessage() for r in caplog.records]
        failed = [m for m in said if m.startswith("connection checkpoint failed")]
        assert len(failed) == 1, failed
        assert eventually(lambda: any(r.getMessage().startswith(
            "connection checkpoint works again") for r in caplog.records), 5), said
        assert any("1 VNICs put back before any port map admits traffic" in m
                   for m in said), said
        retried = [r for r in caplog.records
                   if r.getMessage().startswith("reconnecting to") and r.levelname == "WARNING"]
        assert len({r.getMessage() for r in retried}) == len(retried), retried  # each once
        assert [m for m in said if m.startswith(f"reconnected to {first.grpc_address} after ")]
        assert f"VNIC app: {CONNECTIONS} checkpointed connections restored on the target" \
            in said, said

        # Unsolicited inbound TCP is still denied: what passed, passed as tracked.
        uplink.send(frame(SERVER, GUEST, 8080, 40_000, "A", 1, 1))
        assert 40_000 not in ports_seen(guest, 1.0)
        second.stop()


class Died(BaseException):
    """The agent "dies" in the middle of putting connections back."""


def test_a_restore_cut_short_is_finished_by_the_next_agent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent dies after the rules of a restarted target are in and before its port
    maps (while it puts the connections back): the next agent sees a target with the
    pipeline and no port map, finishes the restore, and the connections pass."""
    from pyoffload.agent.connstate import ConnectionKeeper

    with ExitStack() as stack:
        topo = stack.enter_context(Topology())
        topo.add_veth(1)
        topo.add_veth(2)
        ports = {p: pair.switch_end for p, pair in topo.pairs.items()}
        first = stack.enter_context(start_target("embedded", ports, output=tmp_path / "a.log"))
        guest, uplink = RawWire(topo.pairs[1].test_end), RawWire(topo.pairs[2].test_end)
        for wire in (guest, uplink):
            wire.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 << 20)
            stack.callback(wire.close)
        config = parse_config({
            "target": {"kind": "remote", "address": first.grpc_address},
            "vnics": [{"name": "app", "id": 4, "guest_port": 1, "uplink_port": 2}],
            "state": {"path": str(tmp_path / "state.db"), "checkpoint_interval": 0.2,
                      "reconcile_interval": 60},
        })
        guest_ports = range(30_000, 30_100)

        def agent() -> Agent:
            journal = stack.enter_context(Journal.open(config.state.path))
            return Agent(config, first.grpc_address, device_id=1, journal=journal,
                         reconnect=False)

        one = agent().start()
        one.apply("app", load_data(RULES))
        establish(guest, uplink, guest_ports)
        assert eventually(lambda: one.checkpoints is not None
                          and one.checkpoints.status("app").connections == len(guest_ports),
                          20)
        one.stop()
        first.stop()
        stack.enter_context(start_target("embedded", ports, output=tmp_path / "b.log",
                                         grpc_address=first.grpc_address))

        def die(*args: object, **kwargs: object) -> None:
            raise Died()

        with monkeypatch.context() as patch:
            patch.setattr(ConnectionKeeper, "restore", die)
            with pytest.raises(Died):
                agent().start()
        three = agent().start()
        stack.callback(three.stop)
        for port in guest_ports:
            uplink.send(frame(SERVER, GUEST, 8080, port, "A", 5001, 1001))
        assert ports_seen(guest) == set(guest_ports)
