"""State handover: an established, translated TCP connection moves from one
target to another (with another VNIC id, so every slot is recomputed) and its
packets keep flowing there; without the import they are dropped."""

from __future__ import annotations

import copy
import ipaddress
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import grpc
import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from pyoffload.agent import Agent
from pyoffload.agent.admin import SERVICE, decode_json, encode_json, serve_admin
from pyoffload.agent.config import parse_config
from pyoffload.agent.errors import AgentError
from pyoffload.agent.handover import from_document, to_document
from pyoffload.pipeline.constants import Tuple5, slot_hash
from pyoffload.playground.topology import Topology
from pyoffload.playground.traffic import RawWire
from pyoffload.rules import load_data
from pyoffload.targets import bmv2_path, start_target

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for veth pairs")

GUEST, SERVER, PUBLIC = "10.1.0.5", "192.0.2.20", "203.0.113.7"
RULES = {
    "flows": [
        {"id": "egress", "match": {"direction": "from-guest", "protocol": "tcp"},
         "config": {"services": ["conntrack", "nat"], "default_verdict": "deny"},
         "rules": [{"id": "web", "match": {"dst_ports": 8080, "ct_state": "new"},
                    "verdict": "allow-track"},
                   {"id": "snat", "snat": {"address": PUBLIC, "ports": "20000-29999"}}]},
        {"id": "ingress", "match": {"direction": "to-guest"},
         "config": {"services": ["conntrack"], "default_verdict": "deny"}},
    ],
}


def tcp(src: str, dst: str, sport: int, dport: int, flags: str, seq: int, ack: int = 0,
        data: bytes = b"") -> bytes:
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                 / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq,
                                              ack=ack) / data)


def tcp_out(wire: RawWire) -> list[TCP]:
    return [Ether(f)[TCP] for f in wire.receive() if Ether(f).haslayer(TCP)]


class Site:
    """A target with its own guest and uplink wires, and an agent for VNIC "app"."""

    def __init__(self, stack: ExitStack, tmp: Path, name: str, vnic_id: int,
                 kind: str) -> None:
        topo = stack.enter_context(Topology())
        topo.add_veth(1)
        topo.add_veth(2)
        ports = {p: pair.switch_end for p, pair in topo.pairs.items()}
        target = stack.enter_context(start_target(kind, ports, output=tmp / f"{name}.log"))
        self.guest = RawWire(topo.pairs[1].test_end)
        self.uplink = RawWire(topo.pairs[2].test_end)
        config = parse_config({
            "target": {"kind": "remote", "address": "unused"},
            "vnics": [{"name": "app", "id": vnic_id, "guest_port": 1, "uplink_port": 2}],
        })
        self.agent = Agent(config, target.grpc_address, device_id=target.device_id,
                           thrift_address=target.thrift_address).start()
        stack.callback(self.agent.stop)
        self.admin = f"unix:{tmp}/{name}-admin.sock"
        stack.callback(serve_admin(self.agent, self.admin).stop, None)
        self.agent.apply("app", load_data(RULES))


PAIRS = [("embedded", "embedded"), ("embedded", "bmv2"), ("bmv2", "embedded")]


@pytest.fixture(params=PAIRS, ids=[f"{a}-to-{b}" for a, b in PAIRS])
def sites(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Site, Site]]:
    source, destination = request.param
    if "bmv2" in (source, destination) and bmv2_path() is None:
        pytest.skip("BMv2 simple_switch_grpc is not installed: nothing to move state to or from")
    with ExitStack() as stack:
        yield (Site(stack, tmp_path, "a", 3, source),
               Site(stack, tmp_path, "b", 9, destination))


