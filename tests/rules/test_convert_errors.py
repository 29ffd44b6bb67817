"""``from_proto`` refuses every bad wire value with the exact message and location.

Each case is one invalid request and the RuleError it must raise: the whole
message and its ``flow``, ``rule`` and ``field``. Where a message has several
errors, the case also pins which one is reported (the order fields are
converted in), so a faster converter cannot change what a guest is told.
"""

from __future__ import annotations

from typing import Any

import pytest

from guest_shim import offload_pb2 as pb
from pyoffload.rules import RuleError, from_proto

Location = tuple[str | None, str | None, str | None]

PROTOCOL_WORDS = "icmp, tcp, udp, icmpv6, any or 0-255"
ONE_ACTION = "needs exactly one action of verdict, snat, dnat, load_balance"


def _config(**fields: Any) -> pb.FlowConfig:
    fields.setdefault("default_verdict", pb.VERDICT_DENY)
    return pb.FlowConfig(**fields)


def _request(
    *rules: pb.Rule,
    match: pb.FlowMatch | None = None,
    config: pb.FlowConfig | None = None,
    flow_id: str = "f",
) -> pb.OffloadRequest:
    """One flow ``f`` (TCP, deny by default unless given) holding ``rules``."""
    flow = pb.Flow(
        id=flow_id,
        match=match if match is not None else pb.FlowMatch(protocol="tcp"),
        config=config if config is not None else _config(),
        rules=rules,
    )
    return pb.OffloadRequest(flows=[flow])


def _rule(**fields: Any) -> pb.Rule:
    """Rule ``r``; a deny verdict unless another action is given."""
    fields.setdefault("id", "r")
    if not {"verdict", "snat", "dnat", "load_balance"} & set(fields):
        fields["verdict"] = pb.VERDICT_DENY
    return pb.Rule(**fields)


def _lb(**fields: Any) -> pb.LoadBalance:
    fields.setdefault("vip", "10.0.0.1")
    fields.setdefault("port", 80)
    fields.setdefault("protocol", "tcp")
    fields.setdefault("backends", [pb.Backend(address="10.0.1.1", port=8080)])
    return pb.LoadBalance(**fields)


def _with(*services: int, **config: Any) -> pb.FlowConfig:
    return _config(services=list(services), **config)


NAT = _with(pb.SERVICE_NAT)
LB = _with(pb.SERVICE_LB)


def _ports(lo: int, hi: int) -> pb.PortRange:
    return pb.PortRange(lo=lo, hi=hi)


def _rm(**fields: Any) -> pb.RuleMatch:
    return pb.RuleMatch(**fields)


def _fm(**fields: Any) -> pb.FlowMatch:
    return pb.FlowMatch(**fields)


