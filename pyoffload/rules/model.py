"""The rule model: one VNIC's offload request, its flows and their rules.

Every class is frozen, slotted and keyword-only, and checks itself when built,
so an object that exists is one the pipeline (``p4src/``) can carry out:

* a flow is a ``vnic.flow_classifier`` entry (direction, IP version,
  ternary addresses, protocol, port ranges) plus a ``vnic.flow_config`` entry
  (services, conntrack timeout profile, default verdict, meter, mirror);
* a rule is, by its action, a ``vnic.acl`` entry (verdicts, with a direct
  meter), a ``vnic.nat`` entry (SNAT/DNAT: IPv4, TCP/UDP, first packet only)
  or a ``vnic.lb_vip`` entry (a VIP keyed on address, protocol and port only).

Checks that need more than one object (a rule against its flow, flows against
each other) live in ``checks`` and run from the containers' post-init hooks.
The order of flows and of each flow's rules is their priority, first wins.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, cast

import attrs

from guest_shim import syntax
from pyoffload.rules import checks
from pyoffload.rules.errors import RuleError
from pyoffload.rules.values import (
    PROTO_TCP,
    PROTO_UDP,
    CtState,
    Direction,
    IPNetwork,
    PortRange,
    Service,
    TcpFlags,
    Verdict,
)

MAX_TIMEOUT_S = (2**48 - 1) // 1_000_000
"""The longest timeout: conntrack expiry times are 48-bit microseconds."""
MAX_RATE = 2**63 - 1
"""P4Runtime meter rates and bursts are int64."""
MAX_WEIGHT = 100
"""Backend weights are repeated selector members: keep groups small."""

# Which conntrack states (CT_* in defines.p4) each timeout field sets.
TIMEOUT_STATES: dict[str, tuple[str, ...]] = {
    "tcp_syn": ("CT_TCP_SYN_SENT", "CT_TCP_SYN_RECV"),
    "tcp_established": ("CT_TCP_ESTABLISHED",),
    "tcp_fin": ("CT_TCP_FIN_WAIT", "CT_TCP_CLOSING"),
    "tcp_closed": ("CT_TCP_CLOSED",),
    "udp_new": ("CT_UDP_NEW",),
    "udp_established": ("CT_UDP_ESTABLISHED",),
    "icmp": ("CT_ICMP_NEW", "CT_ICMP_REPLIED"),
}


def _id(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    try:
        syntax.check_id(value)
    except ValueError as exc:
        raise RuleError(str(exc), field=attribute.name) from None


IntValidator = Callable[[Any, "attrs.Attribute[int]", int], None]
OptionalIntValidator = Callable[[Any, "attrs.Attribute[int | None]", "int | None"], None]


def _in_range(low: int, high: int) -> IntValidator:
    def check(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise RuleError(f"{value!r} is out of range ({low}-{high})", field=attribute.name)

    return check


def _optional_in_range(low: int, high: int) -> OptionalIntValidator:
    inner = _in_range(low, high)

    def check(instance: object, attribute: attrs.Attribute[int | None], value: int | None) -> None:
        if value is not None:
            inner(instance, cast("attrs.Attribute[int]", attribute), value)

    return check


def _protocol(instance: object, attribute: attrs.Attribute[int | None], value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not 0 <= value <= 255):
        raise RuleError(f"{value!r} is not a protocol number (0-255)", field=attribute.name)


def _ipv4(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, ipaddress.IPv4Address):
        raise RuleError(
            f"{value} is not an IPv4 address (NAT and load balancing are IPv4 only)",
            field=attribute.name,
        )


def _backends(value: Iterable[Backend]) -> tuple[Backend, ...]:
    return tuple(value)


def _rules(value: Iterable[Rule]) -> tuple[Rule, ...]:
    return tuple(value)


def _flows(value: Iterable[Flow]) -> tuple[Flow, ...]:
    return tuple(value)


def _services(value: Iterable[Service]) -> frozenset[Service]:
    return frozenset(value)


@attrs.frozen(kw_only=True)
class RateLimit:
    """A two-rate three-colour meter in bytes (RFC 2698); red is dropped."""

    cir: int = attrs.field(validator=_in_range(1, MAX_RATE))
    """Committed information rate, bytes per second."""
    cbs: int = attrs.field(validator=_in_range(1, MAX_RATE))
    """Committed burst size, bytes."""
    pir: int = attrs.field(validator=_in_range(1, MAX_RATE))
    """Peak information rate, bytes per second; at least cir."""
    pbs: int = attrs.field(validator=_in_range(1, MAX_RATE))
    """Peak burst size, bytes."""

    def __attrs_post_init__(self) -> None:
        if self.pir < self.cir:
            raise RuleError(
                f"{self.pir} is below cir {self.cir} (the peak rate must be >= cir)", field="pir"
            )


_timeout = _optional_in_range(1, MAX_TIMEOUT_S)


@attrs.frozen(kw_only=True)
class Timeouts:
    """Conntrack timeouts of a flow, seconds per state; None = built-in value."""

    tcp_syn: int | None = attrs.field(default=None, validator=_timeout)
    """Half-open TCP (SYN sent, SYN received); built-in 60 s."""
    tcp_established: int | None = attrs.field(default=None, validator=_timeout)
    """Established TCP; built-in 1 h."""
    tcp_fin: int | None = attrs.field(default=None, validator=_timeout)
    """Closing TCP (FIN wait, closing); built-in 120 s."""
    tcp_closed: int | None = attrs.field(default=None, validator=_timeout)
    """Reset TCP; built-in 10 s."""
    udp_new: int | None = attrs.field(default=None, validator=_timeout)
    """UDP seen one way only; built-in 30 s."""
    udp_established: int | None = attrs.field(default=None, validator=_timeout)
    """UDP seen both ways; built-in 180 s."""
    icmp: int | None = attrs.field(default=None, validator=_timeout)
    """ICMP echo (request, replied); built-in 30 s."""

    def items(self) -> list[tuple[str, int]]:
        """The timeouts that are set, as (field name, seconds), in field order."""
        pairs = [(a.name, getattr(self, a.name)) for a in attrs.fields(Timeouts)]
        return [(name, seconds) for name, seconds in pairs if seconds is not None]


@attrs.frozen(kw_only=True)
class FlowMatch:
    """Which packets belong to a flow (a ``vnic.flow_classifier`` entry)."""

    direction: Direction = Direction.BOTH
    """Direction of the packets, seen from the guest."""
    protocol: int | None = attrs.field(default=None, validator=_protocol)
    """IP protocol number; None = any."""
    src: IPNetwork | None = None
    """Source prefix, IPv4 or IPv6; None = any."""
    dst: IPNetwork | None = None
    """Destination prefix, same family as src; None = any."""
    src_ports: PortRange | None = None
    """Source ports (TCP/UDP only); None = any."""
    dst_ports: PortRange | None = None
    """Destination ports (TCP/UDP only); None = any."""

    def __attrs_post_init__(self) -> None:
        checks.check_l34(self)
        checks.check_ports(self, self.protocol)

    @property
    def ip_version(self) -> int | None:
        """4 or 6 when the prefixes (or the protocol) fix it; None for both."""
        return checks.ip_version(self)


@attrs.frozen(kw_only=True)
class FlowConfig:
    """What the VNIC does for a flow (a ``vnic.flow_config`` entry)."""

    default_verdict: Verdict
    """The verdict for packets of the flow no rule matches."""
    services: frozenset[Service] = attrs.field(default=frozenset(), converter=_services)
    """The services turned on; NAT, LB, rate-limit and mirror act only when on."""
    timeouts: Timeouts = attrs.field(factory=lambda: Timeouts())
    """Conntrack timeouts of the flow's connections (its timeout profile)."""
    rate_limit: RateLimit | None = None
    """The flow's meter; required with, and only with, the rate-limit service."""
    mirror_session: int | None = attrs.field(
        default=None, validator=_optional_in_range(1, 2**32 - 1)
    )
    """Clone session receiving copies; required with, and only with, mirror."""

    def __attrs_post_init__(self) -> None:
        checks.check_config(self)


