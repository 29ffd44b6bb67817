"""Rule files: every example parses; bad input gets an error naming where."""

from __future__ import annotations

from pathlib import Path

import pytest
from guest_shim.errors import RuleFileError

from guest_shim import offload_pb2 as pb
from guest_shim import parse_file, parse_text

EXAMPLES = Path(__file__).resolve().parents[2] / "pyoffload" / "examples"

GOOD = """
vnic: web-1
generation: 3
flows:
  - id: web-out
    match: {direction: from-guest, protocol: tcp, dst: 192.0.2.0/24, dst_ports: 80-443}
    config:
      services: [conntrack, count]
      default_verdict: deny
      timeouts: {tcp_established: 600}
    rules:
      - id: allow-web
        match: {ct_state: new, tcp_flags: "syn,!ack"}
        verdict: allow-track
"""


def test_every_example_parses() -> None:
    files = sorted(EXAMPLES.glob("*.yaml")) + sorted(EXAMPLES.glob("*.json"))
    assert len(files) >= 5
    for path in files:
        request = parse_file(path)
        assert request.flows, path


def test_good_file_fields() -> None:
    request = parse_text(GOOD)
    assert request.vnic == "web-1" and request.generation == 3
    flow = request.flows[0]
    assert flow.match.direction == pb.DIRECTION_FROM_GUEST
    assert flow.match.protocol == "tcp"
    assert (flow.match.dst_ports.lo, flow.match.dst_ports.hi) == (80, 443)
    assert not flow.match.HasField("src_ports")
    assert list(flow.config.services) == [pb.SERVICE_CONNTRACK, pb.SERVICE_COUNT]
    assert flow.config.timeouts.tcp_established == 600
    rule = flow.rules[0]
    assert rule.WhichOneof("action") == "verdict"
    assert rule.verdict == pb.VERDICT_ALLOW_TRACK
    assert (rule.match.tcp_flags.value, rule.match.tcp_flags.mask) == (0x02, 0x12)


def test_json_and_yaml_give_the_same_message() -> None:
    yaml_request = parse_file(EXAMPLES / "load-balancer.json")
    import json

    text = json.dumps(json.loads((EXAMPLES / "load-balancer.json").read_text()))
    assert parse_text(text, fmt="json") == yaml_request
    assert parse_text(text, fmt="yaml") == yaml_request


def test_single_rate_limit_defaults_peak_to_committed() -> None:
    request = parse_file(EXAMPLES / "rate-limited.yaml")
    limit = request.flows[0].rules[0].rate_limit
    assert (limit.cir, limit.cbs, limit.pir, limit.pbs) == (1000000, 100000, 1000000, 100000)


def _error(text: str, fmt: str = "yaml") -> RuleFileError:
    with pytest.raises(RuleFileError) as info:
        parse_text(text, fmt=fmt, source="rules.yaml")
    return info.value