# (case id, request, the whole message, (flow, rule, field))
CASES: list[tuple[str, pb.OffloadRequest, str, Location]] = [
    # ---------------------------------------------------------- rule match fields
    (
        "rule-direction",
        _request(_rule(match=_rm(direction=99))),
        'flow "f", rule "r": match.direction: 99 is not a valid direction',
        ("f", "r", "match.direction"),
    ),
    (
        "rule-protocol-word",
        _request(_rule(match=_rm(protocol="bogus"))),
        f'flow "f", rule "r": match.protocol: "bogus" is not a protocol ({PROTOCOL_WORDS})',
        ("f", "r", "match.protocol"),
    ),
    (
        "rule-protocol-number",
        _request(_rule(match=_rm(protocol="300"))),
        'flow "f", rule "r": match.protocol: "300" is not a protocol number (0-255)',
        ("f", "r", "match.protocol"),
    ),
    (
        "rule-src",
        _request(_rule(match=_rm(src="nope"))),
        'flow "f", rule "r": match.src: "nope" is not an IPv4 or IPv6 address or prefix',
        ("f", "r", "match.src"),
    ),
    (
        "rule-src-host-bits",
        _request(_rule(match=_rm(src="10.0.0.1/8"))),
        'flow "f", rule "r": match.src: "10.0.0.1/8" has host bits set (did you mean 10.0.0.0/8?)',
        ("f", "r", "match.src"),
    ),
    (
        "rule-dst",
        _request(_rule(match=_rm(dst="2001:db8::/300"))),
        'flow "f", rule "r": match.dst: "2001:db8::/300" is not an IPv4 or IPv6 address or prefix',
        ("f", "r", "match.dst"),
    ),
    (
        "rule-families",
        _request(_rule(match=_rm(src="10.0.0.0/8", dst="2001:db8::/32"))),
        'flow "f", rule "r": match.dst: 2001:db8::/32 is IPv6 but src 10.0.0.0/8 is IPv4 '
        "(one family per match)",
        ("f", "r", "match.dst"),
    ),
    (
        "rule-icmp-v6",
        _request(
            _rule(match=_rm(protocol="icmp", dst="2001:db8::/32")),
            match=_fm(),
        ),
        'flow "f", rule "r": match.protocol: icmp is IPv4; use icmpv6 with IPv6 prefixes',
        ("f", "r", "match.protocol"),
    ),
    (
        "rule-src-ports-range",
        _request(_rule(match=_rm(src_ports=_ports(9, 3)))),
        'flow "f", rule "r": match.src_ports: "9-3" is not a range (low > high)',
        ("f", "r", "match.src_ports"),
    ),
    (
        "rule-dst-ports-lo",
        _request(_rule(match=_rm(dst_ports=_ports(70000, 70001)))),
        'flow "f", rule "r": match.dst_ports.lo: 70000 is not a port (0-65535)',
        ("f", "r", "match.dst_ports.lo"),
    ),
    (
        "rule-dst-ports-hi",
        _request(_rule(match=_rm(dst_ports=_ports(1, 70000)))),
        'flow "f", rule "r": match.dst_ports.hi: 70000 is not a port (0-65535)',
        ("f", "r", "match.dst_ports.hi"),
    ),
    (
        "rule-ports-need-tcp",
        _request(_rule(match=_rm(protocol="icmp", dst_ports=_ports(1, 2))), match=_fm()),
        'flow "f", rule "r": match.dst_ports: ports need protocol tcp or udp (the match has icmp)',
        ("f", "r", "match.dst_ports"),
    ),
    (
        "rule-tcp-flags-mask",
        _request(_rule(match=_rm(tcp_flags=pb.TcpFlags(value=3, mask=1)))),
        'flow "f", rule "r": match.tcp_flags: "0x3/0x1" sets flags outside its mask '
        "(value & ~mask != 0)",
        ("f", "r", "match.tcp_flags"),
    ),
    (
        "rule-tcp-flags-bits",
        _request(_rule(match=_rm(tcp_flags=pb.TcpFlags(value=1, mask=0x1FF)))),
        'flow "f", rule "r": match.tcp_flags: "0x1/0x1ff" is not 8-bit TCP flags',
        ("f", "r", "match.tcp_flags"),
    ),
    (
        "rule-tcp-flags-need-tcp",
        _request(
            _rule(match=_rm(protocol="udp", tcp_flags=pb.TcpFlags(value=2, mask=2))),
            match=_fm(),
        ),
        'flow "f", rule "r": match.tcp_flags: TCP flags need protocol tcp (the match has udp)',
        ("f", "r", "match.tcp_flags"),
    ),
    (
        "rule-ct-state",
        _request(_rule(match=_rm(ct_state=99))),
        'flow "f", rule "r": match.ct_state: 99 is not a valid ct_state',
        ("f", "r", "match.ct_state"),
    ),
    (
        "rule-ct-state-established",
        _request(_rule(match=_rm(ct_state=pb.CT_STATE_ESTABLISHED))),
        'flow "f", rule "r": match.ct_state: established: packets of established connections '
        "are allowed by the stateful fast path before the rules, so such a rule would never match",
        ("f", "r", "match.ct_state"),
    ),
    # the order a rule match is converted in: tcp_flags, ct_state, then the L3/L4 fields
    (
        "rule-order-tcp-flags-first",
        _request(
            _rule(match=_rm(tcp_flags=pb.TcpFlags(value=3, mask=1), ct_state=99, direction=99))
        ),
        'flow "f", rule "r": match.tcp_flags: "0x3/0x1" sets flags outside its mask '
        "(value & ~mask != 0)",
        ("f", "r", "match.tcp_flags"),
    ),
    (
        "rule-order-ct-state-before-direction",
        _request(_rule(match=_rm(ct_state=99, direction=99))),
        'flow "f", rule "r": match.ct_state: 99 is not a valid ct_state',
        ("f", "r", "match.ct_state"),
    ),
    (
        "rule-order-direction-protocol-src-dst-ports",
        _request(
            _rule(
                match=_rm(
                    direction=99,
                    protocol="x",
                    src="x",
                    dst="x",
                    src_ports=_ports(2, 1),
                    dst_ports=_ports(2, 1),
                )
            )
        ),
        'flow "f", rule "r": match.direction: 99 is not a valid direction',
        ("f", "r", "match.direction"),
    ),
    (
        "rule-order-protocol-before-src",
        _request(_rule(match=_rm(protocol="x", src="x", dst="x"))),
        f'flow "f", rule "r": match.protocol: "x" is not a protocol ({PROTOCOL_WORDS})',
        ("f", "r", "match.protocol"),
    ),
    (
        "rule-order-src-before-dst",
        _request(_rule(match=_rm(src="x", dst="y", src_ports=_ports(2, 1)))),
        'flow "f", rule "r": match.src: "x" is not an IPv4 or IPv6 address or prefix',
        ("f", "r", "match.src"),
    ),
    (
        "rule-order-dst-before-ports",
        _request(_rule(match=_rm(dst="y", src_ports=_ports(2, 1)))),
        'flow "f", rule "r": match.dst: "y" is not an IPv4 or IPv6 address or prefix',
        ("f", "r", "match.dst"),
    ),
    (
        "rule-order-src-ports-before-dst-ports",
        _request(_rule(match=_rm(src_ports=_ports(2, 1), dst_ports=_ports(4, 3)))),
        'flow "f", rule "r": match.src_ports: "2-1" is not a range (low > high)',
        ("f", "r", "match.src_ports"),
    ),
    # --------------------------------------------------------- flow match fields
    (
        "flow-direction",
        _request(match=_fm(direction=7)),
        'flow "f": match.direction: 7 is not a valid direction',
        ("f", None, "match.direction"),
    ),
    (
        "flow-protocol",
        _request(match=_fm(protocol="tcpp")),
        f'flow "f": match.protocol: "tcpp" is not a protocol ({PROTOCOL_WORDS})',
        ("f", None, "match.protocol"),
    ),
    (
        "flow-src",
        _request(match=_fm(src="10.0.0.256")),
        'flow "f": match.src: "10.0.0.256" is not an IPv4 or IPv6 address or prefix',
        ("f", None, "match.src"),
    ),
    (
        "flow-dst",
        _request(match=_fm(dst="10.1.0.0/8")),
        'flow "f": match.dst: "10.1.0.0/8" has host bits set (did you mean 10.0.0.0/8?)',
        ("f", None, "match.dst"),
    ),
    (
        "flow-icmpv6-v4",
        _request(match=_fm(protocol="icmpv6", src="10.0.0.0/8")),
        'flow "f": match.protocol: icmpv6 is IPv6; use icmp with IPv4 prefixes',
        ("f", None, "match.protocol"),
    ),
    (
        "flow-src-ports",
        _request(match=_fm(protocol="tcp", src_ports=_ports(5, 4))),
        'flow "f": match.src_ports: "5-4" is not a range (low > high)',
        ("f", None, "match.src_ports"),
    ),
    (
        "flow-dst-ports-hi",
        _request(match=_fm(protocol="tcp", dst_ports=_ports(5, 65536))),
        'flow "f": match.dst_ports.hi: 65536 is not a port (0-65535)',
        ("f", None, "match.dst_ports.hi"),
    ),
    (
        "flow-ports-need-tcp",
        _request(match=_fm(dst_ports=_ports(1, 2))),
        'flow "f": match.dst_ports: ports need protocol tcp or udp (the match has any)',
        ("f", None, "match.dst_ports"),
    ),
    (
        "flow-order-direction-first",
        _request(match=_fm(direction=7, protocol="x", src="x", dst_ports=_ports(2, 1))),
        'flow "f": match.direction: 7 is not a valid direction',
        ("f", None, "match.direction"),
    ),
    # ------------------------------------------------------------------- config
    (
        "services-unknown",
        _request(config=_with(42)),
        'flow "f": config.services[0]: 42 is not a valid service',
        ("f", None, "config.services[0]"),
    ),
    (
        "services-unknown-second",
        _request(config=_with(pb.SERVICE_CONNTRACK, 0)),
        'flow "f": config.services[1]: 0 is not a valid service',
        ("f", None, "config.services[1]"),
    ),
    (
        "services-twice",
        _request(config=_with(pb.SERVICE_NAT, pb.SERVICE_NAT)),
        'flow "f": config.services: a service is listed twice',
        ("f", None, "config.services"),
    ),
    (
        "default-verdict-missing",
        _request(config=pb.FlowConfig()),
        'flow "f": config.default_verdict: is missing (one of allow, allow-track, deny, '
        "reject, punt)",
        ("f", None, "config.default_verdict"),
    ),
    (
        "default-verdict-unknown",
        _request(config=_config(default_verdict=77)),
        'flow "f": config.default_verdict: 77 is not a valid verdict',
        ("f", None, "config.default_verdict"),
    ),
    (
        "default-verdict-needs-conntrack",
        _request(config=_config(default_verdict=pb.VERDICT_ALLOW_TRACK)),
        'flow "f": config.default_verdict: allow-track needs the conntrack service',
        ("f", None, "config.default_verdict"),
    ),
    (
        "config-order-services-before-verdict",
        _request(config=_config(services=[42], default_verdict=77)),
        'flow "f": config.services[0]: 42 is not a valid service',
        ("f", None, "config.services[0]"),
    ),
    (
        "config-order-verdict-before-timeouts",
        _request(config=pb.FlowConfig(timeouts=pb.Timeouts(tcp_syn=2**32 - 1))),
        'flow "f": config.default_verdict: is missing (one of allow, allow-track, deny, '
        "reject, punt)",
        ("f", None, "config.default_verdict"),
    ),
    (
        "timeouts-range",
        _request(
            config=_with(pb.SERVICE_CONNTRACK, timeouts=pb.Timeouts(udp_new=2**32 - 1))
        ),
        'flow "f": config.timeouts.udp_new: 4294967295 is out of range (1-281474976)',
        ("f", None, "config.timeouts.udp_new"),
    ),
    (
        "timeouts-need-state",
        _request(config=_config(timeouts=pb.Timeouts(icmp=5))),
        'flow "f": config.timeouts: timeouts need a service that keeps connections '
        "(conntrack, nat or lb)",
        ("f", None, "config.timeouts"),
    ),
    (
        "flow-rate-limit-cir",
        _request(
            config=_with(
                pb.SERVICE_RATE_LIMIT, rate_limit=pb.RateLimit(cir=0, cbs=1, pir=1, pbs=1)
            )
        ),
        f'flow "f": config.rate_limit.cir: 0 is out of range (1-{2**63 - 1})',
        ("f", None, "config.rate_limit.cir"),
    ),
    (
        "flow-rate-limit-pbs",
        _request(
            config=_with(
                pb.SERVICE_RATE_LIMIT, rate_limit=pb.RateLimit(cir=1, cbs=1, pir=1, pbs=2**63)
            )
        ),
        f'flow "f": config.rate_limit.pbs: {2**63} is out of range (1-{2**63 - 1})',
        ("f", None, "config.rate_limit.pbs"),
    ),
    (
        "flow-rate-limit-peak",
        _request(
            config=_with(
                pb.SERVICE_RATE_LIMIT, rate_limit=pb.RateLimit(cir=10, cbs=1, pir=5, pbs=1)
            )
        ),
        'flow "f": config.rate_limit.pir: 5 is below cir 10 (the peak rate must be >= cir)',
        ("f", None, "config.rate_limit.pir"),
    ),
    (
        "flow-rate-limit-needs-service",
        _request(config=_config(rate_limit=pb.RateLimit(cir=1, cbs=1, pir=1, pbs=1))),
        'flow "f": config.rate_limit: the rate-limit service and rate_limit go together '
        "(the flow meter needs a rate, a rate needs the service)",
        ("f", None, "config.rate_limit"),
    ),
    (
        "mirror-session",
        _request(config=_with(pb.SERVICE_MIRROR)),
        'flow "f": config.mirror_session: the mirror service and mirror_session go together',
        ("f", None, "config.mirror_session"),
    ),
    # ------------------------------------------------------------------ verdicts
    (
        "verdict-unspecified",
        _request(_rule(verdict=pb.VERDICT_UNSPECIFIED)),
        'flow "f", rule "r": verdict: is unspecified',
        ("f", "r", "verdict"),
    ),
    (
        "verdict-unknown",
        _request(_rule(verdict=99)),
        'flow "f", rule "r": verdict: 99 is not a valid verdict',
        ("f", "r", "verdict"),
    ),
    (
        "no-action",
        _request(pb.Rule(id="r")),
        f'flow "f", rule "r": {ONE_ACTION}',
        ("f", "r", None),
    ),
    (
        "verdict-needs-conntrack",
        _request(_rule(verdict=pb.VERDICT_ALLOW_TRACK)),
        'flow "f", rule "r": verdict: allow-track needs the flow\'s conntrack service',
        ("f", "r", "verdict"),
    ),
    (
        "rule-order-match-before-action",
        _request(pb.Rule(id="r", match=_rm(src="x"))),
        'flow "f", rule "r": match.src: "x" is not an IPv4 or IPv6 address or prefix',
        ("f", "r", "match.src"),
    ),
    # ---------------------------------------------------------- rule rate limits
    (
        "rule-rate-limit-cbs",
        _request(
            _rule(verdict=pb.VERDICT_ALLOW, rate_limit=pb.RateLimit(cir=1, cbs=0, pir=1, pbs=1))
        ),
        f'flow "f", rule "r": rate_limit.cbs: 0 is out of range (1-{2**63 - 1})',
        ("f", "r", "rate_limit.cbs"),
    ),
    (
        "rule-rate-limit-peak",
        _request(
            _rule(verdict=pb.VERDICT_ALLOW, rate_limit=pb.RateLimit(cir=9, cbs=1, pir=8, pbs=1))
        ),
        'flow "f", rule "r": rate_limit.pir: 8 is below cir 9 (the peak rate must be >= cir)',
        ("f", "r", "rate_limit.pir"),
    ),
    (
        "rule-rate-limit-on-deny",
        _request(_rule(rate_limit=pb.RateLimit(cir=1, cbs=1, pir=1, pbs=1))),
        'flow "f", rule "r": rate_limit: a rate limit on a deny rule would never act (meters '
        "only act on allowed packets)",
        ("f", "r", "rate_limit"),
    ),
    (
        "rule-order-action-before-rate-limit",
        _request(_rule(verdict=99, rate_limit=pb.RateLimit())),
        'flow "f", rule "r": verdict: 99 is not a valid verdict',
        ("f", "r", "verdict"),
    ),
    # ---------------------------------------------------------------------- snat
    (
        "snat-ports-missing",
        _request(_rule(snat=pb.Snat(address="10.0.0.1")), config=NAT),
        'flow "f", rule "r": snat.ports: is missing',
        ("f", "r", "snat.ports"),
    ),
    (
        "snat-order-ports-missing-before-address",
        _request(_rule(snat=pb.Snat(address="bad")), config=NAT),
        'flow "f", rule "r": snat.ports: is missing',
        ("f", "r", "snat.ports"),
    ),
    (
        "snat-address",
        _request(_rule(snat=pb.Snat(address="bad", ports=_ports(2, 1))), config=NAT),
        'flow "f", rule "r": snat.address: "bad" is not an IPv4 address',
        ("f", "r", "snat.address"),
    ),
    (
        "snat-address-v6",
        _request(_rule(snat=pb.Snat(address="2001:db8::1", ports=_ports(1, 2))), config=NAT),
        'flow "f", rule "r": snat.address: "2001:db8::1" is IPv6; only IPv4 is supported here',
        ("f", "r", "snat.address"),
    ),
    (
        "snat-ports-range",
        _request(_rule(snat=pb.Snat(address="10.0.0.1", ports=_ports(2, 1))), config=NAT),
        'flow "f", rule "r": snat.ports: "2-1" is not a range (low > high)',
        ("f", "r", "snat.ports"),
    ),
    (
        "snat-ports-hi",
        _request(_rule(snat=pb.Snat(address="10.0.0.1", ports=_ports(1, 99999))), config=NAT),
        'flow "f", rule "r": snat.ports.hi: 99999 is not a port (0-65535)',
        ("f", "r", "snat.ports.hi"),
    ),
    (
        "snat-ports-zero",
        _request(_rule(snat=pb.Snat(address="10.0.0.1", ports=_ports(0, 10))), config=NAT),
        'flow "f", rule "r": snat.ports: "0-10" includes port 0',
        ("f", "r", "snat.ports"),
    ),
    (
        "snat-needs-nat",
        _request(_rule(snat=pb.Snat(address="10.0.0.1", ports=_ports(1, 10)))),
        'flow "f", rule "r": snat: snat needs the flow\'s nat service',
        ("f", "r", "snat"),
    ),
    (
        "snat-ipv6-flow",
        _request(
            _rule(snat=pb.Snat(address="10.0.0.1", ports=_ports(1, 10))),
            match=_fm(protocol="tcp", dst="2001:db8::/32"),
            config=NAT,
        ),
        'flow "f", rule "r": snat: NAT is IPv4 only; the flow matches IPv6',
        ("f", "r", "snat"),
    ),
    (
        "snat-rate-limit",
        _request(
            _rule(
                snat=pb.Snat(address="10.0.0.1", ports=_ports(1, 10)),
                rate_limit=pb.RateLimit(cir=1, cbs=1, pir=1, pbs=1),
            ),
            config=NAT,
        ),
        'flow "f", rule "r": rate_limit: rate limits are for verdict rules (the snat table '
        "has no meter)",
        ("f", "r", "rate_limit"),
    ),
    (
        "snat-ct-state",
        _request(
            _rule(
                snat=pb.Snat(address="10.0.0.1", ports=_ports(1, 10)),
                match=_rm(ct_state=pb.CT_STATE_INVALID),
            ),
            config=NAT,
        ),
        'flow "f", rule "r": match.ct_state: NAT acts on the first packet of new connections '
        "only; use any or new",
        ("f", "r", "match.ct_state"),
    ),
    # ---------------------------------------------------------------------- dnat
    (
        "dnat-address",
        _request(_rule(dnat=pb.Dnat(address="")), config=NAT),
        'flow "f", rule "r": dnat.address: "" is not an IPv4 address',
        ("f", "r", "dnat.address"),
    ),
    (
        "dnat-address-v6",
        _request(_rule(dnat=pb.Dnat(address="::1")), config=NAT),
        'flow "f", rule "r": dnat.address: "::1" is IPv6; only IPv4 is supported here',
        ("f", "r", "dnat.address"),
    ),
    (
        "dnat-port",
        _request(_rule(dnat=pb.Dnat(address="10.0.0.1", port=70000)), config=NAT),
        'flow "f", rule "r": dnat.port: 70000 is out of range (1-65535)',
        ("f", "r", "dnat.port"),
    ),
    (
        "dnat-order-address-before-port",
        _request(_rule(dnat=pb.Dnat(address="bad", port=70000)), config=NAT),
        'flow "f", rule "r": dnat.address: "bad" is not an IPv4 address',
        ("f", "r", "dnat.address"),
    ),
    (
        "dnat-protocol",
        _request(
            _rule(dnat=pb.Dnat(address="10.0.0.1"), match=_rm(protocol="icmp")),
            match=_fm(),
            config=NAT,
        ),
        'flow "f", rule "r": match.protocol: NAT translates TCP and UDP only, not icmp',
        ("f", "r", "match.protocol"),
    ),
    (
        "dnat-flow-protocol",
        _request(_rule(dnat=pb.Dnat(address="10.0.0.1")), match=_fm(protocol="47"), config=NAT),
        'flow "f", rule "r": dnat: NAT translates TCP and UDP only; the flow is 47',
        ("f", "r", "dnat"),
    ),
    # -------------------------------------------------------------- load balance
    (
        "lb-backend-address",
        _request(_rule(load_balance=_lb(backends=[pb.Backend(address="x", port=1)])), config=LB),
        'flow "f", rule "r": load_balance.backends[0].address: "x" is not an IPv4 address',
        ("f", "r", "load_balance.backends[0].address"),
    ),
    (
        "lb-backend-port",
        _request(
            _rule(
                load_balance=_lb(
                    backends=[
                        pb.Backend(address="10.0.1.1", port=80),
                        pb.Backend(address="10.0.1.2", port=0),
                    ]
                )
            ),
            config=LB,
        ),
        'flow "f", rule "r": load_balance.backends[1].port: 0 is out of range (1-65535)',
        ("f", "r", "load_balance.backends[1].port"),
    ),
    (
        "lb-backend-weight",
        _request(
            _rule(load_balance=_lb(backends=[pb.Backend(address="10.0.1.1", port=80, weight=101)])),
            config=LB,
        ),
        'flow "f", rule "r": load_balance.backends[0].weight: 101 is out of range (1-100)',
        ("f", "r", "load_balance.backends[0].weight"),
    ),
    (
        "lb-backend-order-address-before-port",
        _request(_rule(load_balance=_lb(backends=[pb.Backend(address="x", port=0)])), config=LB),
        'flow "f", rule "r": load_balance.backends[0].address: "x" is not an IPv4 address',
        ("f", "r", "load_balance.backends[0].address"),
    ),
    (
        "lb-backend-twice",
        _request(
            _rule(
                load_balance=_lb(
                    backends=[
                        pb.Backend(address="10.0.1.1", port=80),
                        pb.Backend(address="10.0.1.1", port=80, weight=3),
                    ]
                )
            ),
            config=LB,
        ),
        'flow "f", rule "r": load_balance.backends[1]: 10.0.1.1:80 is listed twice',
        ("f", "r", "load_balance.backends[1]"),
    ),
    (
        "lb-backends-empty",
        _request(_rule(load_balance=_lb(backends=[])), config=LB),
        'flow "f", rule "r": load_balance.backends: is empty (a VIP needs at least one backend)',
        ("f", "r", "load_balance.backends"),
    ),
    (
        "lb-protocol-missing",
        _request(_rule(load_balance=_lb(protocol="")), config=LB),
        'flow "f", rule "r": load_balance.protocol: is missing (tcp or udp)',
        ("f", "r", "load_balance.protocol"),
    ),
    (
        "lb-protocol-word",
        _request(_rule(load_balance=_lb(protocol="sctp")), config=LB),
        f'flow "f", rule "r": load_balance.protocol: "sctp" is not a protocol ({PROTOCOL_WORDS})',
        ("f", "r", "load_balance.protocol"),
    ),
    (
        "lb-protocol-not-tcp-udp",
        _request(_rule(load_balance=_lb(protocol="icmp")), config=LB),
        'flow "f", rule "r": load_balance.protocol: 1 must be tcp (6) or udp (17)',
        ("f", "r", "load_balance.protocol"),
    ),
    (
        "lb-vip",
        _request(_rule(load_balance=_lb(vip="10.0.0.300")), config=LB),
        'flow "f", rule "r": load_balance.vip: "10.0.0.300" is not an IPv4 address',
        ("f", "r", "load_balance.vip"),
    ),
    (
        "lb-port",
        _request(_rule(load_balance=_lb(port=0)), config=LB),
        'flow "f", rule "r": load_balance.port: 0 is out of range (1-65535)',
        ("f", "r", "load_balance.port"),
    ),
    (
        "lb-order-backends-before-protocol",
        _request(
            _rule(load_balance=_lb(backends=[pb.Backend(address="x")], protocol="", vip="x")),
            config=LB,
        ),
        'flow "f", rule "r": load_balance.backends[0].address: "x" is not an IPv4 address',
        ("f", "r", "load_balance.backends[0].address"),
    ),
    (
        "lb-order-protocol-before-vip",
        _request(_rule(load_balance=_lb(protocol="", vip="x", port=0)), config=LB),
        'flow "f", rule "r": load_balance.protocol: is missing (tcp or udp)',
        ("f", "r", "load_balance.protocol"),
    ),
    (
        "lb-order-vip-before-port",
        _request(_rule(load_balance=_lb(vip="x", port=0, backends=[])), config=LB),
        'flow "f", rule "r": load_balance.vip: "x" is not an IPv4 address',
        ("f", "r", "load_balance.vip"),
    ),
    (
        "lb-with-match",
        _request(_rule(load_balance=_lb(), match=_rm(direction=pb.DIRECTION_TO_GUEST)), config=LB),
        'flow "f", rule "r": match: a load_balance rule matches on its vip, port and protocol '
        "only; leave match empty",
        ("f", "r", "match"),
    ),
    (
        "lb-needs-service",
        _request(_rule(load_balance=_lb())),
        'flow "f", rule "r": load_balance: load_balance needs the flow\'s lb service',
        ("f", "r", "load_balance"),
    ),
    (
        "lb-vip-outside-flow",
        _request(_rule(load_balance=_lb()), match=_fm(dst="192.0.2.0/24"), config=LB),
        'flow "f", rule "r": load_balance.vip: vip 10.0.0.1 is outside the flow\'s dst '
        "192.0.2.0/24: no packet to it is in the flow",
        ("f", "r", "load_balance.vip"),
    ),
    (
        "lb-protocol-other-than-flow",
        _request(_rule(load_balance=_lb(protocol="udp")), config=LB),
        'flow "f", rule "r": load_balance.protocol: udp, but the flow is tcp',
        ("f", "r", "load_balance.protocol"),
    ),
    (
        "lb-port-outside-flow",
        _request(
            _rule(load_balance=_lb(port=8080)),
            match=_fm(protocol="tcp", dst_ports=_ports(80, 443)),
            config=LB,
        ),
        'flow "f", rule "r": load_balance.port: port 8080 is outside the flow\'s dst_ports 80-443',
        ("f", "r", "load_balance.port"),
    ),
    # --------------------------------------------------------- rules in the flow
    (
        "rule-other-family",
        _request(_rule(match=_rm(dst="2001:db8::/32")), match=_fm(dst="10.0.0.0/8")),
        'flow "f", rule "r": match: the rule matches IPv6 but its flow IPv4: it could never match',
        ("f", "r", "match"),
    ),
    (
        "rule-other-protocol",
        _request(_rule(match=_rm(protocol="udp"))),
        'flow "f", rule "r": match.protocol: udp, but the flow is tcp: the rule could never match',
        ("f", "r", "match.protocol"),
    ),
    (
        "rule-id-missing",
        _request(_rule(), _rule(id="")),
        'flow "f", rule #2: id: is missing (an id is required)',
        ("f", "#2", "id"),
    ),
    (
        "rule-id-bad",
        _request(_rule(id="has space")),
        'flow "f", rule "has space": id: "has space" is not a valid id (1-63 letters, digits, '
        "'_', '.', ':', '-', starting with a letter or digit)",
        ("f", "has space", "id"),
    ),
    (
        "rule-id-bad-field-error-first",
        _request(_rule(id="has space", match=_rm(src="x"))),
        'flow "f", rule "has space": match.src: "x" is not an IPv4 or IPv6 address or prefix',
        ("f", "has space", "match.src"),
    ),
    (
        "rule-id-twice",
        _request(_rule(), _rule()),
        'flow "f", rule "r": id: duplicate rule id',
        ("f", "r", "id"),
    ),
    (
        "second-rule",
        _request(_rule(), _rule(id="s", match=_rm(dst="x"))),
        'flow "f", rule "s": match.dst: "x" is not an IPv4 or IPv6 address or prefix',
        ("f", "s", "match.dst"),
    ),
    # the order a flow is converted in: its rules, its match, then its config
    (
        "flow-order-rules-first",
        _request(
            _rule(match=_rm(src="x")),
            match=_fm(src="y"),
            config=pb.FlowConfig(),
        ),
        'flow "f", rule "r": match.src: "x" is not an IPv4 or IPv6 address or prefix',
        ("f", "r", "match.src"),
    ),
    (
        "flow-order-match-before-config",
        _request(match=_fm(src="y"), config=pb.FlowConfig()),
        'flow "f": match.src: "y" is not an IPv4 or IPv6 address or prefix',
        ("f", None, "match.src"),
    ),
    (
        "flow-order-fields-before-id",
        _request(match=_fm(src="y"), flow_id=""),
        'flow #1: match.src: "y" is not an IPv4 or IPv6 address or prefix',
        ("#1", None, "match.src"),
    ),
    # ------------------------------------------------------------------ requests
    (
        "flow-id-missing",
        _request(flow_id=""),
        "flow #1: id: is missing (an id is required)",
        ("#1", None, "id"),
    ),
    (
        "flow-id-bad-rule-located",
        _request(_rule(id=""), flow_id="-f"),
        'flow "-f", rule #1: id: is missing (an id is required)',
        ("-f", "#1", "id"),
    ),
    (
        "second-flow",
        pb.OffloadRequest(
            flows=[
                pb.Flow(id="a", config=_config()),
                pb.Flow(config=_config(default_verdict=9)),
            ]
        ),
        "flow #2: config.default_verdict: 9 is not a valid verdict",
        ("#2", None, "config.default_verdict"),
    ),
    (
        "flow-id-twice",
        pb.OffloadRequest(flows=[pb.Flow(id="a", config=_config())] * 2),
        'flow "a": id: duplicate flow id',
        ("a", None, "id"),
    ),
    (
        "vnic",
        pb.OffloadRequest(vnic="bad vnic"),
        'vnic: "bad vnic" is not a valid id (1-63 letters, digits, \'_\', \'.\', \':\', \'-\', '
        "starting with a letter or digit)",
        (None, None, "vnic"),
    ),
    (
        "vip-twice",
        pb.OffloadRequest(
            flows=[
                pb.Flow(id=name, config=LB, rules=[_rule(load_balance=_lb())])
                for name in ("a", "b")
            ]
        ),
        'flow "b", rule "r": load_balance: 10.0.0.1:80/tcp is already balanced by flow "a", '
        'rule "r"',
        ("b", "r", "load_balance"),
    ),
]


@pytest.mark.parametrize(
    ("request_", "message", "location"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_from_proto_error(request_: pb.OffloadRequest, message: str, location: Location) -> None:
    with pytest.raises(RuleError) as info:
        from_proto(request_)
    error = info.value
    assert type(error) is RuleError
    assert str(error) == message
    assert (error.flow, error.rule, error.field) == location
    assert message.endswith(error.reason)
    assert error.source is None
    # located on the way up, re-raised without the inner error attached
    assert error.__cause__ is None
    assert error.__suppress_context__


def test_case_ids_are_unique() -> None:
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids))
