"""Tables: match kinds, priorities, defaults, control-plane errors, selectors, direct counters."""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from pyoffload.embedded.engine import (
    AlreadyExists,
    Exact,
    InvalidValue,
    Lpm,
    NotFound,
    Pipeline,
    Range,
    ResourceExhausted,
    Ternary,
)

PROGRAMS = Path(__file__).parent / "programs" / "bmv2"


def load(name: str) -> Pipeline:
    return Pipeline.load((PROGRAMS / f"{name}.json").read_text())


def ports(pipe: Pipeline, pkt: bytes, port: int = 0) -> list[int]:
    return [p for p, _ in pipe.process(port, pkt).outputs]


def test_ternary_priority_larger_wins_and_ties_keep_first() -> None:
    pipe = load("ternary")
    t = pipe.state.table("ingress.ter")
    low = t.add([Ternary(0x0100, 0xFF00)], "ingress.send_1", [], priority=1)
    high = t.add([Ternary(0x0105, 0xFFFF)], "ingress.send_2", [], priority=10)
    assert ports(pipe, b"\x01\x05") == [2]
    assert ports(pipe, b"\x01\x06") == [1]
    assert ports(pipe, b"\x02\x06") == [0]  # miss: NoAction, egress_spec stays 0
    t.modify(high, "ingress.send_1", [])
    assert ports(pipe, b"\x01\x05") == [1]
    t.delete(high)
    assert t.find([Ternary(0x0105, 0xFFFF)], 10) is None
    assert t.find([Ternary(0x0100, 0xFF00)], 1) == low
    # value bits outside the mask are ignored (canonicalised)
    with pytest.raises(AlreadyExists):
        t.add([Ternary(0x01FF, 0xFF00)], "ingress.send_2", [], priority=1)


def test_table_errors_name_the_table_and_field() -> None:
    pipe = load("ternary")
    t = pipe.state.table("ingress.ter")
    with pytest.raises(InvalidValue, match=r"ingress\.ter.*fit 16 bits"):
        t.add([Ternary(1 << 16, 0xFFFF)], "ingress.send_1", [])
    with pytest.raises(InvalidValue, match="key has 2 fields"):
        t.add([Ternary(1, 1), Ternary(1, 1)], "ingress.send_1", [])
    with pytest.raises(NotFound, match="not an action"):
        t.add([Ternary(1, 1)], "ingress.nope", [])
    with pytest.raises(InvalidValue, match="takes 0 arguments"):
        t.add([Ternary(1, 1)], "ingress.send_1", [5])
    with pytest.raises(InvalidValue, match=r"needs Range|cannot take"):
        t.add([Range(1, 2)], "ingress.send_1", [])
    with pytest.raises(NotFound, match=r"did you mean 'ingress\.ter'"):
        pipe.state.table("ingress.te")
    assert t.entries() == []


def test_table_full() -> None:
    pipe = load("ternary")
    t = pipe.state.table("ingress.ter")
    for i in range(t.size):
        t.add([Ternary(i, 0xFFFF)], "ingress.send_1", [], priority=1)
    with pytest.raises(ResourceExhausted):
        t.add([Ternary(0xFFFF, 0xFFFF)], "ingress.send_1", [], priority=1)
    t.clear()
    assert t.entries() == []


def test_default_action_set_and_reset() -> None:
    pipe = load("ternary")
    t = pipe.state.table("ingress.ter")
    assert t.get_default() == ("NoAction", ())
    t.set_default("ingress.send_2")
    assert ports(pipe, b"\x00\x00") == [2]
    t.reset_default()
    assert ports(pipe, b"\x00\x00") == [0]


def router() -> Pipeline:
    pipe = load("simple_router")
    st = pipe.state
    st.table("ipv4_lpm").add([Lpm(0x0A000000, 8)], "set_nhop", [0x0A000001, 1])
    st.table("ipv4_lpm").add([Lpm(0x0A010000, 16)], "set_nhop", [0x0A000002, 2])
    st.table("ipv4_lpm").add([Lpm(0x0A010203, 32)], "set_nhop", [0x0A000003, 3])
    for i in (1, 2, 3):
        st.table("forward").add([Exact(0x0A000000 + i)], "set_dmac", [0x020000000000 + i])
        st.table("send_frame").add([Exact(i)], "rewrite_mac", [0x0A0000000000 + i])
    return pipe


def tcp(dst: str) -> bytes:
    p: Packet = Ether() / IP(dst=dst, src="192.0.2.1", ttl=9) / TCP() / (b"x" * 20)
    return bytes(p)


@pytest.mark.parametrize(
    ("dst", "port"), [("10.9.9.9", 1), ("10.1.9.9", 2), ("10.1.2.3", 3), ("11.0.0.1", 0)]
)
def test_lpm_longest_prefix(dst: str, port: int) -> None:
    pipe = router()
    out = pipe.process(5, tcp(dst)).outputs
    if dst.startswith("11."):
        # miss: NoAction leaves egress_spec 0, forward/send_frame miss too
        assert [p for p, _ in out] == [0]
        return
    assert [p for p, _ in out] == [port]
    frame = Ether(out[0][1])
    assert frame.dst == f"02:00:00:00:00:0{port}"
    assert frame[IP].ttl == 8
    got = frame[IP].chksum
    del frame[IP].chksum
    assert IP(bytes(frame[IP])).chksum == got


def test_lpm_delete_falls_back_to_shorter_prefix() -> None:
    pipe = router()
    t = pipe.state.table("ipv4_lpm")
    eid = t.find([Lpm(0x0A010203, 32)])
    assert eid is not None
    t.delete(eid)
    assert ports(pipe, tcp("10.1.2.3"), 5) == [2]
    with pytest.raises(InvalidValue, match="prefix length"):
        t.add([Lpm(0, 33)], "set_nhop", [1, 1])


def crc16_arc(data: bytes) -> int:
    """Bit-by-bit CRC-16/ARC, independent of the engine's table-driven one."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def test_action_selector_picks_hash_mod_members() -> None:
    pipe = load("action_profile")
    prof = pipe.state.action_profile("ActProfWS")
    t = pipe.state.table("IndirectWS")
    assert t.is_indirect
    members = [prof.add_member("send", [p]) for p in (1, 2, 3)]
    g = prof.create_group(max_size=8)
    prof.set_group_members(g, [(m, 1) for m in members])
    t.add([Exact(7)], group=g)
    for entropy in range(40):
        key = entropy.to_bytes(4, "big")
        expected = (1, 2, 3)[crc16_arc(key) % 3]
        assert ports(pipe, b"\x07" + key) == [expected]
    with pytest.raises(InvalidValue, match="used by a table entry"):
        prof.delete_group(g)
    with pytest.raises(InvalidValue, match="member"):
        prof.delete_member(members[0])
    # a direct member entry
    t.add([Exact(8)], member=members[1])
    assert ports(pipe, b"\x08" + bytes(4)) == [2]


def test_direct_counter_counts_hits() -> None:
    pipe = load("counter")
    t = pipe.state.table(".t_redirect") if ".t_redirect" in pipe.state.names()["tables"] else None
    if t is None:
        t = pipe.state.table(pipe.state.names()["tables"][0])
    assert t.has_direct_counter
    action = next(a for a in t.action_names if "port_redirect" in a)
    eid = t.add([Exact(10)], action, [])
    for _ in range(3):
        assert pipe.process(4, b"0123456789").outputs == [(4, b"0123456789")]
    pipe.process(4, b"short")
    assert t.direct_counter(eid) == (30, 3)
    t.set_direct_counter(eid, 0, 0)
    assert t.direct_counter(eid) == (0, 0)