@attrs.frozen(kw_only=True)
class RuleMatch:
    """Which packets of a flow a rule applies to."""

    direction: Direction = Direction.BOTH
    """Direction of the packets, seen from the guest."""
    ct_state: CtState = CtState.ANY
    """Conntrack state (verdict rules; NAT rules act on new connections only)."""
    protocol: int | None = attrs.field(default=None, validator=_protocol)
    """IP protocol number; None = any (or the flow's)."""
    src: IPNetwork | None = None
    """Source prefix; None = any."""
    dst: IPNetwork | None = None
    """Destination prefix; None = any."""
    src_ports: PortRange | None = None
    """Source ports (TCP/UDP only); None = any."""
    dst_ports: PortRange | None = None
    """Destination ports (TCP/UDP only); None = any."""
    tcp_flags: TcpFlags | None = None
    """TCP flags (TCP only, verdict rules only); None = any."""

    def __attrs_post_init__(self) -> None:
        checks.check_l34(self)
        checks.check_rule_match(self)

    @property
    def ip_version(self) -> int | None:
        """4 or 6 when the prefixes (or the protocol) fix it; None for both."""
        return checks.ip_version(self)


@attrs.frozen(kw_only=True)
class Snat:
    """Rewrite the source of new connections (IPv4, TCP/UDP)."""

    kind: ClassVar[str] = "snat"

    address: ipaddress.IPv4Address = attrs.field(validator=_ipv4)
    """The new source address."""
    ports: PortRange
    """Source ports to choose from (hashed on the connection's tuple); 1-65535."""

    def __attrs_post_init__(self) -> None:
        if self.ports.lo == 0:
            raise RuleError(f'"{self.ports}" includes port 0', field="ports")


