"""The rule model: what a guest asks its VNIC to do, checked against the pipeline.

Build it in Python, load it from a rule file (``load_file``) or receive it on
the guest channel (``from_proto``); every way ends in the same frozen, checked
objects, and ``RuleError`` names the flow, rule and field when it cannot.
"""

from pyoffload.rules.checks import validate_for_vnic
from pyoffload.rules.convert import from_proto, to_proto
from pyoffload.rules.errors import RuleError
from pyoffload.rules.files import load_data, load_file, load_text
from pyoffload.rules.model import (
    TIMEOUT_STATES,
    Action,
    Backend,
    Dnat,
    Flow,
    FlowConfig,
    FlowMatch,
    LoadBalance,
    OffloadRequest,
    RateLimit,
    Rule,
    RuleMatch,
    Snat,
    Timeouts,
)
from pyoffload.rules.values import CtState, Direction, PortRange, Service, TcpFlags, Verdict

__all__ = [
    "TIMEOUT_STATES",
    "Action",
    "Backend",
    "CtState",
    "Direction",
    "Dnat",
    "Flow",
    "FlowConfig",
    "FlowMatch",
    "LoadBalance",
    "OffloadRequest",
    "PortRange",
    "RateLimit",
    "Rule",
    "RuleError",
    "RuleMatch",
    "Service",
    "Snat",
    "TcpFlags",
    "Timeouts",
    "Verdict",
    "from_proto",
    "load_data",
    "load_file",
    "load_text",
    "to_proto",
    "validate_for_vnic",
]
