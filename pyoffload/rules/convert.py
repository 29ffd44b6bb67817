"""Between the rule model and the guest channel's protobuf messages.

``from_proto`` is where untrusted input from a guest becomes model objects:
every string is parsed with the shim's own ``guest_shim.syntax`` (so both
ends accept the same spellings), every enum value is checked, and every
error is re-raised with the flow, rule and field it came from. ``to_proto``
is its inverse: ``from_proto(to_proto(r)) == r`` for every request ``r``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from guest_shim import names, syntax
from guest_shim import offload_pb2 as pb
from pyoffload.rules.errors import RuleError
from pyoffload.rules.model import (
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
from pyoffload.rules.values import (
    CtState,
    Direction,
    IPNetwork,
    PortRange,
    Service,
    TcpFlags,
    Verdict,
)

T = TypeVar("T")
E = TypeVar("E")

_DIRECTIONS = {pb.DIRECTION_UNSPECIFIED: Direction.BOTH} | {
    number: Direction(word) for word, number in names.DIRECTIONS.items()
}
_CT_STATES = {number: CtState(word) for word, number in names.CT_STATES.items()}
_VERDICTS = {number: Verdict(word) for word, number in names.VERDICTS.items()}
_SERVICES = {number: Service(word) for word, number in names.SERVICES.items()}


@contextmanager
def _at(
    field: str | None = None, *, flow: str | None = None, rule: str | None = None
) -> Iterator[None]:
    """Locate any RuleError (or syntax ValueError) raised inside."""
    try:
        yield
    except RuleError as exc:
        raise exc.within(flow=flow, rule=rule, field=field) from None
    except ValueError as exc:
        raise RuleError(str(exc), flow=flow, rule=rule, field=field) from None


def _enum(table: Mapping[Any, E], value: int, what: str) -> E:
    if value not in table:
        raise RuleError(f"{value} is not a valid {what}")
    return table[value]


def _prefix(text: str) -> IPNetwork | None:
    return syntax.parse_prefix(text)


def _ipv4(text: str) -> ipaddress.IPv4Address:
    return syntax.parse_ipv4_address(text)


def _ports(message: pb.FlowMatch | pb.RuleMatch | pb.Snat, field: str) -> PortRange | None:
    if not message.HasField(field):
        return None
    ports: pb.PortRange = getattr(message, field)
    with _at(field):
        return PortRange(lo=ports.lo, hi=ports.hi)


def _field(name: str, convert: Callable[[], T]) -> T:
    with _at(name):
        return convert()


# ------------------------------------------------------------------ from proto


def from_proto(message: pb.OffloadRequest) -> OffloadRequest:
    """The model of a request received on the channel; RuleError if invalid."""
    flows = []
    for index, flow in enumerate(message.flows, start=1):
        ident = flow.id or f"#{index}"
        with _at(flow=ident):
            flows.append(_flow(flow))
    with _at():
        return OffloadRequest(
            vnic=message.vnic or None, generation=message.generation, flows=flows
        )


def _flow(message: pb.Flow) -> Flow:
    rules = []
    for index, rule in enumerate(message.rules, start=1):
        with _at(rule=rule.id or f"#{index}"):
            rules.append(_rule(rule))
    with _at("match"):
        match = _flow_match(message.match)
    with _at("config"):
        config = _config(message.config)
    return Flow(id=message.id, match=match, config=config, rules=rules)


def _l34(message: pb.FlowMatch | pb.RuleMatch) -> dict[str, object]:
    return {
        "direction": _field(
            "direction", lambda: _enum(_DIRECTIONS, message.direction, "direction")
        ),
        "protocol": _field("protocol", lambda: syntax.parse_protocol(message.protocol)),
        "src": _field("src", lambda: _prefix(message.src)),
        "dst": _field("dst", lambda: _prefix(message.dst)),
        "src_ports": _ports(message, "src_ports"),
        "dst_ports": _ports(message, "dst_ports"),
    }


def _flow_match(message: pb.FlowMatch) -> FlowMatch:
    return FlowMatch(**_l34(message))  # type: ignore[arg-type]


def _rule_match(message: pb.RuleMatch) -> RuleMatch:
    flags = None
    if message.HasField("tcp_flags"):
        with _at("tcp_flags"):
            flags = TcpFlags(value=message.tcp_flags.value, mask=message.tcp_flags.mask)
    ct_state = _field("ct_state", lambda: _enum(_CT_STATES, message.ct_state, "ct_state"))
    return RuleMatch(**_l34(message), ct_state=ct_state, tcp_flags=flags)  # type: ignore[arg-type]


def _rate_limit(message: pb.RateLimit) -> RateLimit:
    return RateLimit(cir=message.cir, cbs=message.cbs, pir=message.pir, pbs=message.pbs)


def _config(message: pb.FlowConfig) -> FlowConfig:
    services = []
    for index, value in enumerate(message.services):
        with _at(f"services[{index}]"):
            services.append(_enum(_SERVICES, value, "service"))
    if len(set(services)) != len(services):
        raise RuleError("a service is listed twice", field="services")
    if message.default_verdict == pb.VERDICT_UNSPECIFIED:
        raise RuleError(f"is missing (one of {', '.join(names.VERDICTS)})", field="default_verdict")
    verdict = _field(
        "default_verdict", lambda: _enum(_VERDICTS, message.default_verdict, "verdict")
    )
    with _at("timeouts"):
        seconds = {
            field.name: value or None for field, value in message.timeouts.ListFields()
        }
        timeouts = Timeouts(**seconds)
    rate_limit = None
    if message.HasField("rate_limit"):
        with _at("rate_limit"):
            rate_limit = _rate_limit(message.rate_limit)
    return FlowConfig(
        services=frozenset(services),
        default_verdict=verdict,
        timeouts=timeouts,
        rate_limit=rate_limit,
        mirror_session=message.mirror_session or None,
    )


def _rule(message: pb.Rule) -> Rule:
    with _at("match"):
        match = _rule_match(message.match)
    kind = message.WhichOneof("action")
    action: Action
    with _at(kind):
        if kind == "verdict":
            if message.verdict == pb.VERDICT_UNSPECIFIED:
                raise RuleError("is unspecified")
            action = _enum(_VERDICTS, message.verdict, "verdict")
        elif kind == "snat":
            if not message.snat.HasField("ports"):
                raise RuleError("is missing", field="ports")
            action = Snat(
                address=_field("address", lambda: _ipv4(message.snat.address)),
                ports=_ports(message.snat, "ports"),  # type: ignore[arg-type]
            )
        elif kind == "dnat":
            action = Dnat(
                address=_field("address", lambda: _ipv4(message.dnat.address)),
                port=message.dnat.port or None,
            )
        elif kind == "load_balance":
            action = _load_balance(message.load_balance)
        else:
            raise RuleError("needs exactly one action of verdict, snat, dnat, load_balance")
    rate_limit = None
    if message.HasField("rate_limit"):
        with _at("rate_limit"):
            rate_limit = _rate_limit(message.rate_limit)
    return Rule(id=message.id, match=match, action=action, rate_limit=rate_limit)


def _load_balance(message: pb.LoadBalance) -> LoadBalance:
    backends = []
    for index, backend in enumerate(message.backends):
        with _at(f"backends[{index}]"):
            backends.append(
                Backend(
                    address=_field("address", lambda b=backend: _ipv4(b.address)),  # type: ignore[misc]
                    port=backend.port,
                    weight=backend.weight or 1,
                )
            )
    protocol = _field("protocol", lambda: syntax.parse_protocol(message.protocol))
    if protocol is None:
        raise RuleError("is missing (tcp or udp)", field="protocol")
    return LoadBalance(
        vip=_field("vip", lambda: _ipv4(message.vip)),
        port=message.port,
        protocol=protocol,
        backends=backends,
    )


# -------------------------------------------------------------------- to proto

_DIRECTION_VALUES = {Direction(word): number for word, number in names.DIRECTIONS.items()}


def to_proto(request: OffloadRequest) -> pb.OffloadRequest:
    """The channel's form of a request (what ``Get`` answers, what a client sends)."""
    return pb.OffloadRequest(
        vnic=request.vnic or "",
        generation=request.generation,
        flows=[_flow_to_proto(flow) for flow in request.flows],
    )


