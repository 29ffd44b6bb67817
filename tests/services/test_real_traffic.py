"""Real kernel TCP through the pipeline with the stateful firewall and SNAT on.

A client in a guest namespace (10.1.0.5, private) connects to a server in an
uplink namespace (192.0.2.20); the VNIC translates the guest's connections to
203.0.113.7. Handshake, data both ways and close work; the server sees the
translated address; an unsolicited connection from the uplink is refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyoffload.agent import Agent
from pyoffload.agent.config import parse_config
from pyoffload.playground.topology import Topology, run_ip
from pyoffload.playground.traffic import EchoServer, echo_exchange, netns_cmd
from pyoffload.rules import load_data
from pyoffload.targets import RunningTarget, start_target

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")

GUEST, SERVER, PUBLIC = "10.1.0.5", "192.0.2.20", "203.0.113.7"
RULES = {
    "flows": [
        {"id": "egress", "match": {"direction": "from-guest", "src": "10.1.0.0/24",
                                   "protocol": "tcp"},
         "config": {"services": ["conntrack", "nat", "count"], "default_verdict": "deny"},
         "rules": [
             {"id": "web", "match": {"dst_ports": 8080}, "verdict": "allow-track"},
             {"id": "snat", "snat": {"address": PUBLIC, "ports": "20000-29999"}},
         ]},
        {"id": "ingress", "match": {"direction": "to-guest"},
         "config": {"services": ["conntrack"], "default_verdict": "deny"}},
    ],
}

PEER_SCRIPT = r"""
import socket, sys
s = socket.socket()
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
s.settimeout(20)
print("ready", flush=True)
c, peer = s.accept()
data = c.recv(100)
c.sendall(("peer " + peer[0]).encode())
c.close()
"""


@pytest.fixture
def network(tmp_path: Path) -> Iterator[tuple[str, str, RunningTarget]]:
    with Topology() as topo:
        guest = topo.add_namespace("g")
        uplink = topo.add_namespace("u")
        topo.add_veth(1, test_netns=guest, mtu=1500)
        topo.add_veth(2, test_netns=uplink, mtu=1500)
        g_if, u_if = topo.pairs[1].test_end, topo.pairs[2].test_end
        run_ip("addr", "add", f"{GUEST}/24", "dev", g_if, netns=guest)
        run_ip("route", "add", f"{SERVER}/32", "dev", g_if, netns=guest)
        run_ip("addr", "add", f"{SERVER}/24", "dev", u_if, netns=uplink)
        # The uplink reaches the public address on its link: replies go back
        # through the VNIC to the guest's MAC, where the pipeline untranslates them.
        guest_mac = run_ip("-br", "link", "show", g_if, netns=guest).split()[2]
        run_ip("route", "add", f"{PUBLIC}/32", "dev", u_if, netns=uplink)
        run_ip("route", "add", f"{GUEST}/32", "dev", u_if, netns=uplink)
        run_ip("neigh", "add", PUBLIC, "lladdr", guest_mac, "dev", u_if, netns=uplink)
        ports = {p: pair.switch_end for p, pair in topo.pairs.items()}
        with start_target("embedded", ports, output=tmp_path / "target.log") as target:
            yield guest, uplink, target


def test_tcp_through_stateful_firewall_and_snat(
        network: tuple[str, str, RunningTarget]) -> None:
    guest, uplink, target = network
    config = parse_config({
        "target": {"kind": "remote", "address": "unused"},
        "vnics": [{"name": "app", "id": 4, "guest_port": 1, "uplink_port": 2}],
    })
    agent = Agent(config, target.grpc_address, device_id=target.device_id).start()
    try:
        agent.apply("app", load_data(RULES))
        server = subprocess.Popen(
            netns_cmd(uplink, sys.executable, "-c", PEER_SCRIPT, SERVER, "8080"),
            stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"
            reply = echo_exchange(guest, "tcp", SERVER, 8080, timeout=10)
            # handshake, data both ways and close went through; the server saw
            # the connection come from the public address, not the guest's
            assert reply.ok, reply
            assert reply.reply == f"peer {PUBLIC}"
        finally:
            server.kill()
            server.wait()
        stats = agent.stats("app")
        assert dict(stats.flows)["egress"][0] >= 5  # SYN, ACK, data, FIN, ACK at least
        # The connection is listed (like conntrack -L), closed on both sides, translated.
        # The pipeline reports new connections in digest lists, a little later.
        deadline = time.monotonic() + 10
        while not agent.slow_path.connections.known() and time.monotonic() < deadline:
            time.sleep(0.05)
        (conn,) = [c for c in agent.connections("app") if c.dport == 8080]
        assert (conn.protocol, conn.src, conn.dst) == ("tcp", GUEST, SERVER)
        assert conn.state == "TCP_CLOSING"
        assert conn.translated_src is not None and conn.translated_src.startswith(PUBLIC + ":")
        assert 0 < conn.expires_in_s <= 120
        # An unsolicited connection from the uplink to the guest is refused.
        with EchoServer(guest, "tcp", GUEST, 2222):
            assert not echo_exchange(uplink, "tcp", GUEST, 2222, timeout=2).ok
        # A port the rules do not allow is refused too.
        assert not echo_exchange(guest, "tcp", SERVER, 9090, timeout=2).ok
    finally:
        agent.stop()
