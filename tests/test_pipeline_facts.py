"""Every pipeline fact the control plane holds (``pyoffload.pipeline``) against the
compiled program: names in the P4Info, the constants as enums, the ``ct_info``
layout, the slot and signature hash, and the entry and packet-out builders."""

from __future__ import annotations

import ipaddress
import zlib

import pytest
from finsy import P4Schema, P4TableAction
from finsy.proto import p4i

from pyoffload.pipeline import names
from pyoffload.pipeline.artifacts import VARIANTS, Artifacts, load_constants
from pyoffload.pipeline.constants import (
    COMPILED,
    ConnState,
    CtInfo,
    DropReason,
    PacketDirection,
    Policy,
    PuntReason,
    SlotKind,
    Tuple5,
    check_constants,
    slot_hash,
)
from pyoffload.pipeline.entries import OverflowEntry, packet_out, port_map_entries
from pyoffload.pipeline.names import PipelineMismatch, check_names


def schema_of(variant: str = "") -> P4Schema:
    artifacts = Artifacts.packaged(variant)
    return P4Schema(artifacts.p4info, artifacts.bmv2_json)


@pytest.mark.parametrize("variant", ["", *VARIANTS])
def test_every_name_is_in_the_p4info_of_every_build(variant: str) -> None:
    check_names(schema_of(variant))
    check_constants(load_constants(Artifacts.packaged(variant)))


def test_a_missing_name_is_named_with_the_closest_one() -> None:
    schema = schema_of()
    info = p4i.P4Info()
    info.CopyFrom(schema.p4info)
    for table in info.tables:
        if table.preamble.name == names.PORT_MAP:
            table.preamble.name = "vnic.port_mapping"
    with pytest.raises(PipelineMismatch, match=r"table 'vnic.port_map' \(closest: "
                                               r"'vnic.port_mapping'\)"):
        check_names(P4Schema(info))


def test_the_checked_names_cover_the_whole_p4info() -> None:
    """Nothing in the P4Info escapes the check (but the pipeline's own internals)."""
    info = schema_of().p4info
    checked = {name for _kind, group in names.EXPECTED for name in group}
    internal = {"NoAction", "vnic.acl_no_rule", "vnic.ct_builtin_timeout",
                "vnic.flow_config_missing", "vnic.nat_none", "vnic.no_flow",
                "vnic.unmapped_port"}
    everything = {item.preamble.name for group in (
        info.tables, info.actions, info.registers, info.counters, info.meters,
        info.direct_counters, info.direct_meters, info.action_profiles, info.digests,
        info.controller_packet_metadata) for item in group}
    assert everything - internal == checked


def test_constants_as_enums_cover_every_compiled_constant_of_their_kind() -> None:
    for prefix, enum in (("DIR_", PacketDirection), ("POLICY_", Policy), ("PUNT_", PuntReason),
                         ("CT_KIND_", SlotKind), ("DROP_", DropReason)):
        compiled = {k.removeprefix(prefix): v for k, v in COMPILED.items()
                    if k.startswith(prefix) and k != "DROP_REASONS"}
        assert {m.name: int(m) for m in enum} == compiled, prefix
    states = {k.removeprefix("CT_"): v for k, v in COMPILED.items()
              if k == "CT_FREE" or k.startswith(("CT_TCP_", "CT_UDP_", "CT_ICMP_"))}
    assert {m.name: int(m) for m in ConnState} == states
    assert len(DropReason) == COMPILED["DROP_REASONS"]


def test_other_constants_are_refused() -> None:
    with pytest.raises(PipelineMismatch, match="POLICY_DENY: 7 vs 1"):
        check_constants({**COMPILED, "POLICY_DENY": 7})


def test_ct_info_layout_is_the_programs() -> None:
    """The layout documented in stages/conntrack.p4, read from the compiled constants."""
    word = CtInfo(state=ConnState.TCP_ESTABLISHED, originator_is_hi=True, kind=SlotKind.GUEST,
                  xlate_src=True, xlate_dst=False, fin_orig=True, fin_reply=True,
                  profile=0xAB).encode()
    assert word == (3 | 1 << 4 | 1 << 5 | 1 << 7 | 1 << 9 | 1 << 10 | 0xAB << 16)
    assert CtInfo.decode(word).profile == 0xAB
    for bits in (0, 0x00FF07FF, 0x00123456 & 0x00FF07FF):
        assert CtInfo.decode(bits).encode() == bits
    assert CtInfo.state_of(word) == ConnState.TCP_ESTABLISHED
    assert CtInfo.is_translated(word)
    assert not CtInfo.is_translated(CtInfo(state=1).encode())
    with pytest.raises(ValueError, match="does not fit in 4 bits"):
        CtInfo(state=16).encode()


