"""The tracked-connection quota: at the quota the pipeline tracks no new connection
of the VNIC (its first packet is dropped and counted), established ones carry on,
the guest is told; once connections end, new ones are admitted again."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from guest_shim import offload_pb2 as pb
from pyoffload.agent import Agent
from pyoffload.agent.config import parse_config
from pyoffload.rules import load_data
from pyoffload.targets import RunningTarget
from tests.agent.conftest import Wire, udp
from tests.agent.service import eventually

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for veth pairs")

GUEST = "10.0.0.1"
QUOTA = 3
RULES = {
    "flows": [
        {"id": "out", "match": {"direction": "from-guest", "protocol": "udp"},
         "config": {"services": ["conntrack"], "default_verdict": "allow-track",
                    "timeouts": {"udp_new": 2, "udp_established": 2}}},
        {"id": "in", "match": {"direction": "to-guest"},
         "config": {"services": ["conntrack"], "default_verdict": "deny"}},
    ],
}


def test_new_connections_are_refused_at_the_quota_until_some_end(
        wired: tuple[RunningTarget, Wire, Wire]) -> None:
    target, guest, uplink = wired
    config = parse_config({
        "target": {"kind": "remote", "address": "unused"},
        "vnics": [{"name": "v", "id": 4, "guest_port": 1, "uplink_port": 2,
                   "quotas": {"tracked_connections": QUOTA}}],
    })
    agent = Agent(config, target.grpc_address, device_id=target.device_id).start()
    events: list[pb.Event] = []

    async def collect() -> None:  # a watcher, as the guest channel's Watch is
        async for event in agent.events.stream("v"):
            events.append(event)

    watcher = threading.Thread(target=lambda: asyncio.run(collect()), daemon=True)
    watcher.start()
    try:
        agent.apply("v", load_data(RULES))
        for sport in range(40000, 40000 + QUOTA):
            guest.send(udp(GUEST, "10.0.1.9", sport, 53))
            assert (sport, 53) in uplink.udp_ports()
        assert eventually(lambda: agent.state("v").at_connection_quota, 5), \
            "the agent did not notice the VNIC reached its quota"
        assert eventually(lambda: any(e.kind == pb.Event.KIND_QUOTA_REACHED
                                      and e.quota == "tracked_connections" for e in events), 2)

        guest.send(udp(GUEST, "10.0.1.9", 41000, 53))  # one too many: not tracked, dropped
        assert uplink.udp_ports(1.0) == set()
        assert agent.drops()["CT_QUOTA"] == 1
        guest.send(udp(GUEST, "10.0.1.9", 40000, 53))  # a tracked one carries on
        assert (40000, 53) in uplink.udp_ports()

        # The connections time out (2 s): new ones are admitted again.
        assert eventually(lambda: not agent.state("v").at_connection_quota, 10)
        guest.send(udp(GUEST, "10.0.1.9", 41000, 53))
        assert (41000, 53) in uplink.udp_ports()
    finally:
        agent.stop()  # (ends the watcher's stream)
