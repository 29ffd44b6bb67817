"""Checks that keep a request within what the pipeline can do.

The model's classes call these from their post-init hooks. Each check names
the pipeline fact it protects, so a failing request is told why, not only
what: e.g. NAT rules are ``vnic.nat`` entries, which the pipeline applies to
IPv4 TCP/UDP packets of new connections only, so a NAT rule in an IPv6 flow
could never act and is refused rather than installed as dead weight.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeGuard

import attrs

from guest_shim import syntax
from pyoffload.rules.errors import RuleError
from pyoffload.rules.values import (
    PORT_PROTOCOLS,
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_TCP,
    CtState,
    Service,
    Verdict,
    check_network,
    protocol_name,
)

if TYPE_CHECKING:
    from pyoffload.rules.model import (
        Action,
        Backend,
        Dnat,
        Flow,
        FlowConfig,
        FlowMatch,
        LoadBalance,
        OffloadRequest,
        Rule,
        RuleMatch,
        Snat,
    )

# The model's classes call these checks from their post-init hooks, so this module
# cannot import the model at run time (the two would import each other); the
# actions and backends say what they are instead (their ``kind``).


def is_load_balance(action: Action) -> TypeGuard[LoadBalance]:
    return getattr(action, "kind", None) == "load_balance"


def is_nat(action: Action) -> TypeGuard[Snat | Dnat]:
    return getattr(action, "kind", None) in ("snat", "dnat")


def is_backend(value: object) -> TypeGuard[Backend]:
    return getattr(value, "kind", None) == "backend"


def ip_version(match: FlowMatch | RuleMatch) -> int | None:
    """The IP version a match is limited to, if any (prefixes, ICMP kind)."""
    for network in (match.src, match.dst):
        if network is not None:
            return network.version
    if match.protocol == PROTO_ICMP:
        return 4
    if match.protocol == PROTO_ICMPV6:
        return 6
    return None


def check_l34(match: FlowMatch | RuleMatch) -> None:
    """Addresses of one family, ports only for TCP/UDP, ICMP of the right family."""
    src, dst = match.src, match.dst
    if src is not None or dst is not None:  # (an any-to-any match has no family)
        check_network(src, "src")
        check_network(dst, "dst")
        if src is not None and dst is not None and src.version != dst.version:
            raise RuleError(
                f"{dst} is IPv{dst.version} but src {src} is IPv{src.version} "
                "(one family per match)",
                field="dst",
            )
        family = src or dst
        if family is not None:
            if match.protocol == PROTO_ICMP and family.version == 6:
                raise RuleError("icmp is IPv4; use icmpv6 with IPv6 prefixes", field="protocol")
            if match.protocol == PROTO_ICMPV6 and family.version == 4:
                raise RuleError("icmpv6 is IPv6; use icmp with IPv4 prefixes", field="protocol")


def check_ports(match: FlowMatch | RuleMatch, protocol: int | None) -> None:
    """Ports (and TCP flags) only where the protocol has them.

    A rule's protocol is its own or, when it has none, its flow's: the rules
    only ever see packets of their flow.
    """
    if getattr(match, "tcp_flags", None) is not None and protocol != PROTO_TCP:
        raise RuleError(
            f"TCP flags need protocol tcp (the match has {protocol_name(protocol)})",
            field="tcp_flags",
        )
    src_ports, dst_ports = match.src_ports, match.dst_ports
    if (src_ports is not None or dst_ports is not None) and protocol not in PORT_PROTOCOLS:
        raise RuleError(
            f"ports need protocol tcp or udp (the match has {protocol_name(protocol)})",
            field="src_ports" if src_ports is not None else "dst_ports",
        )


def check_rule_match(match: RuleMatch) -> None:
    """Established packets never reach the rules."""
    if match.ct_state is CtState.ESTABLISHED:
        raise RuleError(
            "established: packets of established connections are allowed by the stateful fast "
            "path before the rules, so such a rule would never match",
            field="ct_state",
        )


def check_config(config: FlowConfig) -> None:
    """Services and their settings come together."""
    services = config.services
    if not all(isinstance(service, Service) for service in services):
        raise RuleError(f"{sorted(map(str, services))} are not all services", field="services")
    if (Service.RATE_LIMIT in services) != (config.rate_limit is not None):
        raise RuleError(
            "the rate-limit service and rate_limit go together (the flow meter needs a rate, "
            "a rate needs the service)",
            field="rate_limit",
        )
    if (Service.MIRROR in services) != (config.mirror_session is not None):
        raise RuleError(
            "the mirror service and mirror_session go together", field="mirror_session"
        )
    stateful = services & {Service.CONNTRACK, Service.NAT, Service.LB}
    if config.default_verdict is Verdict.ALLOW_TRACK and Service.CONNTRACK not in services:
        raise RuleError("allow-track needs the conntrack service", field="default_verdict")
    if config.timeouts.items() and not stateful:
        raise RuleError(
            "timeouts need a service that keeps connections (conntrack, nat or lb)",
            field="timeouts",
        )


def check_rule(rule: Rule) -> None:
    """What each kind of action allows in the match and beside it."""
    action = rule.action
    if isinstance(action, Verdict):
        if rule.rate_limit is not None and not action.allows:
            raise RuleError(
                f"a rate limit on a {action.value} rule would never act (meters only act on "
                "allowed packets)",
                field="rate_limit",
            )
        return
    if not (is_nat(action) or is_load_balance(action)):
        raise RuleError(f"{action!r} is not a verdict, snat, dnat or load_balance")
    kind = action.kind
    if rule.rate_limit is not None:
        raise RuleError(
            f"rate limits are for verdict rules (the {kind} table has no meter)",
            field="rate_limit",
        )
    match = rule.match
    if is_load_balance(action):
        if match != type(match)():
            raise RuleError(
                "a load_balance rule matches on its vip, port and protocol only; "
                "leave match empty",
                field="match",
            )
        return
    if match.ct_state not in (CtState.ANY, CtState.NEW):
        raise RuleError(
            "NAT acts on the first packet of new connections only; use any or new",
            field="match.ct_state",
        )
    if match.tcp_flags is not None:
        raise RuleError("NAT rules cannot match TCP flags", field="match.tcp_flags")
    if match.protocol is not None and match.protocol not in PORT_PROTOCOLS:
        raise RuleError(
            f"NAT translates TCP and UDP only, not {protocol_name(match.protocol)}",
            field="match.protocol",
        )
    if match.ip_version == 6:
        raise RuleError("NAT is IPv4 only; the match is IPv6", field="match")


def check_backends(lb: LoadBalance) -> None:
    """At least one backend, each (address, port) once."""
    if not lb.backends:
        raise RuleError("is empty (a VIP needs at least one backend)", field="backends")
    seen: set[tuple[object, int]] = set()
    for index, backend in enumerate(lb.backends):
        if not is_backend(backend):
            raise RuleError(f"{backend!r} is not a Backend", field=f"backends[{index}]")
        key = (backend.address, backend.port)
        if key in seen:
            raise RuleError(
                f"{backend.address}:{backend.port} is listed twice", field=f"backends[{index}]"
            )
        seen.add(key)


def check_flow(flow: Flow) -> None:
    """Rules against their flow: ids, families, protocols, services."""
    seen: set[str] = set()
    services = flow.config.services
    flow_version = flow.match.ip_version
    for rule in flow.rules:
        if rule.id in seen:
            raise RuleError("duplicate rule id", rule=rule.id, field="id")
        seen.add(rule.id)
        try:
            _check_rule_in_flow(rule, flow, services, flow_version)
        except RuleError as exc:
            raise exc.within(rule=rule.id) from None


def _check_rule_in_flow(
    rule: Rule, flow: Flow, services: frozenset[Service], flow_version: int | None
) -> None:
    match = rule.match
    protocol = match.protocol
    flow_protocol = flow.match.protocol
    version = match.ip_version
    if version is not None and flow_version is not None and version != flow_version:
        raise RuleError(
            f"the rule matches IPv{version} but its flow IPv{flow_version}: it could never match",
            field="match",
        )
    if protocol is not None and flow_protocol is not None and protocol != flow_protocol:
        raise RuleError(
            f"{protocol_name(protocol)}, but the flow is "
            f"{protocol_name(flow_protocol)}: the rule could never match",
            field="match.protocol",
        )
    with_flow = protocol if protocol is not None else flow_protocol
    try:
        check_ports(match, with_flow)
    except RuleError as exc:
        raise exc.within(field="match") from None
    action = rule.action
    if isinstance(action, Verdict):
        if action is Verdict.ALLOW_TRACK and Service.CONNTRACK not in services:
            raise RuleError("allow-track needs the flow's conntrack service", field="verdict")
        return
    if is_load_balance(action):
        _check_lb_in_flow(action, flow, services)
        return
    assert is_nat(action)
    kind = action.kind
    if Service.NAT not in services:
        raise RuleError(f"{kind} needs the flow's nat service", field=kind)
    if flow_version == 6:
        raise RuleError("NAT is IPv4 only; the flow matches IPv6", field=kind)
    if flow_protocol is not None and flow_protocol not in PORT_PROTOCOLS:
        raise RuleError(
            f"NAT translates TCP and UDP only; the flow is {protocol_name(flow_protocol)}",
            field=kind,
        )


def _check_lb_in_flow(lb: LoadBalance, flow: Flow, services: frozenset[Service]) -> None:
    """The flow must let the VIP's packets in, or the VIP is never reached."""
    if Service.LB not in services:
        raise RuleError("load_balance needs the flow's lb service", field="load_balance")
    match = flow.match
    if match.ip_version == 6:
        raise RuleError("load balancing is IPv4 only; the flow matches IPv6", field="load_balance")
    if match.dst is not None and lb.vip not in match.dst:
        raise RuleError(
            f"vip {lb.vip} is outside the flow's dst {match.dst}: no packet to it is in the flow",
            field="load_balance.vip",
        )
    if match.protocol is not None and match.protocol != lb.protocol:
        raise RuleError(
            f"{protocol_name(lb.protocol)}, but the flow is {protocol_name(match.protocol)}",
            field="load_balance.protocol",
        )
    ports = match.dst_ports
    if ports is not None and not ports.lo <= lb.port <= ports.hi:
        raise RuleError(
            f"port {lb.port} is outside the flow's dst_ports {ports}", field="load_balance.port"
        )