def test_established_translated_connection_moves(sites: tuple[Site, Site]) -> None:
    a, b = sites
    # Handshake on A: the SYN leaves translated; the server answers the public port.
    a.guest.send(tcp(GUEST, SERVER, 41000, 8080, "S", seq=100))
    (syn,) = tcp_out(a.uplink)
    nat_port = syn.sport
    assert 20000 <= nat_port <= 29999
    a.uplink.send(tcp(SERVER, PUBLIC, 8080, nat_port, "SA", seq=500, ack=101))
    (synack,) = tcp_out(a.guest)
    assert synack.dport == 41000
    a.guest.send(tcp(GUEST, SERVER, 41000, 8080, "A", seq=101, ack=501))
    assert len(tcp_out(a.uplink)) == 1

    # Before the import, B knows nothing of the connection: its data is dropped.
    data = tcp(GUEST, SERVER, 41000, 8080, "PA", seq=101, ack=501, data=b"hello")
    b.guest.send(data)
    assert tcp_out(b.uplink) == []

    exported = a.agent.export_state("app")
    assert len(exported) == 1
    assert exported[0].partner is not None  # the translated side travels too
    # `pyoffload migrate` moves it: export from A's agent, import into B's.
    moved = subprocess.run(
        [str(Path(sys.executable).with_name("pyoffload")), "migrate", "--vnic", "app",
         "--from", a.admin, "--to", b.admin], capture_output=True, text=True, timeout=60)
    assert moved.returncode == 0, moved.stderr
    assert "1 of 1 connection(s) of VNIC app moved" in moved.stdout

    # On B the connection continues: data out (translated the same way), reply in.
    b.guest.send(data)
    (out,) = tcp_out(b.uplink)
    assert (out.sport, out.dport, bytes(out.payload)) == (nat_port, 8080, b"hello")
    b.uplink.send(tcp(SERVER, PUBLIC, 8080, nat_port, "A", seq=501, ack=106))
    back = tcp_out(b.guest)
    assert [(t.sport, t.dport, str(t.flags)) for t in back] == [(8080, 41000, "A")], \
        [t.summary() for t in back]
    (conn,) = b.agent.connections("app")
    assert (conn.src, conn.dst, conn.state) == (GUEST, SERVER, "TCP_ESTABLISHED")


Endpoint = tuple[str, int]


def _open(site: Site, guest: Endpoint) -> None:
    """An established connection from ``guest`` to SERVER:8080 through ``site``;
    SNAT rewrites it, so it has two slots."""
    site.guest.send(tcp(guest[0], SERVER, guest[1], 8080, "S", seq=100))
    (syn,) = tcp_out(site.uplink)
    site.uplink.send(tcp(SERVER, PUBLIC, 8080, syn.sport, "SA", seq=500, ack=101))
    assert len(tcp_out(site.guest)) == 1
    site.guest.send(tcp(guest[0], SERVER, guest[1], 8080, "A", seq=101, ack=501))
    assert len(tcp_out(site.uplink)) == 1


def _passes(site: Site, guest: Endpoint) -> bool:
    site.guest.send(tcp(guest[0], SERVER, guest[1], 8080, "PA", seq=101, ack=501, data=b"x"))
    return len(tcp_out(site.uplink)) == 1


def _colliding_guests(vnic_id: int, slots: int) -> list[Endpoint]:
    """Two guest endpoints whose connections to SERVER:8080 share a hash slot on ``vnic_id``
    (addresses vary too: CRC-32 over ports alone never collides modulo a power of two)."""
    server = int(ipaddress.IPv4Address(SERVER))
    by_slot: dict[int, Endpoint] = {}
    for host in range(2, 250):
        address = f"10.1.{host}.5"
        for sport in range(30000, 31000):
            key = Tuple5(protocol=6, lo_addr=int(ipaddress.IPv4Address(address)),
                         hi_addr=server, lo_port=sport, hi_port=8080)
            slot = slot_hash(vnic_id, key)[0] % slots
            if slot in by_slot:
                return [by_slot[slot], (address, sport)]
            by_slot[slot] = (address, sport)
    raise AssertionError("no colliding endpoints found")


