"""The P4Runtime names of the pipeline, in one place.

They are the ``@name(".vnic.…")`` annotations of ``p4src/``. ``check_names``
compares every one with a P4Info (the agent does it when it starts, a test does
it for the committed builds), so a renamed table fails there, naming the
closest known name, and not at the first write.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from finsy import P4Schema

from pyoffload.errors import PyoffloadError
from pyoffload.rules import Verdict

PORT_MAP = "vnic.port_map"
SET_VNIC = "vnic.set_vnic"
FLOW_CLASSIFIER = "vnic.flow_classifier"
SET_FLOW = "vnic.set_flow"
FLOW_CONFIG = "vnic.flow_config"
SET_FLOW_CONFIG = "vnic.set_flow_config"
ACL = "vnic.acl"
ACL_COUNTER = "vnic.acl_counter"
ACL_ACTIONS = {
    Verdict.ALLOW: "vnic.acl_allow",
    Verdict.ALLOW_TRACK: "vnic.acl_allow_track",
    Verdict.DENY: "vnic.acl_deny",
    Verdict.REJECT: "vnic.acl_reject",
    Verdict.PUNT: "vnic.acl_punt",
}
NAT = "vnic.nat"
NAT_SNAT = "vnic.nat_snat"
NAT_DNAT = "vnic.nat_dnat"
LB_VIP = "vnic.lb_vip"
LB_SELECTOR = "vnic.lb_selector"
LB_SET_BACKEND = "vnic.lb_set_backend"
CT_TIMEOUT = "vnic.ct_timeout"
CT_SET_TIMEOUT = "vnic.ct_set_timeout"
CT_OVERFLOW = "vnic.ct_overflow"
CT_USE_OVERFLOW_SLOT = "vnic.ct_use_overflow_slot"
FLOW_METER = "vnic.flow_meter"
FLOW_COUNTER = "vnic.flow_counter"
DROP_COUNTER = "vnic.drop_counter"
EARLY_DROP_COUNTER = "vnic.early_drop_counter"
CT_EVENTS = "vnic.ct_events"
CT_SIGNATURE = "vnic.ct_signature"
CT_INFO = "vnic.ct_info"
CT_FLOW = "vnic.ct_flow"
CT_EXPIRES = "vnic.ct_expires"
CT_PARTNER = "vnic.ct_partner"
CT_XLATE = ("vnic.ct_xlate_src_addr", "vnic.ct_xlate_src_port", "vnic.ct_xlate_dst_addr",
            "vnic.ct_xlate_dst_port")
"""The conntrack registers of one slot (stages/conntrack.p4), the rewrite last."""
CLOCK = "vnic.clock"

ACL_METER = "vnic.acl_meter"
CT_NEW_DIGEST = "ct_new_digest_t"
"""The digest the pipeline sends for every connection it starts tracking."""
CT_NEW_DIGEST_FIELDS = ("vnic_id", "flow_id", "protocol", "lo_addr", "hi_addr", "lo_port",
                        "hi_port", "slot")
"""The fields the agent reads from it (their order comes from the P4Info)."""
PACKET_IN = "packet_in"
PACKET_OUT = "packet_out"

ALL_TABLES = (PORT_MAP, FLOW_CLASSIFIER, FLOW_CONFIG, ACL, NAT, LB_VIP, CT_TIMEOUT, CT_OVERFLOW)
ALL_ACTIONS = (SET_VNIC, SET_FLOW, SET_FLOW_CONFIG, *ACL_ACTIONS.values(), NAT_SNAT, NAT_DNAT,
               LB_SET_BACKEND, CT_SET_TIMEOUT, CT_USE_OVERFLOW_SLOT)
ALL_REGISTERS = (CT_SIGNATURE, CT_INFO, CT_FLOW, CT_EXPIRES, CT_PARTNER, *CT_XLATE, CLOCK)
ALL_COUNTERS = (FLOW_COUNTER, DROP_COUNTER, EARLY_DROP_COUNTER, CT_EVENTS)
ALL_METERS = (FLOW_METER,)
ALL_DIRECT_COUNTERS = (ACL_COUNTER,)
ALL_DIRECT_METERS = (ACL_METER,)
ALL_ACTION_PROFILES = (LB_SELECTOR,)
ALL_DIGESTS = (CT_NEW_DIGEST,)
ALL_PACKET_HEADERS = (PACKET_IN, PACKET_OUT)


class PipelineMismatch(PyoffloadError):
    """The P4 program lacks a name or layout the control plane relies on."""


def _p4info_names(schema: P4Schema) -> dict[str, set[str]]:
    info = schema.p4info
    groups: dict[str, Iterable[Any]] = {
        "table": info.tables, "action": info.actions, "register": info.registers,
        "counter": info.counters, "meter": info.meters, "direct counter": info.direct_counters,
        "direct meter": info.direct_meters, "action profile": info.action_profiles,
        "digest": info.digests, "packet header": info.controller_packet_metadata,
    }
    return {kind: {item.preamble.name for item in items} for kind, items in groups.items()}


EXPECTED: tuple[tuple[str, Iterable[str]], ...] = (
    ("table", ALL_TABLES), ("action", ALL_ACTIONS), ("register", ALL_REGISTERS),
    ("counter", ALL_COUNTERS), ("meter", ALL_METERS), ("direct counter", ALL_DIRECT_COUNTERS),
    ("direct meter", ALL_DIRECT_METERS), ("action profile", ALL_ACTION_PROFILES),
    ("digest", ALL_DIGESTS), ("packet header", ALL_PACKET_HEADERS),
)
"""Every name above, with the kind of P4Info object it must be."""


def check_names(schema: P4Schema) -> None:
    """Every name the control plane uses is in the P4Info as the right kind of object,
    or ``PipelineMismatch`` naming each missing one and the closest name the P4Info has."""
    known = _p4info_names(schema)
    missing = []
    for kind, wanted in EXPECTED:
        for name in wanted:
            if name not in known[kind]:
                close = difflib.get_close_matches(name, sorted(known[kind]), n=1)
                hint = f" (closest: {close[0]!r})" if close else ""
                missing.append(f"{kind} {name!r}{hint}")
    if not missing and CT_NEW_DIGEST in known["digest"]:
        members = tuple(schema.digests[CT_NEW_DIGEST].type_spec.members)  # type: ignore[union-attr]
        if sorted(members) != sorted(CT_NEW_DIGEST_FIELDS):
            missing.append(f"digest {CT_NEW_DIGEST!r} with the fields "
                           f"{', '.join(CT_NEW_DIGEST_FIELDS)} (it has {', '.join(members)})")
    if missing:
        raise PipelineMismatch(
            "the P4 program is not the one pyoffload was built for: its P4Info lacks "
            + "; ".join(missing)
        )