def _swap(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


BAD = [
    (
        _swap("80-443", '"80-70"'),
        'flow "web-out": match.dst_ports: "80-70" is not a range (low > high)',
    ),
    (_swap("80-443", "80-99999"), "match.dst_ports"),
    (_swap("80-443", "http"), "is not a port or range of ports"),
    (
        _swap("ct_state", "ct_stat"),
        'rule "allow-web": match.ct_stat: unknown field (did you mean "ct_state"?)',
    ),
    (_swap("verdict: allow-track", "verdict: allow_track"), 'did you mean "allow-track"?'),
    (_swap("verdict: allow-track", "verdikt: allow-track"), 'did you mean "verdict"?'),
    (_swap("192.0.2.0/24", "192.0.2.1/24"), "has host bits set (did you mean 192.0.2.0/24?)"),
    (
        _swap("192.0.2.0/24", "192.0.2.300"),
        '"192.0.2.300" is not an IPv4 or IPv6 address or prefix',
    ),
    (_swap("dst: 192.0.2.0/24", "dst: 192.0.2.0/24, src: '2001:db8::/32'"), "one family per match"),
    (_swap("protocol: tcp", "protocol: tcpp"), "is not a protocol"),
    (_swap("protocol: tcp", "protocol: 300"), "is not a protocol number (0-255)"),
    (
        _swap("direction: from-guest", "direction: out"),
        'flow "web-out": match.direction: "out" is not one of',
    ),
    (_swap("services: [conntrack, count]", "services: [conntrack, conntrack]"), "listed twice"),
    (_swap("services: [conntrack, count]", "services: [firewall]"), "config.services[0]"),
    (
        _swap("services: [conntrack, count]", "services: conntrack"),
        "config.services: must be a list",
    ),
    (_swap("default_verdict: deny", "default_verdict: maybe"), "config.default_verdict"),
    (_swap("      default_verdict: deny\n", ""), "config.default_verdict: is missing"),
    (
        _swap("tcp_established: 600", "tcp_established: 0"),
        "config.timeouts.tcp_established: 0 is out of range",
    ),
    (_swap("tcp_established: 600", "tcp_establish: 600"), 'did you mean "tcp_established"?'),
    (_swap("tcp_established: 600", "tcp_established: ten"), '"ten" is not an integer'),
    (_swap('"syn,!ack"', '"syn,!akc"'), '"!akc" is not a TCP flag'),
    (_swap("- id: allow-web", "- id: allow web"), 'rule #1: id: "allow web" is not a valid id'),
    (_swap("- id: web-out", "- name: web-out"), "flow #1: name: unknown field"),
    (_swap("generation: 3", "generation: -1"), "generation: -1 is out of range"),
    (_swap("generation: 3", "generation: true"), "generation: True is not an integer"),
    (_swap("vnic: web-1", "vnic: [a]"), "vnic: must be text"),
    (_swap("flows:", "flow:"), 'flow: unknown field (did you mean "flows"?)'),
    (
        GOOD + "      - id: allow-web\n        verdict: deny\n",
        'rule "allow-web": id: duplicate rule id',
    ),
    (
        GOOD + "  - id: web-out\n    config: {default_verdict: deny}\n",
        'flow "web-out": id: duplicate flow id (flow #1 has it too)',
    ),
    (
        GOOD + "      - id: two\n        verdict: deny\n        dnat: {address: 10.0.0.1}\n",
        "needs exactly one action",
    ),
    (GOOD + "      - id: none\n", 'rule "none": needs exactly one action'),
    (GOOD + "      - id: s\n        snat: {address: 10.0.0.1}\n", "snat.ports: is missing"),
    (GOOD + "      - id: s\n        snat: {address: '::1', ports: 1-2}\n", "is IPv6; only IPv4"),
    (
        GOOD + "      - id: s\n        snat: {address: 10.0.0.1, ports: 0-10}\n",
        "must be ports 1-65535",
    ),
    (
        GOOD + "      - id: d\n        dnat: {address: 10.0.0.1, port: 70000}\n",
        "dnat.port: 70000 is not a port",
    ),
    (
        GOOD + "      - id: l\n        load_balance: {vip: 10.0.0.1, port: 80, protocol: icmp,"
        " backends: []}\n",
        "load_balance.protocol",
    ),
    (
        GOOD + "      - id: l\n        load_balance: {vip: 10.0.0.1, port: 80, protocol: tcp,"
        " backends: []}\n",
        "load_balance.backends: is empty",
    ),
    (
        GOOD + "      - id: l\n        load_balance: {vip: 10.0.0.1, port: 80, protocol: tcp,"
        " backends: [{address: 10.0.0.2, port: 80, weight: 101}]}\n",
        "load_balance.backends[0].weight: 101 is out of range (1-100)",
    ),
    (
        GOOD + "      - id: l\n        load_balance: {vip: 10.0.0.1, port: 80, protocol: tcp,"
        " backends: [{address: 10.0.0.2, port: 80}, {address: 10.0.0.2, port: 80}]}\n",
        "10.0.0.2:80 is listed twice",
    ),
    (
        GOOD + "        rate_limit: {cir: 100, cbs: 10, pir: 50}\n",
        "rate_limit.pir: 50 is below cir 100",
    ),
    (GOOD + "        rate_limit: {cbs: 10}\n", "rate_limit.cir: is missing"),
    ("flows: [\n", "line 2, column 1: invalid YAML"),
    ("vnic: a\nvnic: b\n", 'line 2, column 1: invalid YAML: duplicate key "vnic"'),
    ("- just a list\n", "must be a mapping"),
    (
        "flows: [{id: x, config: {default_verdict: deny},"
        " rules: [{id: r, verdict: deny, match: 5}]}]",
        "match: must be a mapping",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_bad_input_names_the_place(text: str, expected: str) -> None:
    error = _error(text)
    assert expected in str(error), str(error)
    assert str(error).startswith("rules.yaml: ")


def test_error_attributes() -> None:
    error = _error(_swap("80-443", '"80-70"'))
    assert (error.flow, error.rule, error.field) == ("web-out", None, "match.dst_ports")
    assert error.reason == '"80-70" is not a range (low > high)'


def test_bad_json() -> None:
    assert "line 1, column" in str(_error('{"flows": [}', fmt="json"))
    assert 'duplicate key "vnic"' in str(_error('{"vnic": "a", "vnic": "b"}', fmt="json"))


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError, match="cannot read"):
        parse_file(tmp_path / "missing.yaml")
    (tmp_path / "latin1.yaml").write_bytes(b"vnic: \xe9\n")
    with pytest.raises(RuleFileError, match="not UTF-8"):
        parse_file(tmp_path / "latin1.yaml")


def test_empty_file_is_an_empty_request() -> None:
    assert parse_text("") == pb.OffloadRequest()