@pytest.fixture
def embedded_sites(tmp_path: Path) -> Iterator[tuple[Site, Site]]:
    with ExitStack() as stack:
        yield (Site(stack, tmp_path, "a", 3, "embedded"),
               Site(stack, tmp_path, "b", 9, "embedded"))


def test_connections_colliding_on_the_destination_get_overflow_slots(
        embedded_sites: tuple[Site, Site]) -> None:
    a, b = embedded_sites
    guests = _colliding_guests(9, b.agent.slow_path.slots.first)
    for guest in guests:
        _open(a, guest)
    exported = a.agent.export_state("app")
    assert len(exported) == 2

    result = b.agent.import_state("app", exported)
    assert (result.imported, result.present, result.skipped) == (2, 0, ())
    assert result.overflow >= 1  # the two guest-side tuples share one slot on B
    assert all(_passes(b, guest) for guest in guests)

    again = b.agent.import_state("app", exported)  # a second pass adds nothing
    assert (again.imported, again.present) == (0, 2)
    assert all(_passes(b, guest) for guest in guests)


def test_a_failed_import_keeps_nothing(embedded_sites: tuple[Site, Site]) -> None:
    a, b = embedded_sites
    first, second = (GUEST, 41000), (GUEST, 41001)
    _open(a, first)
    _open(a, second)
    good = to_document(a.agent.export_state("app"))
    bad = copy.deepcopy(good)
    bad["connections"][0][1] = 2**60  # remaining time past what ct_expires holds: refused
    with pytest.raises(AgentError) as failed:
        b.agent.import_chunks("app", [from_document(good), from_document(bad)])
    assert "nothing was kept" in failed.value.message
    assert not _passes(b, first) and not _passes(b, second)  # the first chunk was undone
    assert b.agent.slow_path.slots.used == 0

    result = b.agent.import_state("app", from_document(good))  # and it can be done again
    assert result.imported == 2 and _passes(b, first) and _passes(b, second)


def test_malformed_exports_are_refused_by_name(embedded_sites: tuple[Site, Site]) -> None:
    a, _b = embedded_sites
    _open(a, (GUEST, 41000))
    document = to_document(a.agent.export_state("app"))
    broken = copy.deepcopy(document)
    broken["connections"][0][3] = "10.1.0.5"
    with pytest.raises(ValueError, match="connection 0: lo_addr must be a non-negative integer"):
        from_document(broken)
    with pytest.raises(ValueError, match="format"):
        from_document({**document, "format": "something else"})


def test_a_streamed_import_that_breaks_off_keeps_nothing(
        embedded_sites: tuple[Site, Site]) -> None:
    a, b = embedded_sites
    first, second = (GUEST, 41000), (GUEST, 41001)
    _open(a, first)
    _open(a, second)
    document = to_document(a.agent.export_state("app"))
    chunk = {"vnic": "app", **document, "connections": document["connections"][:1]}
    rest = {"vnic": "app", **document, "connections": document["connections"][1:]}
    malformed = {**rest, "connections": [["egress", "soon"]]}
    with grpc.insecure_channel(b.admin) as channel:
        stream = channel.stream_unary(f"/{SERVICE}/ImportStream", request_serializer=encode_json,
                                      response_deserializer=decode_json)
        for broken, code, says in (
                (malformed, grpc.StatusCode.INVALID_ARGUMENT, "connection 0: a connection row"),
                ({"vnic": "app", "abort": "UNAVAILABLE: source gone"}, grpc.StatusCode.ABORTED,
                 "the export broke off (UNAVAILABLE: source gone)")):
            with pytest.raises(grpc.RpcError) as failed:
                stream(iter([chunk, broken]), timeout=30)
            assert failed.value.code() == code
            assert says in str(failed.value.details())
            assert "nothing was kept" in str(failed.value.details())
            assert not _passes(b, first)  # the first chunk was imported, then undone
        result = stream(iter([chunk, rest]), timeout=30)
    assert result["imported"] == 2
    assert _passes(b, first) and _passes(b, second)
