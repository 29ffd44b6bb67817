"""The P4Runtime names the compiler writes, in one place.

They are the ``@name(".vnic.…")`` annotations of ``p4src/``; a test checks
every one against the compiled P4Info, so a renamed table fails there and not
at run time.
"""

from __future__ import annotations

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

ALL_TABLES = (PORT_MAP, FLOW_CLASSIFIER, FLOW_CONFIG, ACL, NAT, LB_VIP, CT_TIMEOUT, CT_OVERFLOW)
ALL_ACTIONS = (SET_VNIC, SET_FLOW, SET_FLOW_CONFIG, *ACL_ACTIONS.values(), NAT_SNAT, NAT_DNAT,
               LB_SET_BACKEND, CT_SET_TIMEOUT, CT_USE_OVERFLOW_SLOT)