def _port_range(ports: PortRange | None) -> pb.PortRange | None:
    return None if ports is None else pb.PortRange(lo=ports.lo, hi=ports.hi)


def _l34_to_proto(match: FlowMatch | RuleMatch) -> dict[str, object]:
    return {
        "direction": _DIRECTION_VALUES[match.direction],
        "protocol": syntax.format_protocol(match.protocol),
        "src": syntax.format_prefix(match.src),
        "dst": syntax.format_prefix(match.dst),
        "src_ports": _port_range(match.src_ports),
        "dst_ports": _port_range(match.dst_ports),
    }


def _rate_limit_to_proto(limit: RateLimit | None) -> pb.RateLimit | None:
    if limit is None:
        return None
    return pb.RateLimit(cir=limit.cir, cbs=limit.cbs, pir=limit.pir, pbs=limit.pbs)


def _flow_to_proto(flow: Flow) -> pb.Flow:
    config = flow.config
    services = sorted(names.SERVICES[s.value] for s in config.services)
    return pb.Flow(
        id=flow.id,
        match=pb.FlowMatch(**_l34_to_proto(flow.match)),  # type: ignore[arg-type]
        config=pb.FlowConfig(
            services=services,
            default_verdict=names.VERDICTS[config.default_verdict.value],
            timeouts=pb.Timeouts(**dict(config.timeouts.items())),
            rate_limit=_rate_limit_to_proto(config.rate_limit),
            mirror_session=config.mirror_session or 0,
        ),
        rules=[_rule_to_proto(rule) for rule in flow.rules],
    )


def _rule_to_proto(rule: Rule) -> pb.Rule:
    match = rule.match
    flags = None if match.tcp_flags is None else pb.TcpFlags(
        value=match.tcp_flags.value, mask=match.tcp_flags.mask
    )
    message = pb.Rule(
        id=rule.id,
        match=pb.RuleMatch(
            **_l34_to_proto(match),  # type: ignore[arg-type]
            ct_state=names.CT_STATES[match.ct_state.value],
            tcp_flags=flags,
        ),
        rate_limit=_rate_limit_to_proto(rule.rate_limit),
    )
    action = rule.action
    if isinstance(action, Verdict):
        message.verdict = names.VERDICTS[action.value]
    elif isinstance(action, Snat):
        message.snat.CopyFrom(
            pb.Snat(address=str(action.address), ports=_port_range(action.ports))
        )
    elif isinstance(action, Dnat):
        message.dnat.CopyFrom(pb.Dnat(address=str(action.address), port=action.port or 0))
    else:
        message.load_balance.CopyFrom(
            pb.LoadBalance(
                vip=str(action.vip),
                port=action.port,
                protocol=syntax.format_protocol(action.protocol),
                backends=[
                    pb.Backend(address=str(b.address), port=b.port, weight=b.weight)
                    for b in action.backends
                ],
            )
        )
    return message


__all__ = ["from_proto", "to_proto"]
