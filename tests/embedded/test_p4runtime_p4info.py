"""P4Info index: lookups by id and name, derived table properties, header layouts."""

from __future__ import annotations

import pytest
from finsy.proto import p4i, rpc_code
from google.protobuf import text_format

from pyoffload.embedded.p4runtime.errors import StatusError
from pyoffload.embedded.p4runtime.p4info import P4InfoIndex

P4INFO = """
tables {
  preamble { id: 1 name: "ingress.acl" }
  match_fields { id: 1 name: "hdr.ipv4.src" bitwidth: 32 match_type: TERNARY }
  match_fields { id: 2 name: "meta.port" bitwidth: 9 match_type: EXACT }
  action_refs { id: 10 }
  action_refs { id: 11 scope: DEFAULT_ONLY }
  direct_resource_ids: 300
  size: 64
  idle_timeout_behavior: NOTIFY_CONTROL
}
tables {
  preamble { id: 2 name: "ingress.lb" }
  match_fields { id: 1 name: "hdr.ipv4.dst" bitwidth: 32 match_type: EXACT }
  action_refs { id: 10 }
  implementation_id: 400
  size: 16
}
actions { preamble { id: 10 name: "ingress.fwd" }
          params { id: 1 name: "port" bitwidth: 9 } }
actions { preamble { id: 11 name: "ingress.drop" } }
direct_counters { preamble { id: 300 name: "ingress.acl_counter" } spec { unit: BOTH }
                  direct_table_id: 1 }
action_profiles { preamble { id: 400 name: "ingress.sel" } table_ids: 2 with_selector: true
                  size: 8 max_group_size: 4 }
registers { preamble { id: 500 name: "ingress.ct" } size: 16
            type_spec { bitstring { bit { bitwidth: 48 } } } }
digests { preamble { id: 600 name: "learn_t" }
          type_spec { struct { name: "learn_t" } } }
controller_packet_metadata { preamble { id: 700 name: "packet_in" }
  metadata { id: 1 name: "ingress_port" bitwidth: 9 }
  metadata { id: 2 name: "_pad" bitwidth: 7 } }
type_info { structs { key: "learn_t" value {
  members { name: "mac" type_spec { bitstring { bit { bitwidth: 48 } } } }
  members { name: "port" type_spec { bitstring { bit { bitwidth: 9 } } } } } } }
"""


@pytest.fixture
def index() -> P4InfoIndex:
    return P4InfoIndex(text_format.Parse(P4INFO, p4i.P4Info()))


def test_tables_by_id_and_name(index: P4InfoIndex) -> None:
    acl = index.table(1)
    assert acl.name == "ingress.acl"
    assert index.id_of("ingress.acl") == 1
    assert [f.name for f in acl.match_fields] == ["hdr.ipv4.src", "meta.port"]
    assert acl.fields_by_id[2].position == 1
    assert acl.needs_priority
    assert acl.action_ids == {10}
    assert acl.default_action_ids == {10, 11}
    assert acl.direct_counter_id == 300
    assert acl.supports_idle_timeout
    lb = index.table(2)
    assert not lb.needs_priority
    assert lb.implementation_id == 400


def test_unknown_id_and_name_give_helpful_errors(index: P4InfoIndex) -> None:
    with pytest.raises(StatusError) as info:
        index.table(99)
    assert info.value.code == rpc_code.INVALID_ARGUMENT
    assert "99" in info.value.message
    with pytest.raises(StatusError) as info:
        index.id_of("ingress.acll")
    assert "did you mean 'ingress.acl'" in info.value.message


def test_externs_and_data_types(index: P4InfoIndex) -> None:
    assert index.action_profile(400).with_selector
    assert index.register(500).data.bitwidth == 48
    digest = index.digest(600)
    assert [(f.name, f.bitwidth) for f in digest.fields] == [("mac", 48), ("port", 9)]
    assert digest.is_struct
    header = index.controller_headers["packet_in"]
    assert [(f.id, f.bitwidth) for f in header.fields] == [(1, 9), (2, 7)]
    assert index.action(10).params_by_id[1].bitwidth == 9