@attrs.frozen(kw_only=True)
class Dnat:
    """Rewrite the destination of new connections (IPv4, TCP/UDP)."""

    kind: ClassVar[str] = "dnat"

    address: ipaddress.IPv4Address = attrs.field(validator=_ipv4)
    """The new destination address."""
    port: int | None = attrs.field(default=None, validator=_optional_in_range(1, 65535))
    """The new destination port; None keeps the packet's."""


@attrs.frozen(kw_only=True)
class Backend:
    """One server behind a load-balanced VIP."""

    kind: ClassVar[str] = "backend"

    address: ipaddress.IPv4Address = attrs.field(validator=_ipv4)
    """The backend's address."""
    port: int = attrs.field(validator=_in_range(1, 65535))
    """The backend's port."""
    weight: int = attrs.field(default=1, validator=_in_range(1, MAX_WEIGHT))
    """Share of new connections, relative to the other backends (1-100)."""


@attrs.frozen(kw_only=True)
class LoadBalance:
    """A VIP spread over weighted backends (a ``vnic.lb_vip`` entry and group)."""

    kind: ClassVar[str] = "load_balance"

    vip: ipaddress.IPv4Address = attrs.field(validator=_ipv4)
    """The virtual address clients connect to."""
    port: int = attrs.field(validator=_in_range(1, 65535))
    """The virtual port."""
    protocol: int
    """TCP or UDP (the table matches it exactly)."""
    backends: tuple[Backend, ...] = attrs.field(converter=_backends)
    """The servers, at least one, each (address, port) once."""

    def __attrs_post_init__(self) -> None:
        if self.protocol not in (PROTO_TCP, PROTO_UDP):
            raise RuleError(f"{self.protocol} must be tcp (6) or udp (17)", field="protocol")
        checks.check_backends(self)


Action = Verdict | Snat | Dnat | LoadBalance



@attrs.frozen(kw_only=True)
class Rule:
    """A service rule: a match and exactly one action."""

    id: str = attrs.field(validator=_id)
    """Unique within its flow; names the rule in errors, counters and events."""
    action: Action
    """A verdict (ACL), a translation (NAT) or a load-balanced VIP (LB)."""
    match: RuleMatch = attrs.field(factory=lambda: RuleMatch())
    """Which packets of the flow the rule applies to."""
    rate_limit: RateLimit | None = None
    """A meter for this rule (the ACL's direct meter: allow verdicts only)."""

    def __attrs_post_init__(self) -> None:
        try:
            checks.check_rule(self)
        except RuleError as exc:
            raise exc.within(rule=self.id) from None


@attrs.frozen(kw_only=True)
class Flow:
    """A flow the guest declares: its match, its configuration, its rules."""

    id: str = attrs.field(validator=_id)
    """Unique within the request; names the flow in errors, counters, events."""
    config: FlowConfig
    """Services, default verdict, timeouts, meter, mirror session."""
    match: FlowMatch = attrs.field(factory=lambda: FlowMatch())
    """Which packets belong to the flow."""
    rules: tuple[Rule, ...] = attrs.field(default=(), converter=_rules)
    """The flow's rules; their order is their priority (first wins)."""

    def __attrs_post_init__(self) -> None:
        try:
            checks.check_flow(self)
        except RuleError as exc:
            raise exc.within(flow=self.id) from None


@attrs.frozen(kw_only=True)
class OffloadRequest:
    """The whole desired rule set of one VNIC."""

    vnic: str | None = None
    """The VNIC it is for; None = the VNIC of the channel it arrives on."""
    generation: int = attrs.field(default=0, validator=_in_range(0, 2**64 - 1))
    """The version the guest gives it; 0 = one more than the installed one."""
    flows: tuple[Flow, ...] = attrs.field(default=(), converter=_flows)
    """The flows; their order is their priority (first wins)."""

    def __attrs_post_init__(self) -> None:
        checks.check_request(self)
