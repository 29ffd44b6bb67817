"""Port ranges as ternary prefixes, for targets without range match."""

from __future__ import annotations

import random

from finsy import P4Schema, P4TableEntry
from finsy.proto import p4i

from pyoffload.compiler import ResourcePool, VnicTarget, compile_request
from pyoffload.compiler.compile import ternary_port_fields
from pyoffload.compiler.matches import range_to_prefixes
from pyoffload.pipeline import names
from pyoffload.pipeline.artifacts import Artifacts, load_constants
from pyoffload.rules import (
    Flow,
    FlowConfig,
    OffloadRequest,
    PortRange,
    Rule,
    RuleMatch,
    Verdict,
)


def covered(prefixes: list[tuple[int, int]], width: int) -> set[int]:
    return {v for v in range(1 << width) for value, mask in prefixes if v & mask == value}


def test_prefixes_cover_exactly_the_range() -> None:
    rng = random.Random(4)
    for _ in range(300):
        lo = rng.randrange(256)
        hi = rng.randrange(lo, 256)
        prefixes = range_to_prefixes(lo, hi, 8)
        assert covered(prefixes, 8) == set(range(lo, hi + 1))
        assert len(prefixes) <= 2 * 8 - 2
    assert range_to_prefixes(0, 65535, 16) == [(0, 0)]
    assert range_to_prefixes(80, 80, 16) == [(80, 0xFFFF)]
    assert len(range_to_prefixes(1, 65534, 16)) == 30


def ternary_port_schema() -> P4Schema:
    """The committed P4Info as a range-less target would have it."""
    info = p4i.P4Info()
    from google.protobuf import text_format

    text_format.Parse(Artifacts.packaged().p4info.read_text(), info)
    for table in info.tables:
        for field in table.match_fields:
            if field.name in ("src_port", "dst_port"):
                field.match_type = p4i.MatchField.TERNARY
    return P4Schema(info)


def test_ranges_expand_into_ternary_entries_the_target_accepts() -> None:
    schema = ternary_port_schema()
    ports = ternary_port_fields(schema)
    assert ports[names.ACL] == frozenset({"src_port", "dst_port"})
    flow = Flow(
        id="f", config=FlowConfig(default_verdict=Verdict.DENY),
        rules=(Rule(id="high", action=Verdict.ALLOW,
                    match=RuleMatch(protocol=6, dst_ports=PortRange(lo=1024, hi=2047))),
               Rule(id="odd", action=Verdict.ALLOW,
                    match=RuleMatch(protocol=6, dst_ports=PortRange(lo=1, hi=6)))),
    )
    compiled = compile_request(OffloadRequest(flows=(flow,)), VnicTarget(name="v", vnic_id=1),
                               load_constants(), ResourcePool(), ternary_ports=ports)
    assert len(compiled.acl_entries[("f", "high")]) == 1     # one aligned block
    assert len(compiled.acl_entries[("f", "odd")]) == 4      # {1} {2,3} {4,5} {6}
    acl = [e for e in compiled.entities if isinstance(e, P4TableEntry) and e.table_id == names.ACL]
    encoded = [e.encode(schema) for e in acl]
    # expanded entries keep their rule's priority
    assert {e.table_entry.priority for e in encoded[1:]} == {encoded[1].table_entry.priority}
    assert len({e.table_entry.SerializeToString(deterministic=True) for e in encoded}) == len(acl)