def test_slot_hash_layout() -> None:
    key = Tuple5(protocol=6, lo_addr=0x0A000001, hi_addr=0x0A000002, lo_port=1234, hi_port=80)
    value, signature = slot_hash(7, key)
    forward = (b"\x00\x07" + b"\x06" + (0x0A000001).to_bytes(16, "big")
               + (0x0A000002).to_bytes(16, "big") + (1234).to_bytes(2, "big")
               + (80).to_bytes(2, "big"))
    assert value == zlib.crc32(forward)
    assert signature != value
    assert slot_hash(8, key) != (value, signature)  # every key carries the VNIC


def test_slot_hash_and_ct_info_agree_with_the_pipeline() -> None:
    """A connection the pipeline starts tracking lands in the slot the hash names, with
    the signature and the ct_info word this module computes."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    from benchmarks.bench_entries import (
        GUEST_PORT,
        TRAFFIC_DPORT,
        VNIC,
        engine_install,
        vnic_entities,
    )
    from benchmarks.corpus import GUEST_IP, GUEST_MAC, UPLINK_IP, UPLINK_MAC
    from pyoffload.embedded.engine import Pipeline

    artifacts = Artifacts.packaged()
    pipe = Pipeline.load(artifacts.bmv2_json.read_text(), clock=lambda: 1_000_000, seed=1)
    engine_install(pipe.state, schema_of(), vnic_entities(load_constants(), rules=0))
    frame = bytes(Ether(src=GUEST_MAC, dst=UPLINK_MAC) / IP(src=GUEST_IP, dst=UPLINK_IP)
                  / TCP(sport=40000, dport=TRAFFIC_DPORT, flags="S"))
    pipe.process(GUEST_PORT, frame)
    src, dst = (int(ipaddress.IPv4Address(a)) for a in (GUEST_IP, UPLINK_IP))
    (lo, lo_port), (hi, hi_port) = sorted(((src, 40000), (dst, TRAFFIC_DPORT)))
    originator_is_hi = (src, 40000) > (dst, TRAFFIC_DPORT)
    value, signature = slot_hash(VNIC, Tuple5(protocol=6, lo_addr=lo, hi_addr=hi,
                                              lo_port=lo_port, hi_port=hi_port))
    signatures = pipe.state.register(names.CT_SIGNATURE)
    slot = value % (signatures.size - schema_of().tables[names.CT_OVERFLOW].size)
    assert signatures.get(slot) == signature
    info = CtInfo.decode(pipe.state.register(names.CT_INFO).get(slot))
    assert info.state == ConnState.TCP_SYN_SENT
    assert info.originator_is_hi == originator_is_hi
    assert info.kind == SlotKind.PLAIN


def test_port_map_entries() -> None:
    schema = schema_of()
    guest, uplink = port_map_entries(vnic_id=9, guest_port=3, uplink_port=4, policy=Policy.PUNT,
                                     admit_new=False)
    for entry, port, direction, peer in ((guest, 3, PacketDirection.FROM_GUEST, 4),
                                         (uplink, 4, PacketDirection.TO_GUEST, 3)):
        entry.encode(schema)  # every field and action parameter exists in the P4Info
        assert dict(entry.match or {}) == {"port": port}
        assert isinstance(entry.action, P4TableAction)
        assert entry.action.args == {"vnic_id": 9, "direction": int(direction),
                                     "peer_port": peer, "default_policy": int(Policy.PUNT),
                                     "admit_new": 0}


def test_overflow_entries_round_trip_through_the_p4info() -> None:
    schema = schema_of()
    entry = OverflowEntry(vnic_id=3, key=Tuple5(protocol=17, lo_addr=2**100, hi_addr=2**101,
                                                lo_port=53, hi_port=5353), slot=65_600)
    encoded = entry.entry(idle_timeout_ns=10**9).encode(schema)
    assert encoded.table_entry.idle_timeout_ns == 10**9
    assert OverflowEntry.decode(encoded.table_entry, schema) == entry
    other = port_map_entries(vnic_id=1, guest_port=1, uplink_port=2, policy=Policy.DENY)[0]
    with pytest.raises(ValueError, match=r"not a vnic\.ct_overflow entry"):
        OverflowEntry.decode(other.encode(schema).table_entry, schema)


def test_packet_out_fields() -> None:
    schema = schema_of()
    ids = {m.name: m.id for header in schema.p4info.controller_packet_metadata
           if header.preamble.name == names.PACKET_OUT for m in header.metadata}
    message = packet_out(schema, b"\x01" * 60, inject_port=5, inject=True)
    values = {m.metadata_id: int.from_bytes(m.value, "big") for m in message.metadata}
    assert values[ids["inject_port"]] == 5
    assert values[ids["inject"]] == 1
    assert values[ids["probe"]] == 0
    assert message.payload == b"\x01" * 60
    probe = packet_out(schema, b"", probe=True)
    assert {m.metadata_id: int.from_bytes(m.value, "big")
            for m in probe.metadata}[ids["probe"]] == 1
