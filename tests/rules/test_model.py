"""The rule model: built in Python, from files and from the wire; refused when
the pipeline could not carry it out, with the flow, rule and field named."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import attrs
import pytest

from guest_shim import offload_pb2 as pb
from guest_shim import parse_file
from pyoffload.rules import (
    Backend,
    CtState,
    Direction,
    Dnat,
    Flow,
    FlowConfig,
    FlowMatch,
    LoadBalance,
    OffloadRequest,
    PortRange,
    RateLimit,
    Rule,
    RuleError,
    RuleMatch,
    Service,
    Snat,
    TcpFlags,
    Timeouts,
    Verdict,
    from_proto,
    load_data,
    load_file,
    load_text,
    to_proto,
    validate_for_vnic,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "pyoffload" / "examples"
DEFINES = Path(__file__).resolve().parents[2] / "p4src" / "include" / "defines.p4"
net = ipaddress.ip_network
addr = ipaddress.IPv4Address


def web_flow() -> Flow:
    return Flow(
        id="web",
        match=FlowMatch(
            direction=Direction.TO_GUEST,
            protocol=6,
            dst=net("192.0.2.10/32"),
            dst_ports=PortRange(lo=80, hi=443),
        ),
        config=FlowConfig(
            services={Service.CONNTRACK, Service.COUNT},
            default_verdict=Verdict.DENY,
            timeouts=Timeouts(tcp_established=600),
        ),
        rules=[
            Rule(
                id="http",
                match=RuleMatch(ct_state=CtState.NEW, dst_ports=PortRange.single(80)),
                action=Verdict.ALLOW_TRACK,
            ),
            Rule(
                id="flags",
                match=RuleMatch(tcp_flags=TcpFlags(value=2, mask=0x12)),
                action=Verdict.ALLOW,
                rate_limit=RateLimit(cir=10, cbs=10, pir=20, pbs=10),
            ),
        ],
    )


def test_examples_load_and_round_trip() -> None:
    for path in sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".yaml", ".json")):
        request = load_file(path)
        assert from_proto(to_proto(request)) == request
        assert to_proto(request) == to_proto(from_proto(parse_file(path)))


def test_built_in_python_round_trips() -> None:
    request = OffloadRequest(vnic="web-1", generation=4, flows=[web_flow()])
    assert isinstance(request.flows, tuple) and request.flows[0].rules[0].id == "http"
    assert from_proto(to_proto(request)) == request
    assert to_proto(request).flows[0].rules[1].match.tcp_flags.mask == 0x12


def test_frozen_slotted_keyword_only() -> None:
    flow = web_flow()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        flow.id = "x"  # type: ignore[misc]
    assert not hasattr(flow, "__dict__")
    with pytest.raises(TypeError):
        PortRange(1, 2)  # type: ignore[call-arg]


def test_order_is_priority() -> None:
    text = """
flows:
  - id: b
    config: {default_verdict: deny}
    rules: [{id: z, verdict: deny}, {id: a, verdict: allow}, {id: m, verdict: punt}]
  - id: a
    config: {default_verdict: allow}
