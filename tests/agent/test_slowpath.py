"""Conntrack collisions: the slow path gives the second connection an overflow
slot and re-injects its first packet; both connections are then tracked."""

from __future__ import annotations

import ipaddress
import logging
import os
import re

import grpc
import pytest

from pyoffload.agent import Agent
from pyoffload.agent.config import parse_config
from pyoffload.agent.errors import AgentError
from pyoffload.agent.handover import SlotState
from pyoffload.agent.slowpath import normalised_tuple
from pyoffload.p4runtime import P4RuntimeClient
from pyoffload.pipeline.constants import Tuple5, slot_hash
from pyoffload.rules import load_data
from pyoffload.targets import RunningTarget
from tests.agent.conftest import Wire, udp
from tests.agent.service import poll

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for veth pairs")

GUEST = "10.0.0.1"
VNIC_ID = 3
RULES = {
    "flows": [
        {"id": "out", "match": {"direction": "from-guest", "protocol": "udp"},
         "config": {"services": ["conntrack"], "default_verdict": "allow-track"}},
        {"id": "in", "match": {"direction": "to-guest"},
         "config": {"services": ["conntrack"], "default_verdict": "deny"}},
    ],
}


def ct_index(remote: str, sport: int, slots: int) -> int:
    """The pipeline's hash slot of a UDP guest:sport -> remote:53 tuple."""
    (lo_addr, lo_port), (hi_addr, hi_port) = sorted(
        ((int(ipaddress.ip_address(GUEST)), sport), (int(ipaddress.ip_address(remote)), 53)))
    tuple5 = SlotState(protocol=17, lo_addr=lo_addr, hi_addr=hi_addr, lo_port=lo_port,
                       hi_port=hi_port, info=0, xlate=(0, 0, 0, 0))
    return slot_hash(VNIC_ID, tuple5)[0] % slots


def colliding_flows(slots: int) -> tuple[tuple[str, int], tuple[str, int]]:
    """Two (remote, source port) pairs whose connections hash to the same slot.

    Varying one 16-bit field alone never collides (a CRC is injective on a
    short window), so the remote address varies too."""
    seen: dict[int, tuple[str, int]] = {}
    for host in range(1, 255):
        remote = f"10.0.1.{host}"
        for sport in range(40000, 40400):
            index = ct_index(remote, sport, slots)
            if index in seen:
                return seen[index], (remote, sport)
            seen[index] = (remote, sport)
    raise AssertionError("no collision found")


def _agent(target: RunningTarget) -> Agent:
    """An agent with VNIC ``v`` (guest port 1, uplink port 2), started on ``target``."""
    config = parse_config({
        "target": {"kind": "remote", "address": "unused"},
        "vnics": [{"name": "v", "id": VNIC_ID, "guest_port": 1, "uplink_port": 2}],
    })
    return Agent(config, target.grpc_address, device_id=target.device_id).start()


def test_colliding_connection_gets_an_overflow_slot(
        wired: tuple[RunningTarget, Wire, Wire]) -> None:
    target, guest, uplink = wired
    agent = _agent(target)
    try:
        agent.apply("v", load_data(RULES))
        slots = agent.slow_path.slots.first  # the hash slots come before the overflow ones
        (remote_a, port_a), (remote_b, port_b) = colliding_flows(slots)
        guest.send(udp(GUEST, remote_a, port_a, 53))
        assert (port_a, 53) in uplink.udp_ports()
        guest.send(udp(GUEST, remote_b, port_b, 53))
        assert (port_b, 53) in uplink.udp_ports()
        assert agent.slow_path.stats.overflow_installed == 1
        # Both connections are tracked: their replies come in, an unrelated datagram does not.
        uplink.send(udp(remote_b, GUEST, 53, port_b))
        uplink.send(udp(remote_a, GUEST, 53, port_a))
        uplink.send(udp(remote_a, GUEST, 53, 999))
        assert guest.udp_ports() == {(53, port_a), (53, port_b)}
    finally:
        agent.stop()


def test_while_another_controller_is_primary_the_agent_says_so(
        wired: tuple[RunningTarget, Wire, Wire], caplog: pytest.LogCaptureFixture) -> None:
    """Another controller takes the primary role: the log says so at once, reading the
    connections says why it cannot (the clock probe is a packet-out, the primary's alone:
    it used to wait 2 s for a clock that never moved), and once that controller leaves
    the log says the agent is primary again and the connections read as before."""
    target, guest, uplink = wired
    caplog.set_level(logging.INFO, logger="pyoffload.agent.session")
    agent = _agent(target)
    try:
        agent.apply("v", load_data(RULES))
        guest.send(udp(GUEST, "10.0.1.9", 40000, 53))
        assert (40000, 53) in uplink.udp_ports()
        assert len(agent.connections("v")) == 1

        def said(text: str) -> list[str]:
            return [r.getMessage() for r in caplog.records if text in r.getMessage()]

        with P4RuntimeClient(target.grpc_address, device_id=target.device_id,
                             election_id=10) as rogue:
            assert rogue.primary
            [lost] = poll(lambda: said("another P4Runtime controller is primary"), 10,
                          "the log to say another controller took the primary role")
            assert "(election id 10)" in lost and "refused meanwhile" in lost
            with pytest.raises(AgentError) as refused:
                agent.connections("v")
            assert refused.value.code == grpc.StatusCode.UNAVAILABLE
            assert "another controller (election id 10) is primary for the target, and " \
                "only the primary may send the packet that reads the pipeline's clock" \
                in str(refused.value)
        [back] = poll(lambda: said("primary again on the target"), 10,
                      "the log to say the agent is primary again")
        assert re.search(r"after \d+\.\d s as a backup; repairing", back), back
        assert len(agent.connections("v")) == 1
    finally:
        agent.stop()


def test_normalised_tuple_orders_endpoints_like_the_pipeline() -> None:
    out = normalised_tuple(udp(GUEST, "10.0.1.9", 40000, 53))
    back = normalised_tuple(udp("10.0.1.9", GUEST, 53, 40000))
    assert out == back == Tuple5(protocol=17, lo_addr=int(ipaddress.ip_address(GUEST)),
                                 hi_addr=int(ipaddress.ip_address("10.0.1.9")),
                                 lo_port=40000, hi_port=53)
    assert normalised_tuple(b"\x00" * 10) is None
