"""The P4Runtime entries both targets get in the differential test.

VNIC 1 (ports 1 guest, 2 uplink) is the demo's stateful firewall as it was
written by hand before the agent existed (``pyoffload.demo.demo_entities``,
now being replaced by the agent; copied here so the test does not depend on
the demo's insides): default deny, outbound tracked, rules for TCP 8080
(track), 9090 (deny), UDP 5353 (track), ICMP (track). VNIC 2 (ports 3 guest, 4 uplink) adds
what the demo does not exercise: NAT (SNAT with a hashed port, DNAT with and
without a port), reject (TCP reset back to the sender), punt, and a default
allow-and-track verdict. Names come from ``pyoffload.compiler.names``.
"""

from __future__ import annotations

import ipaddress

from finsy import P4TableAction, P4TableEntry, P4TableMatch

from pyoffload.pipeline import names
from pyoffload.pipeline.constants import Policy
from pyoffload.pipeline.entries import port_map_entries
from pyoffload.rules import Verdict

VNIC2 = 2
VNIC2_GUEST_PORT = 3
VNIC2_UPLINK_PORT = 4
SNAT_ADDR = "198.51.100.1"
DNAT_VIP = "203.0.113.10"
DNAT_BACKEND = "10.9.9.9"
OUT_FLOW, IN_FLOW = 3, 4

#: switch port -> the port its traffic goes to (both VNICs)
PEERS = {1: 2, 2: 1, VNIC2_GUEST_PORT: VNIC2_UPLINK_PORT, VNIC2_UPLINK_PORT: VNIC2_GUEST_PORT}
#: VNIC -> (guest port, uplink port)
SIDES = {1: (1, 2), VNIC2: (VNIC2_GUEST_PORT, VNIC2_UPLINK_PORT)}


def _ternary(value: int, mask: int) -> str:
    return f"{value}/&{mask}"


def _v4(address: str) -> int:
    return int(ipaddress.IPv4Address(address))


def _range(low: int, high: int) -> str:
    return f"{low}...{high}"


def _vnic(vnic: int, ports: tuple[int, int], policy: int) -> list[P4TableEntry]:
    """Port map entries of a VNIC: guest side and uplink side, each the other's peer."""
    guest, uplink = ports
    return port_map_entries(vnic_id=vnic, guest_port=guest, uplink_port=uplink,
                            policy=Policy(policy))


def _flow(vnic: int, flow: int, direction: int, services: int, verdict: int
          ) -> list[P4TableEntry]:
    """A flow of every packet in one direction, and its configuration."""
    return [
        P4TableEntry(
            names.FLOW_CLASSIFIER,
            match=P4TableMatch(vnic_id=vnic, direction=_ternary(direction, 1)),
            action=P4TableAction(names.SET_FLOW, flow_id=flow), priority=10),
        P4TableEntry(
            names.FLOW_CONFIG,
            match=P4TableMatch(vnic_id=vnic, flow_id=flow),
            action=P4TableAction(names.SET_FLOW_CONFIG, services=services, ct_profile=0,
                                 default_verdict=verdict, meter_index=0,
                                 counter_index=flow, mirror_session=0)),
    ]


def _acl(vnic: int, flow: int, priority: int, proto: int, port: int | None,
         verdict: Verdict) -> P4TableEntry:
    match = P4TableMatch(vnic_id=vnic, flow_id=flow, protocol=_ternary(proto, 0xFF))
    if port is not None:
        match["dst_port"] = _range(port, port)
    return P4TableEntry(names.ACL, match=match, action=P4TableAction(names.ACL_ACTIONS[verdict]),
                        priority=priority)


def vnic1_entities(const: dict[str, int]) -> list[P4TableEntry]:
    tracked = const["SVC_CONNTRACK"] | const["SVC_COUNT"]
    return [
        *_vnic(1, SIDES[1], const["POLICY_DENY"]),
        *_flow(1, 1, const["DIR_FROM_GUEST"], tracked, const["VERDICT_DENY"]),
        *_flow(1, 2, const["DIR_TO_GUEST"], tracked, const["VERDICT_DENY"]),
        _acl(1, 1, 30, 6, 8080, Verdict.ALLOW_TRACK),
        _acl(1, 1, 20, 6, 9090, Verdict.DENY),
        _acl(1, 1, 20, 17, 5353, Verdict.ALLOW_TRACK),
        _acl(1, 1, 10, 1, None, Verdict.ALLOW_TRACK),
    ]


def vnic2_entities(const: dict[str, int]) -> list[P4TableEntry]:
    tracked = const["SVC_CONNTRACK"] | const["SVC_COUNT"]
    entries = [
        *_vnic(VNIC2, SIDES[VNIC2], const["POLICY_ALLOW"]),
        *_flow(VNIC2, OUT_FLOW, const["DIR_FROM_GUEST"], tracked | const["SVC_NAT"],
               const["VERDICT_ALLOW_TRACK"]),
        *_flow(VNIC2, IN_FLOW, const["DIR_TO_GUEST"], tracked, const["VERDICT_DENY"]),
        _acl(VNIC2, OUT_FLOW, 30, 6, 23, Verdict.DENY),
        _acl(VNIC2, OUT_FLOW, 30, 6, 25, Verdict.REJECT),
        _acl(VNIC2, OUT_FLOW, 30, 6, 9090, Verdict.REJECT),
        _acl(VNIC2, OUT_FLOW, 20, 17, 9999, Verdict.PUNT),
        _acl(VNIC2, OUT_FLOW, 10, 1, None, Verdict.ALLOW),
    ]
    entries += [
        P4TableEntry(
            names.NAT,
            match=P4TableMatch(vnic_id=VNIC2, flow_id=OUT_FLOW, protocol=_ternary(6, 0xFF),
                               dst_port=_range(443, 443)),
            action=P4TableAction(names.NAT_SNAT, addr=_v4(SNAT_ADDR), port_min=20000,
                                 port_max=20999),
            priority=10),
        P4TableEntry(
            names.NAT,
            match=P4TableMatch(vnic_id=VNIC2, flow_id=OUT_FLOW, protocol=_ternary(6, 0xFF),
                               dst_addr=_ternary(_v4(DNAT_VIP), 0xFFFFFFFF),
                               dst_port=_range(80, 80)),
            action=P4TableAction(names.NAT_DNAT, addr=_v4(DNAT_BACKEND), port=8080),
            priority=20),
        P4TableEntry(
            names.NAT,
            match=P4TableMatch(vnic_id=VNIC2, flow_id=OUT_FLOW, protocol=_ternary(17, 0xFF),
                               dst_port=_range(53, 53)),
            action=P4TableAction(names.NAT_DNAT, addr=_v4(DNAT_BACKEND), port=0),
            priority=20),
    ]
    return entries


def differential_entities(const: dict[str, int]) -> list[P4TableEntry]:
    """Everything both targets get, in insertion order."""
    return [*vnic1_entities(const), *vnic2_entities(const)]