"""
    request = load_text(text)
    assert [f.id for f in request.flows] == ["b", "a"]
    assert [r.id for r in request.flows[0].rules] == ["z", "a", "m"]


def test_ipv6_flow() -> None:
    request = load_file(EXAMPLES / "rate-limited.yaml")
    flow = request.flows[0]
    assert flow.match.dst == net("2001:db8:100::/48") and flow.match.ip_version == 6
    assert flow.config.rate_limit == RateLimit(
        cir=10_000_000, cbs=1_000_000, pir=12_500_000, pbs=1_500_000
    )


def test_constants_exist_in_defines() -> None:
    defines = DEFINES.read_text()
    names = [v.constant for v in Verdict] + [s.constant for s in Service]
    names += [c.constant for c in CtState if c.constant] + [
        d.constant for d in Direction if d.constant
    ]
    from pyoffload.rules import TIMEOUT_STATES

    names += [state for states in TIMEOUT_STATES.values() for state in states]
    for name in names:
        assert f" {name} " in defines, name
    assert set(TIMEOUT_STATES) == {a.name for a in attrs.fields(Timeouts)}


def flows_yaml(flow: str) -> str:
    return "flows:\n" + flow


def _error(text: str) -> RuleError:
    with pytest.raises(RuleError) as info:
        load_text(text, source="f.yaml")
    return info.value


BAD = [
    # NAT and load balancing are IPv4 TCP/UDP tables
    (
        "{id: f, match: {dst: '2001:db8::/32'}, config: {services: [nat], default_verdict: allow},"
        " rules: [{id: n, snat: {address: 1.2.3.4, ports: 1000-2000}}]}",
        'flow "f", rule "n": snat: NAT is IPv4 only; the flow matches IPv6',
    ),
    (
        "{id: f, config: {services: [nat], default_verdict: allow},"
        " rules: [{id: n, match: {src: '2001:db8::/32'}, dnat: {address: 1.2.3.4}}]}",
        'rule "n": match: NAT is IPv4 only',
    ),
    (
        "{id: f, match: {protocol: icmp}, config: {services: [nat], default_verdict: allow},"
        " rules: [{id: n, dnat: {address: 1.2.3.4}}]}",
        "NAT translates TCP and UDP only",
    ),
    (
        "{id: f, config: {default_verdict: allow}, rules: [{id: n, dnat: {address: 1.2.3.4}}]}",
        'rule "n": dnat: dnat needs the flow\'s nat service',
    ),
    (
        "{id: f, config: {services: [nat], default_verdict: allow},"
        " rules: [{id: n, match: {ct_state: invalid}, dnat: {address: 1.2.3.4}}]}",
        "match.ct_state: NAT acts on the first packet",
    ),
    (
        "{id: f, config: {services: [nat], default_verdict: allow}, rules: [{id: n,"
        " match: {protocol: tcp, tcp_flags: syn}, dnat: {address: 1.2.3.4}}]}",
        "NAT rules cannot match TCP flags",
    ),
    (
        "{id: f, config: {services: [nat], default_verdict: allow}, rules: [{id: n,"
        " dnat: {address: 1.2.3.4}, rate_limit: {cir: 1, cbs: 1}}]}",
        "rate limits are for verdict rules",
    ),
    # load balancing
    (
        "{id: f, config: {default_verdict: allow}, rules: [{id: v, load_balance: {vip: 1.2.3.4,"
        " port: 80, protocol: tcp, backends: [{address: 10.0.0.1, port: 80}]}}]}",
        "load_balance needs the flow's lb service",
    ),
    (
        "{id: f, match: {dst: 10.0.0.0/8}, config: {services: [lb], default_verdict: allow},"
        " rules: [{id: v, load_balance: {vip: 1.2.3.4, port: 80, protocol: tcp,"
        " backends: [{address: 10.0.0.1, port: 80}]}}]}",
        "load_balance.vip: vip 1.2.3.4 is outside the flow's dst 10.0.0.0/8",
    ),
    (
        "{id: f, match: {protocol: udp}, config: {services: [lb], default_verdict: allow},"
        " rules: [{id: v, load_balance: {vip: 1.2.3.4, port: 80, protocol: tcp,"
        " backends: [{address: 10.0.0.1, port: 80}]}}]}",
        "load_balance.protocol: tcp, but the flow is udp",
    ),
    (
        "{id: f, match: {protocol: tcp, dst_ports: 443},"
        " config: {services: [lb], default_verdict: allow},"
        " rules: [{id: v, load_balance: {vip: 1.2.3.4, port: 80, protocol: tcp,"
        " backends: [{address: 10.0.0.1, port: 80}]}}]}",
        "port 80 is outside the flow's dst_ports 443",
    ),
    (
        "{id: f, config: {services: [lb], default_verdict: allow}, rules: [{id: v,"
        " match: {direction: to-guest}, load_balance: {vip: 1.2.3.4, port: 80, protocol: tcp,"
        " backends: [{address: 10.0.0.1, port: 80}]}}]}",
        "leave match empty",
    ),
    # services and their settings
    (
        "{id: f, config: {default_verdict: allow-track}}",
        'flow "f": config.default_verdict: allow-track needs the conntrack service',
    ),
    (
        "{id: f, config: {default_verdict: deny}, rules: [{id: r, verdict: allow-track}]}",
        'rule "r": verdict: allow-track needs the flow\'s conntrack service',
    ),
    ("{id: f, config: {default_verdict: deny, services: [rate-limit]}}", "config.rate_limit"),
    ("{id: f, config: {default_verdict: deny, rate_limit: {cir: 1, cbs: 1}}}", "go together"),
    ("{id: f, config: {default_verdict: deny, services: [mirror]}}", "config.mirror_session"),
    ("{id: f, config: {default_verdict: deny, mirror_session: 3}}", "config.mirror_session"),
    (
        "{id: f, config: {default_verdict: deny, timeouts: {icmp: 5}}}",
        "config.timeouts: timeouts need a service that keeps connections",
    ),
    # matches the pipeline cannot express, or that could never match
    (
        "{id: f, config: {default_verdict: deny}, rules: [{id: r, match: {ct_state: established},"
        " verdict: allow}]}",
        "match.ct_state: established: packets of established connections",
    ),
    (
        "{id: f, config: {default_verdict: deny}, rules: [{id: r, match: {dst_ports: 80},"
        " verdict: allow}]}",
        'rule "r": match.dst_ports: ports need protocol tcp or udp',
    ),
    (
        "{id: f, match: {protocol: icmp, src_ports: 1}, config: {default_verdict: deny}}",
        'flow "f": match.src_ports: ports need protocol tcp or udp (the match has icmp)',
    ),
    (
        "{id: f, match: {protocol: udp}, config: {default_verdict: deny}, rules: [{id: r,"
        " match: {tcp_flags: syn}, verdict: allow}]}",
        "match.tcp_flags: TCP flags need protocol tcp",
    ),
    (
        "{id: f, match: {protocol: icmp, dst: '2001:db8::/32'}, config: {default_verdict: deny}}",
        "icmp is IPv4; use icmpv6",
    ),
    (
        "{id: f, match: {dst: 10.0.0.0/8}, config: {default_verdict: deny}, rules: [{id: r,"
        " match: {src: '2001:db8::/32'}, verdict: deny}]}",
        "the rule matches IPv6 but its flow IPv4",
    ),
    (
        "{id: f, match: {protocol: tcp}, config: {default_verdict: deny}, rules: [{id: r,"
        " match: {protocol: udp}, verdict: deny}]}",
        "udp, but the flow is tcp",
    ),
    (
        "{id: f, config: {default_verdict: deny}, rules: [{id: r, verdict: deny,"
        " rate_limit: {cir: 1, cbs: 1}}]}",
        "a rate limit on a deny rule would never act",
    ),
]


@pytest.mark.parametrize(("flow", "expected"), BAD)
def test_refused(flow: str, expected: str) -> None:
    error = _error(flows_yaml(f"  - {flow}\n"))
    assert expected in str(error), str(error)
    assert str(error).startswith("f.yaml: ")


def test_duplicate_vip_across_flows() -> None:
    lb = (
        "rules: [{id: v, load_balance: {vip: 1.2.3.4, port: 80, protocol: tcp,"
        " backends: [{address: 10.0.0.1, port: 80}]}}]"
    )
    text = flows_yaml(
        f"  - {{id: a, config: {{services: [lb], default_verdict: allow}}, {lb}}}\n"
        f"  - {{id: b, config: {{services: [lb], default_verdict: allow}}, {lb}}}\n"
    )
    error = _error(text)
    assert (
        'flow "b", rule "v": load_balance: 1.2.3.4:80/tcp is already balanced by flow "a"'
        in str(error)
    )


def test_validate_for_vnic() -> None:
    request = OffloadRequest(flows=[web_flow()])
    assert validate_for_vnic(request, "vm-7").vnic == "vm-7"
    named = attrs.evolve(request, vnic="vm-7")
    assert validate_for_vnic(named, "vm-7") is named
    with pytest.raises(RuleError) as info:
        validate_for_vnic(attrs.evolve(request, vnic="vm-8"), "vm-7")
    assert info.value.field == "vnic"
    assert str(info.value) == (
        'vnic: the request is for VNIC "vm-8" but this channel belongs to "vm-7"'
    )


def test_python_construction_errors() -> None:
    with pytest.raises(RuleError, match=r'"9-3" is not a range \(low > high\)'):
        PortRange(lo=9, hi=3)
    with pytest.raises(RuleError, match="not a port"):
        PortRange(lo=0, hi=70000)
    with pytest.raises(RuleError, match="peak rate must be >= cir"):
        RateLimit(cir=10, cbs=1, pir=5, pbs=1)
    with pytest.raises(RuleError, match="IPv4 only"):
        Snat(address=ipaddress.IPv6Address("::1"), ports=PortRange(lo=1, hi=2))  # type: ignore[arg-type]
    with pytest.raises(RuleError, match="includes port 0"):
        Snat(address=addr("1.2.3.4"), ports=PortRange(lo=0, hi=2))
    with pytest.raises(RuleError, match="out of range"):
        Backend(address=addr("1.2.3.4"), port=80, weight=0)
    with pytest.raises(RuleError, match="must be tcp"):
        LoadBalance(
            vip=addr("1.2.3.4"),
            port=80,
            protocol=1,
            backends=[Backend(address=addr("1.2.3.5"), port=80)],
        )
    with pytest.raises(RuleError, match="at least one backend"):
        LoadBalance(vip=addr("1.2.3.4"), port=80, protocol=6, backends=[])
    with pytest.raises(RuleError, match="one family per match"):
        FlowMatch(src=net("10.0.0.0/8"), dst=net("::/0"))
    with pytest.raises(RuleError) as info:
        Flow(
            id="f",
            config=FlowConfig(default_verdict=Verdict.DENY),
            rules=[Rule(id="r", action=Verdict.DENY), Rule(id="r", action=Verdict.ALLOW)],
        )
    assert str(info.value) == 'flow "f", rule "r": id: duplicate rule id'
    with pytest.raises(RuleError, match="is not a valid id"):
        Rule(id="has space", action=Verdict.DENY)
    with pytest.raises(RuleError, match="out of range"):
        Timeouts(tcp_syn=0)
    with pytest.raises(RuleError, match="duplicate flow id"):
        OffloadRequest(flows=[web_flow(), web_flow()])
    assert Dnat(address=addr("1.2.3.4")).port is None


def test_from_proto_refuses_bad_wire_values() -> None:
    def request(rule: pb.Rule) -> pb.OffloadRequest:
        flow = pb.Flow(id="f", config=pb.FlowConfig(default_verdict=pb.VERDICT_DENY), rules=[rule])
        return pb.OffloadRequest(flows=[flow])

    cases = [
        (pb.Rule(id="r", verdict=pb.VERDICT_UNSPECIFIED), 'rule "r": verdict: is unspecified'),
        (pb.Rule(id="r", verdict=99), "verdict: 99 is not a valid verdict"),  # type: ignore[arg-type]
        (pb.Rule(id="r"), "needs exactly one action"),
        (pb.Rule(verdict=pb.VERDICT_DENY), "rule #1: id: is missing"),
        (
            pb.Rule(id="r", verdict=pb.VERDICT_DENY, match=pb.RuleMatch(src="10.0.0.1/8")),
            'match.src: "10.0.0.1/8" has host bits set',
        ),
        (
            pb.Rule(
                id="r",
                verdict=pb.VERDICT_DENY,
                match=pb.RuleMatch(protocol="tcp", dst_ports=pb.PortRange(lo=9, hi=3)),
            ),
            'match.dst_ports: "9-3" is not a range',
        ),
        (
            pb.Rule(
                id="r",
                verdict=pb.VERDICT_DENY,
                match=pb.RuleMatch(protocol="tcp", tcp_flags=pb.TcpFlags(value=3, mask=1)),
            ),
            "match.tcp_flags",
        ),
        (pb.Rule(id="r", snat=pb.Snat(address="1.2.3.4")), "snat.ports: is missing"),
        (pb.Rule(id="r", dnat=pb.Dnat(address="bad")), 'dnat.address: "bad" is not an IPv4'),
        (
            pb.Rule(id="r", load_balance=pb.LoadBalance(vip="1.2.3.4", port=80)),
            "load_balance.protocol: is missing",
        ),
        (
            pb.Rule(
                id="r",
                load_balance=pb.LoadBalance(
                    vip="1.2.3.4",
                    port=80,
                    protocol="tcp",
                    backends=[pb.Backend(address="1.2.3.5", port=0)],
                ),
            ),
            "load_balance.backends[0].port: 0 is out of range",
        ),
    ]
    for rule, expected in cases:
        with pytest.raises(RuleError) as info:
            from_proto(request(rule))
        assert expected in str(info.value), (str(info.value), expected)
    with pytest.raises(RuleError, match="default_verdict: is missing"):
        from_proto(pb.OffloadRequest(flows=[pb.Flow(id="f")]))
    with pytest.raises(RuleError, match=r"services\[0\]: 42 is not a valid service"):
        from_proto(
            pb.OffloadRequest(
                flows=[
                    pb.Flow(
                        id="f",
                        config=pb.FlowConfig(
                            default_verdict=pb.VERDICT_DENY,
                            services=[42],  # type: ignore[list-item]
                        ),
                    )
                ]
            )
        )


def test_load_data_and_file_errors(tmp_path: Path) -> None:
    assert load_data({"vnic": "a"}) == OffloadRequest(vnic="a")
    bad = tmp_path / "bad.yaml"
    bad.write_text("flows: [{id: f, config: {default_verdict: allow-track}}]\n")
    with pytest.raises(RuleError) as info:
        load_file(bad)
    assert str(info.value).startswith(f'{bad}: flow "f": config.default_verdict')
    with pytest.raises(RuleError, match="unknown field"):
        load_data({"vnics": "a"})
