"""How the enums of the channel protocol are spelled in rule files and tables.

One table per enum, so the parser, the CLI's tables and pyoffload's model use
the same words.
"""

from __future__ import annotations

from collections.abc import Mapping

from guest_shim import offload_pb2 as pb

DIRECTIONS: dict[str, pb.Direction] = {
    "from-guest": pb.DIRECTION_FROM_GUEST,
    "to-guest": pb.DIRECTION_TO_GUEST,
    "both": pb.DIRECTION_BOTH,
}
CT_STATES: dict[str, pb.CtState] = {
    "any": pb.CT_STATE_ANY,
    "new": pb.CT_STATE_NEW,
    "established": pb.CT_STATE_ESTABLISHED,
    "invalid": pb.CT_STATE_INVALID,
    "untracked": pb.CT_STATE_UNTRACKED,
}
VERDICTS: dict[str, pb.Verdict] = {
    "allow": pb.VERDICT_ALLOW,
    "allow-track": pb.VERDICT_ALLOW_TRACK,
    "deny": pb.VERDICT_DENY,
    "reject": pb.VERDICT_REJECT,
    "punt": pb.VERDICT_PUNT,
}
SERVICES: dict[str, pb.Service] = {
    "conntrack": pb.SERVICE_CONNTRACK,
    "nat": pb.SERVICE_NAT,
    "lb": pb.SERVICE_LB,
    "rate-limit": pb.SERVICE_RATE_LIMIT,
    "mirror": pb.SERVICE_MIRROR,
    "count": pb.SERVICE_COUNT,
}
EVENT_KINDS: dict[str, pb.Event.Kind] = {
    "rule-rejected": pb.Event.KIND_RULE_REJECTED,
    "quota-reached": pb.Event.KIND_QUOTA_REACHED,
    "target-restarted": pb.Event.KIND_TARGET_RESTARTED,
    "target-reinstalled": pb.Event.KIND_TARGET_REINSTALLED,
    "generation-applied": pb.Event.KIND_GENERATION_APPLIED,
}


def name_of(table: Mapping[str, int], value: int) -> str:
    """The word for an enum value (``"both"`` for an unspecified direction)."""
    for word, number in table.items():
        if number == value:
            return word
    if table is DIRECTIONS and value == pb.DIRECTION_UNSPECIFIED:
        return "both"
    return f"unknown({value})"