def check_request(request: OffloadRequest) -> None:
    """Flow ids unique; a VIP (vnic.lb_vip is keyed per VNIC, not per flow) once."""
    if request.vnic is not None:
        try:
            syntax.check_id(request.vnic)
        except ValueError as exc:
            raise RuleError(str(exc), field="vnic") from None
    seen: set[str] = set()
    vips: dict[tuple[object, int, int], str] = {}
    for flow in request.flows:
        if flow.id in seen:
            raise RuleError("duplicate flow id", flow=flow.id, field="id")
        seen.add(flow.id)
        for rule in flow.rules:
            if is_load_balance(rule.action):
                lb = rule.action
                key = (lb.vip, lb.protocol, lb.port)
                if key in vips:
                    raise RuleError(
                        f"{lb.vip}:{lb.port}/{protocol_name(lb.protocol)} is already balanced "
                        f"by {vips[key]}",
                        flow=flow.id,
                        rule=rule.id,
                        field="load_balance",
                    )
                vips[key] = f'flow "{flow.id}", rule "{rule.id}"'


def validate_for_vnic(request: OffloadRequest, vnic: str) -> OffloadRequest:
    """The request, bound to the channel's VNIC; refused if it names another.

    A channel belongs to exactly one VNIC: a request naming a different one
    is a mistake (or an attempt to reach another guest), never redirected.
    """
    if request.vnic is not None and request.vnic != vnic:
        raise RuleError(
            f'the request is for VNIC "{request.vnic}" but this channel belongs to "{vnic}"',
            field="vnic",
        )
    if request.vnic is None:
        return attrs.evolve(request, vnic=vnic)
    return request
