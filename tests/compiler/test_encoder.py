"""The fast encoder gives finsy's encoding, byte for byte, and the installer's keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from finsy import (
    P4CounterEntry,
    P4IndirectAction,
    P4MeterConfig,
    P4Schema,
    P4TableAction,
    P4TableEntry,
    P4TableMatch,
)
from finsy.p4entity import P4Entity

from pyoffload.compiler import ResourcePool, VnicTarget, compile_request
from pyoffload.p4runtime.encoder import CACHE_LIMIT, EntityEncoder
from pyoffload.p4runtime.entities import entity_key
from pyoffload.pipeline import names
from pyoffload.pipeline.artifacts import Artifacts, load_constants
from pyoffload.rules import Verdict, load_file

ALLOW = names.ACL_ACTIONS[Verdict.ALLOW]
EXAMPLES = Path(__file__).resolve().parents[2] / "pyoffload" / "examples"
SCHEMA = P4Schema(Artifacts.packaged().p4info)
CONST = load_constants()


def wire(entities: list[P4Entity], encoder: EntityEncoder) -> list[bytes]:
    return [encoder.encode(e).SerializeToString(deterministic=True) for e in entities]


def finsy_wire(entities: list[P4Entity]) -> list[bytes]:
    return [e.encode(SCHEMA).SerializeToString(deterministic=True) for e in entities]


def every_example() -> list[P4Entity]:
    entities: list[P4Entity] = []
    paths = sorted(EXAMPLES.glob("*.yaml")) + sorted(EXAMPLES.glob("*.json"))
    for index, path in enumerate(paths):
        request = load_file(path)
        for ports in ({}, {names.ACL: frozenset({"dst_port", "src_port"})}):
            compiled = compile_request(request, VnicTarget(name=f"v{index}", vnic_id=index + 1),
                                       CONST, ResourcePool(), ternary_ports=ports)
            entities.extend(compiled.entities)
    return entities


def test_every_example_encodes_as_finsy_does_twice_over() -> None:
    entities = every_example()
    kinds = {type(e).__name__ for e in entities}
    assert {"P4TableEntry", "P4ActionProfileMember", "P4ActionProfileGroup",
            "P4MeterEntry"} <= kinds
    encoder = EntityEncoder(SCHEMA)
    expected = finsy_wire(entities)
    assert wire(entities, encoder) == expected  # pieces encoded on first sight
    assert encoder._fields and encoder._actions  # the fast path, not finsy, did it
    assert wire(entities, encoder) == expected  # ... and reused
    keyed = encoder.encode_all(entities)
    assert [key for key, _ in keyed] == [entity_key(e.encode(SCHEMA)) for e in entities]


def test_uncommon_shapes_are_left_to_finsy() -> None:
    encoder = EntityEncoder(SCHEMA)
    unusual: list[P4Entity] = [
        # a don't-care ternary value, which finsy leaves out of the entry
        P4TableEntry(names.ACL, match=P4TableMatch(vnic_id=1, flow_id=2, protocol=(0, 0)),
                     action=P4TableAction(ALLOW), priority=10),
        # a string value and an entry field the fast path does not set
        P4TableEntry(names.ACL, match=P4TableMatch(vnic_id="3", flow_id=2),
                     action=P4TableAction(ALLOW), priority=10),
        P4TableEntry(names.ACL, match=P4TableMatch(vnic_id=3, flow_id=2),
                     action=P4TableAction(ALLOW), priority=10,
                     idle_timeout_ns=5, controller_metadata=9,
                     meter_config=P4MeterConfig(cir=1, cburst=2, pir=3, pburst=4)),
        # an indirect table, and a non-table entity
        P4TableEntry(names.LB_VIP, match=P4TableMatch(vnic_id=1, vip=5, protocol=6, port=80),
                     action=P4IndirectAction(group_id=1)),
        P4CounterEntry(names.DROP_COUNTER),
        P4TableEntry(names.ACL),
    ]
    assert wire(unusual, encoder) == finsy_wire(unusual)


def test_bad_values_raise_finsy_errors() -> None:
    encoder = EntityEncoder(SCHEMA)
    too_big = P4TableEntry(names.ACL, match=P4TableMatch(vnic_id=1 << 20, flow_id=2),
                           action=P4TableAction(ALLOW), priority=1)
    with pytest.raises(ValueError) as fast:
        encoder.encode(too_big)
    with pytest.raises(ValueError) as slow:
        too_big.encode(SCHEMA)
    assert str(fast.value) == str(slow.value)
    missing_arg = P4TableEntry(names.FLOW_CLASSIFIER, match=P4TableMatch(vnic_id=1),
                               action=P4TableAction(names.SET_FLOW, flow_id="x"), priority=1)
    with pytest.raises(ValueError):
        encoder.encode(missing_arg)


def test_the_cache_is_bounded() -> None:
    encoder = EntityEncoder(SCHEMA)
    entries: list[P4Entity] = [
        P4TableEntry(names.ACL, match=P4TableMatch(vnic_id=1, flow_id=n % 60000 + 1,
                                                   dst_port=(n % 65536, n % 65536)),
                     action=P4TableAction(ALLOW), priority=n + 1)
        for n in range(CACHE_LIMIT + 10)
    ]
    assert wire(entries[-50:], encoder) == finsy_wire(entries[-50:])
    for entry in entries:
        encoder.encode(entry)
    assert len(encoder._fields) <= CACHE_LIMIT
    assert wire(entries[:50], encoder) == finsy_wire(entries[:50])

