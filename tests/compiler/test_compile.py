"""The compiler against the committed P4Info: names, values, order, warnings."""

from __future__ import annotations

from pathlib import Path

import pytest
from finsy import P4Schema, P4TableEntry

from pyoffload.compiler import ResourcePool, VnicTarget, compile_request
from pyoffload.compiler.matches import covers
from pyoffload.pipeline import names
from pyoffload.pipeline.artifacts import Artifacts, load_constants
from pyoffload.rules import (
    CtState,
    Direction,
    Flow,
    FlowConfig,
    OffloadRequest,
    PortRange,
    Rule,
    RuleMatch,
    Verdict,
    load_file,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "pyoffload" / "examples"
SCHEMA = P4Schema(Artifacts.packaged().p4info)
CONST = load_constants()
TARGET = VnicTarget(name="web-1", vnic_id=7)


def test_every_name_the_compiler_writes_is_in_the_p4info() -> None:
    p4info = SCHEMA.p4info
    tables = {t.preamble.name for t in p4info.tables}
    actions = {a.preamble.name for a in p4info.actions}
    assert set(names.ALL_TABLES) <= tables
    assert set(names.ALL_ACTIONS) <= actions
    assert names.LB_SELECTOR in {p.preamble.name for p in p4info.action_profiles}
    assert names.FLOW_METER in {m.preamble.name for m in p4info.meters}


EXAMPLE_FILES = sorted(p.name for p in EXAMPLES.iterdir() if p.suffix in (".yaml", ".json"))


@pytest.mark.parametrize("example", EXAMPLE_FILES)
def test_every_example_compiles_and_encodes(example: str) -> None:
    request = load_file(EXAMPLES / example)
    compiled = compile_request(request, TARGET, CONST, ResourcePool())
    encoded = [e.encode(SCHEMA) for e in compiled.entities]
    assert encoded
    for entity in encoded:
        if entity.WhichOneof("entity") != "table_entry":
            continue
        te = entity.table_entry
        table = SCHEMA.tables[te.table_id]
        if "vnic_id" not in [f.name for f in table.match_fields]:
            continue  # ct_timeout: keyed by profile
        vnic_id = table.match_fields["vnic_id"].id
        field = next(m for m in te.match if m.field_id == vnic_id)
        assert int.from_bytes(field.exact.value, "big") == 7, table.name


def test_output_is_deterministic_and_install_ordered() -> None:
    request = load_file(EXAMPLES / "stateful-web-server.yaml")
    first = compile_request(request, TARGET, CONST, ResourcePool())
    second = compile_request(request, TARGET, CONST, ResourcePool())
    assert [e.encode(SCHEMA) for e in first.entities] == \
        [e.encode(SCHEMA) for e in second.entities]
    tables = [str(e.table_id) for e in first.entities if isinstance(e, P4TableEntry)]
    # the classifier comes last: no packet is classified into a half-installed flow
    assert tables[-2:] == [names.FLOW_CLASSIFIER, names.FLOW_CLASSIFIER]
    assert tables.index(names.FLOW_CONFIG) > tables.index(names.ACL)


def test_flows_keep_their_numbers_across_requests() -> None:
    pool = ResourcePool()
    request = load_file(EXAMPLES / "stateful-web-server.yaml")
    first = compile_request(request, TARGET, CONST, pool)
    reordered = OffloadRequest(flows=tuple(reversed(request.flows)))
    second = compile_request(reordered, TARGET, CONST, pool)
    assert first.flow_ids == second.flow_ids


def test_priorities_follow_rule_order_and_fields_are_ternary() -> None:
    request = load_file(EXAMPLES / "stateful-web-server.yaml")
    compiled = compile_request(request, TARGET, CONST, ResourcePool())
    acl = [e for e in compiled.entities
           if isinstance(e, P4TableEntry) and e.table_id == names.ACL]
    priorities = [e.priority for e in acl[:3]]
    assert priorities == sorted(priorities, reverse=True)
    first = acl[0].encode_entry(SCHEMA)
    field_names = {SCHEMA.tables[names.ACL].match_fields[m.field_id].name: m
                   for m in first.match}
    assert field_names["dst_port"].range.low == (80).to_bytes(1, "big") or \
        int.from_bytes(field_names["dst_port"].range.low, "big") == 80
    assert int.from_bytes(field_names["ct_state"].ternary.value, "big") == CONST["CTS_NEW"]


def _rule(rule_id: str, **match: object) -> Rule:
    return Rule(id=rule_id, action=Verdict.ALLOW, match=RuleMatch(**match))  # type: ignore[arg-type]


def test_shadowed_rules_are_reported() -> None:
    flow = Flow(
        id="f",
        config=FlowConfig(default_verdict=Verdict.DENY),
        rules=(
            _rule("wide", protocol=6),
            _rule("narrow", protocol=6, dst_ports=PortRange(lo=80, hi=80)),
            _rule("other", protocol=17),
        ),
    )
    compiled = compile_request(OffloadRequest(flows=(flow,)), TARGET, CONST, ResourcePool())
    assert compiled.warnings == (
        'flow "f": rule "narrow" is never reached: rule "wide" before it matches all its '
        "packets",
    )


def test_covers() -> None:
    tcp = RuleMatch(protocol=6)
    tcp80 = RuleMatch(protocol=6, dst_ports=PortRange(lo=80, hi=80))
    assert covers(tcp, tcp80)
    assert not covers(tcp80, tcp)
    assert covers(RuleMatch(), RuleMatch(direction=Direction.TO_GUEST, ct_state=CtState.NEW))
    assert not covers(RuleMatch(ct_state=CtState.NEW), RuleMatch())
