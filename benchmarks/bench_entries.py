"""The entries every benchmark installs, as finsy entities (names, not ids).

The demo's VNIC (ports 1 guest, 2 uplink, default deny, outbound flow
tracked) plus ``rules`` ACL rules on the outbound flow: all but the last
match nothing the benchmark sends (distinct destination ports the traffic
avoids), so a packet that reaches the ACL is compared with a full table; the
last allows-and-tracks the benchmark's traffic. ``engine_install`` writes the
same entities straight into an engine ``Pipeline`` for the in-memory bench.
"""

from __future__ import annotations

from finsy import P4Schema, P4TableAction, P4TableEntry, P4TableMatch
from finsy.proto import p4r

from pyoffload.embedded.engine import Exact, KeyValue, PipelineState, Range, Ternary, Wildcard
from pyoffload.pipeline import names
from pyoffload.pipeline.constants import Policy
from pyoffload.pipeline.entries import port_map_entries

GUEST_PORT, UPLINK_PORT, VNIC = 1, 2, 1
#: The destination port of the benchmark traffic; filler rules avoid it.
TRAFFIC_DPORT = 5353


def vnic_entities(const: dict[str, int], rules: int = 1000) -> list[P4TableEntry]:
    tracked = const["SVC_CONNTRACK"] | const["SVC_COUNT"]
    entries = port_map_entries(vnic_id=VNIC, guest_port=GUEST_PORT, uplink_port=UPLINK_PORT,
                               policy=Policy.DENY)
    for flow, direction in ((1, const["DIR_FROM_GUEST"]), (2, const["DIR_TO_GUEST"])):
        entries.append(P4TableEntry(
            names.FLOW_CLASSIFIER,
            match=P4TableMatch(vnic_id=VNIC, direction=f"{direction}/&1"),
            action=P4TableAction(names.SET_FLOW, flow_id=flow), priority=10))
        entries.append(P4TableEntry(
            names.FLOW_CONFIG, match=P4TableMatch(vnic_id=VNIC, flow_id=flow),
            action=P4TableAction(names.SET_FLOW_CONFIG, services=tracked, ct_profile=0,
                                 default_verdict=const["VERDICT_DENY"], meter_index=0,
                                 counter_index=flow, mirror_session=0)))
    entries += acl_rules(rules)
    return entries


def acl_rules(count: int, *, first_port: int = 10000, flow: int = 1) -> list[P4TableEntry]:
    """``count`` rules: ``count - 2`` filler denies, then allow-track for TCP and UDP traffic."""
    rules = [
        P4TableEntry(
            names.ACL,
            match=P4TableMatch(vnic_id=VNIC, flow_id=flow, protocol="17/&255",
                               dst_port=f"{first_port + i}...{first_port + i}"),
            action=P4TableAction("vnic.acl_deny"), priority=100 + i)
        for i in range(max(count - 2, 0))
    ]
    for proto in (6, 17):
        rules.append(P4TableEntry(
            names.ACL,
            match=P4TableMatch(vnic_id=VNIC, flow_id=flow, protocol=f"{proto}/&255",
                               dst_port=f"{TRAFFIC_DPORT}...{TRAFFIC_DPORT}"),
            action=P4TableAction("vnic.acl_allow_track"), priority=1 + proto))
    return rules


def _key_value(match: p4r.FieldMatch) -> KeyValue:
    kind = match.WhichOneof("field_match_type")
    if kind == "exact":
        return Exact(int.from_bytes(match.exact.value, "big"))
    if kind == "ternary":
        return Ternary(int.from_bytes(match.ternary.value, "big"),
                       int.from_bytes(match.ternary.mask, "big"))
    if kind == "range":
        return Range(int.from_bytes(match.range.low, "big"),
                     int.from_bytes(match.range.high, "big"))
    raise ValueError(f"match kind {kind} not used by the benchmarks")


def engine_install(state: PipelineState, schema: P4Schema,
                   entries: list[P4TableEntry]) -> None:
    """Write ``entries`` into an engine directly (no P4Runtime): decode by the P4Info."""
    for entry in entries:
        msg = entry.encode(schema).table_entry
        table = schema.tables[msg.table_id]
        by_id = {m.field_id: m for m in msg.match}
        key = [
            _key_value(by_id[f.id]) if f.id in by_id else Wildcard()
            for f in table.match_fields
        ]
        action = schema.actions[msg.action.action.action_id]
        args = [int.from_bytes(p.value, "big")
                for p in sorted(msg.action.action.params, key=lambda p: p.param_id)]
        state.table(table.name).add(key, action.name, args, msg.priority)
