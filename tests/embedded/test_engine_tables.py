"""Tables: match kinds, priorities, defaults, control-plane errors, selectors, direct
counters and meters, idle time; on our programs tables.p4, basic.p4 and externs.p4."""

from __future__ import annotations

import struct
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
    MeterConfig,
    NotFound,
    Optional_,
    Pipeline,
    Range,
    TableFull,
    Ternary,
    Wildcard,
)

PROGRAMS = Path(__file__).parent / "programs"


class Clock:
    """A clock the tests move by hand."""

    def __init__(self) -> None:
        self.ns = 1_000_000_000

    def __call__(self) -> int:
        return self.ns


def load(name: str, clock: Clock | None = None) -> Pipeline:
    return Pipeline.load((PROGRAMS / f"{name}.json").read_text(), clock=clock or Clock())


def ports(pipe: Pipeline, pkt: bytes, port: int = 0) -> list[int]:
    return [p for p, _ in pipe.process(port, pkt).outputs]


# ---- tables.p4: a request header picks the table ----

SRC_MAC = 0x0A0B0C0D0E0F
ETH_REQ = bytes.fromhex("ffffffffffff0a0b0c0d0e0f88b5")
TER, OPT, BY_LENGTH, BY_PORT = 1, 2, 3, 4


def req(which: int, key: int = 0, pad: int = 0) -> bytes:
    return ETH_REQ + struct.pack(">BHB", which, key, 0) + bytes(pad)


def test_ternary_priority_larger_wins_and_ties_keep_first() -> None:
    pipe = load("tables")
    t = pipe.state.table("TIngress.ter")
    low = t.add([Ternary(0x0100, 0xFF00)], "TIngress.out1", [], priority=1)
    high = t.add([Ternary(0x0105, 0xFFFF)], "TIngress.out2", [], priority=10)
    tie = t.add([Ternary(0x0006, 0x00FF)], "TIngress.out_to", [7], priority=1)
    assert ports(pipe, req(TER, 0x0105)) == [2]
    assert ports(pipe, req(TER, 0x0106)) == [1]  # equal priority: the older entry wins
    assert ports(pipe, req(TER, 0x0206)) == [7]
    assert ports(pipe, req(TER, 0x0207)) == [0]  # miss: NoAction, egress_spec stays 0
    t.modify(high, "TIngress.out1", [])
    assert ports(pipe, req(TER, 0x0105)) == [1]
    t.delete(high)
    assert t.find([Ternary(0x0105, 0xFFFF)], 10) is None
    assert t.find([Ternary(0x0100, 0xFF00)], 1) == low
    assert t.find([Ternary(0x0100, 0xFF00)], 2) is None  # priority is part of the key
    t.delete(low)
    assert ports(pipe, req(TER, 0x0106)) == [7]
    assert [e.id for e in t.entries()] == [tie]
    # value bits outside the mask are ignored (canonicalised)
    with pytest.raises(AlreadyExists):
        t.add([Ternary(0xFF06, 0x00FF)], "TIngress.out2", [], priority=1)


def test_table_errors_name_the_table_and_field() -> None:
    pipe = load("tables")
    t = pipe.state.table("TIngress.ter")
    with pytest.raises(InvalidValue, match=r"TIngress\.ter.*fit 16 bits"):
        t.add([Ternary(1 << 16, 0xFFFF)], "TIngress.out1", [])
    with pytest.raises(InvalidValue, match="key has 2 fields"):
        t.add([Ternary(1, 1), Ternary(1, 1)], "TIngress.out1", [])
    with pytest.raises(NotFound, match="not an action"):
        t.add([Ternary(1, 1)], "TIngress.nope", [])
    with pytest.raises(InvalidValue, match="takes 0 arguments"):
        t.add([Ternary(1, 1)], "TIngress.out1", [5])
    with pytest.raises(InvalidValue, match="takes 1 argument"):
        t.add([Ternary(1, 1)], "TIngress.out_to", [])
    with pytest.raises(InvalidValue, match=r"TIngress\.ter"):
        t.add([Ternary(1, 1)], "TIngress.out_to", [1 << 9])
    with pytest.raises(InvalidValue, match=r"needs Range|cannot take"):
        t.add([Range(1, 2)], "TIngress.out1", [])
    with pytest.raises(NotFound, match=r"did you mean 'TIngress\.ter'"):
        pipe.state.table("TIngress.te")
    assert t.entries() == []


def test_table_full() -> None:
    pipe = load("tables")
    t = pipe.state.table("TIngress.ter")
    assert t.size == 32
    for i in range(t.size):
        t.add([Ternary(i, 0xFFFF)], "TIngress.out1", [], priority=1)
    with pytest.raises(TableFull):
        t.add([Ternary(0xFFFF, 0xFFFF)], "TIngress.out1", [], priority=1)
    assert len(t.entries()) == 32
    t.clear()
    assert t.entries() == []


def test_default_action_set_and_reset() -> None:
    pipe = load("tables")
    t = pipe.state.table("TIngress.ter")
    assert t.get_default() == ("NoAction", ())
    t.set_default("TIngress.out_to", [9])
    assert ports(pipe, req(TER)) == [9]
    t.reset_default()
    assert ports(pipe, req(TER)) == [0]


def test_optional_match() -> None:
    pipe = load("tables")
    t = pipe.state.table("TIngress.opt")
    # p4c writes an optional key as ternary in the BMv2 JSON (only the P4Info says optional)
    assert [mt for _, mt, _ in t.key_fields] == ["ternary"]
    t.add([Optional_(5)], "TIngress.out1", [], priority=10)
    t.add([Wildcard()], "TIngress.out2", [], priority=1)
    assert ports(pipe, req(OPT, 5)) == [1]
    assert ports(pipe, req(OPT, 6)) == [2]
    t.add([Exact(6)], "TIngress.out1", [], priority=20)  # Exact is accepted for optional
    assert ports(pipe, req(OPT, 6)) == [1]
    with pytest.raises(AlreadyExists):
        t.add([Optional_(5)], "TIngress.out2", [], priority=10)


def test_direct_counter_counts_hits_with_received_length() -> None:
    pipe = load("tables")
    t = pipe.state.table("TIngress.by_length")
    assert t.has_direct_counter and not t.has_direct_meter
    frame = req(BY_LENGTH, pad=12)
    eid = t.add([Exact(len(frame))], "TIngress.reflect_counted", [])
    other = t.add([Exact(len(frame) + 1)], "TIngress.reflect_counted", [])
    for _ in range(3):
        assert pipe.process(4, frame).outputs == [(4, frame)]
    assert pipe.process(4, req(BY_LENGTH, pad=2)).outputs == [(0, req(BY_LENGTH, pad=2))]  # miss
    assert t.direct_counter(eid) == (3 * len(frame), 3)
    assert t.direct_counter(other) == (0, 0)
    t.set_direct_counter(eid, 5, 1)
    pipe.process(4, frame)
    assert t.direct_counter(eid) == (5 + len(frame), 2)
    t.set_direct_counter(eid, 0, 0)
    assert t.direct_counter(eid) == (0, 0)


def test_direct_meter_colours_packets() -> None:
    clock = Clock()
    pipe = load("tables", clock)
    t = pipe.state.table("TIngress.by_port")
    assert t.has_direct_meter
    eid = t.add([Exact(1)], "TIngress.reflect_metered", [])

    def colour(port: int = 1) -> int:
        ((_, frame),) = pipe.process(port, req(BY_PORT)).outputs
        return frame[14 + 3]

    assert [colour() for _ in range(3)] == [0, 0, 0]  # not configured: always green
    t.set_direct_meter(eid, MeterConfig(cir=1, cburst=1, pir=2, pburst=2))
    assert t.get_direct_meter(eid) == MeterConfig(1, 1, 2, 2)
    assert [colour() for _ in range(4)] == [0, 1, 2, 2]  # green, yellow, then red
    clock.ns += 1_000_000_000  # one second refills one committed, two peak tokens
    assert [colour() for _ in range(3)] == [0, 1, 2]
    assert colour(port=2) == 0xFF  # miss: the meter does not run
    t.set_direct_meter(eid, None)
    assert colour() == 0
    with pytest.raises(InvalidValue):
        t.set_direct_meter(eid, MeterConfig(cir=2, cburst=1, pir=1, pburst=1))


def test_digest_on_miss_and_idle_time_on_hit() -> None:
    clock = Clock()
    pipe = load("tables", clock)
    frame = bytes.fromhex("ffffffffffff0a0b0c0d0e0f0800") + b"x" * 10
    res = pipe.process(9, frame)
    assert res.outputs == [(9, frame)]
    assert res.digests == [("learn_t", (SRC_MAC, 9))]
    assert pipe.state.names()["digests"] == ["learn_t"]
    t = pipe.state.table("TIngress.known_src")
    eid = t.add([Exact(SRC_MAC)], "NoAction", [], ttl_ns=10_000_000)
    clock.ns += 5_000
    res = pipe.process(9, frame)
    assert res.digests == [] and res.outputs == [(9, frame)]
    assert t.last_hit_ns(eid) == clock.ns
    clock.ns += 7_000
    pipe.process(3, frame)
    assert t.last_hit_ns(eid) == clock.ns
    other = bytes.fromhex("ffffffffffff0a0b0c0d0e100800")
    assert pipe.process(9, other).digests == [("learn_t", (SRC_MAC + 1, 9))]
    assert t.last_hit_ns(eid) == clock.ns  # a miss does not touch the entry
    assert pipe.process(9, b"short").outputs == []  # no Ethernet: dropped


# ---- basic.p4: a router (LPM picks port and next hop, checksums recomputed) ----


def router() -> Pipeline:
    pipe = load("basic")
    st = pipe.state
    st.table("MyIngress.port_map").add([Exact(5)], "MyIngress.set_port", [1, 0])
    lpm = st.table("MyIngress.ipv4_lpm")
    lpm.add([Exact(1), Lpm(0x0A000000, 8)], "MyIngress.route", [1, 0x020000000001])
    lpm.add([Exact(1), Lpm(0x0A010000, 16)], "MyIngress.route", [2, 0x020000000002])
    lpm.add([Exact(1), Lpm(0x0A010203, 32)], "MyIngress.route", [3, 0x020000000003])
    for port in (1, 2, 3):
        st.table("MyIngress.port_smac").add(
            [Exact(port)], "MyIngress.set_smac", [0x0A00000000 + port]
        )
    return pipe


def tcp(dst: str, ttl: int = 9) -> bytes:
    p: Packet = Ether() / IP(dst=dst, src="192.0.2.1", ttl=ttl) / TCP(dport=80) / (b"x" * 20)
    return bytes(p)


def checksums_valid(frame: Ether) -> bool:
    ip_sum, tcp_sum = frame[IP].chksum, frame[TCP].chksum
    fresh = Ether(bytes(frame))
    del fresh[IP].chksum
    del fresh[TCP].chksum
    fresh = Ether(bytes(fresh))
    return bool(fresh[IP].chksum == ip_sum and fresh[TCP].chksum == tcp_sum)


@pytest.mark.parametrize(("dst", "port"), [("10.9.9.9", 1), ("10.1.9.9", 2), ("10.1.2.3", 3)])
def test_lpm_longest_prefix_routes_and_rewrites(dst: str, port: int) -> None:
    out = router().process(5, tcp(dst)).outputs
    assert [p for p, _ in out] == [port]
    frame = Ether(out[0][1])
    assert frame.dst == f"02:00:00:00:00:0{port}"
    assert frame.src == f"00:0a:00:00:00:0{port}"
    assert frame[IP].ttl == 8
    assert frame[IP].tos == 10 << 2  # const entry of dscp_map for TCP
    assert frame[IP].dst == dst and bytes(frame[TCP].payload) == b"x" * 20
    assert checksums_valid(frame)


def test_lpm_miss_and_drops() -> None:
    pipe = router()
    sent = tcp("11.0.0.1")
    ((port, out),) = pipe.process(5, sent).outputs
    assert port == 0  # miss: NoAction, the port map's peer (0)
    frame = Ether(out)
    assert frame[IP].ttl == 9 and frame.dst == Ether(sent).dst
    assert checksums_valid(frame)
    assert pipe.process(6, sent).outputs == []  # unknown ingress port: drop
    assert pipe.process(5, tcp("10.1.2.3", ttl=1)).outputs == []  # TTL expires
    bad = bytearray(tcp("10.1.2.3"))
    bad[14 + 10] ^= 0xFF  # corrupt the IPv4 header checksum
    assert pipe.process(5, bytes(bad)).outputs == []


def test_lpm_delete_falls_back_to_shorter_prefix() -> None:
    pipe = router()
    t = pipe.state.table("MyIngress.ipv4_lpm")
    eid = t.find([Exact(1), Lpm(0x0A010203, 32)])
    assert eid is not None
    t.delete(eid)
    assert ports(pipe, tcp("10.1.2.3"), 5) == [2]
    t.delete(t.find([Exact(1), Lpm(0x0A010000, 16)]) or -1)
    assert ports(pipe, tcp("10.1.2.3"), 5) == [1]
    with pytest.raises(InvalidValue, match="prefix length"):
        t.add([Exact(1), Lpm(0, 33)], "MyIngress.route", [1, 1])
    with pytest.raises(AlreadyExists):  # bits past the prefix are cleared
        t.add([Exact(1), Lpm(0x0AFFFFFF, 8)], "MyIngress.route", [1, 1])


# ---- externs.p4: action profile members and selector groups ----

ETH_PROBE = bytes.fromhex("ffffffffffff0a0b0c0d0e0f88b5")
OP_LB = 8
MEMBER_OUT = 14 + 37  # offset of probe.member_out


def lb_probe(index: int, value: int) -> bytes:
    return ETH_PROBE + struct.pack(">BII", OP_LB, index, value) + bytes(31)


def member_out(pipe: Pipeline, pkt: bytes) -> int:
    ((port, frame),) = pipe.process(1, pkt).outputs
    assert port == 1
    return int.from_bytes(frame[MEMBER_OUT : MEMBER_OUT + 2], "big")


def crc16_arc(data: bytes) -> int:
    """Bit-by-bit CRC-16/ARC, independent of the engine's table-driven one."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def test_action_profile_members() -> None:
    pipe = load("externs")
    assert pipe.state.names()["action_profiles"] == ["MyIngress.sel"]
    prof = pipe.state.action_profile("MyIngress.sel")
    t = pipe.state.table("MyIngress.lb")
    assert t.is_indirect
    m = prof.add_member("MyIngress.set_member", [101])
    eid = t.add([Exact(7)], member=m)
    (entry,) = t.entries()
    assert (entry.id, entry.member, entry.group) == (eid, m, None)
    assert member_out(pipe, lb_probe(7, 1234)) == 101
    prof.modify_member(m, "MyIngress.set_member", [202])
    assert member_out(pipe, lb_probe(7, 1234)) == 202
    assert member_out(pipe, lb_probe(8, 1234)) == 0  # miss
    with pytest.raises(InvalidValue, match="member"):
        prof.delete_member(m)
    t.delete(eid)
    prof.delete_member(m)
    assert prof.members() == []


def test_action_selector_picks_hash_mod_members() -> None:
    pipe = load("externs")
    prof = pipe.state.action_profile("MyIngress.sel")
    t = pipe.state.table("MyIngress.lb")
    members = [prof.add_member("MyIngress.set_member", [v]) for v in (101, 102, 103)]
    g = prof.create_group(max_size=8)
    prof.set_group_members(g, [(m, 1) for m in members])
    t.add([Exact(7)], group=g)
    for value in range(40):
        expected = (101, 102, 103)[crc16_arc(value.to_bytes(4, "big")) % 3]
        assert member_out(pipe, lb_probe(7, value)) == expected
    # weight 2 counts twice: the member list becomes [m0, m1, m1]
    prof.set_group_members(g, [(members[0], 1), (members[1], 2)])
    for value in range(20):
        expected = (101, 102, 102)[crc16_arc(value.to_bytes(4, "big")) % 3]
        assert member_out(pipe, lb_probe(7, value)) == expected
    with pytest.raises(InvalidValue, match="used by a table entry"):
        prof.delete_group(g)
    with pytest.raises(InvalidValue, match="member"):
        prof.delete_member(members[0])
    # a member entry next to the group entry
    t.add([Exact(8)], member=members[2])
    assert member_out(pipe, lb_probe(8, 0)) == 103
    prof.set_group_members(g, [])
    assert member_out(pipe, lb_probe(7, 0)) == 0  # empty group: a miss


# ---- externs.p4: indexed counters and meters ----

OP_COUNT, OP_PACKET_METER, OP_BYTE_METER = 4, 5, 6
COLOR = 14 + 35  # offset of probe.color


def ext_probe(op: int, index: int, pad: int = 0) -> bytes:
    return ETH_PROBE + struct.pack(">BII", op, index, 0) + bytes(31 + pad)


def test_indexed_counters_count_packets_and_bytes() -> None:
    pipe = load("externs")
    ctr, pctr = pipe.state.counter("MyIngress.ctr"), pipe.state.counter("MyIngress.pctr")
    assert (ctr.size, pctr.size) == (64, 64)
    small, big = ext_probe(OP_COUNT, 3), ext_probe(OP_COUNT, 3, pad=46)
    for pkt in (small, big, small):
        assert [p for p, _ in pipe.process(2, pkt).outputs] == [2]
    assert ctr.read(3) == (2 * len(small) + len(big), 3)
    assert pctr.read(3)[1] == 3
    assert ctr.read(4) == (0, 0)
    ctr.write(3, 0, 0)
    assert ctr.read(3) == (0, 0)
    pipe.process(2, ext_probe(OP_COUNT, 64))  # out of range: the engine ignores it
    assert ctr.read(63) == (0, 0)
    with pytest.raises(InvalidValue):
        ctr.read(64)


def test_indexed_meters_in_packets_and_bytes() -> None:
    clock = Clock()
    pipe = load("externs", clock)
    pm, bm = pipe.state.meter("MyIngress.pmeter"), pipe.state.meter("MyIngress.bmeter")

    def colour(op: int, index: int) -> int:
        ((_, frame),) = pipe.process(1, ext_probe(op, index)).outputs
        return frame[COLOR]

    assert colour(OP_PACKET_METER, 2) == 0  # not configured: green
    pm.set_config(2, MeterConfig(cir=1, cburst=1, pir=2, pburst=2))
    assert pm.get_config(2) == MeterConfig(1, 1, 2, 2)
    assert [colour(OP_PACKET_METER, 2) for _ in range(3)] == [0, 1, 2]
    assert colour(OP_PACKET_METER, 3) == 0  # cells are independent
    size = len(ext_probe(OP_BYTE_METER, 0))
    bm.set_config(0, MeterConfig(cir=1000, cburst=size, pir=1000, pburst=2 * size))
    assert [colour(OP_BYTE_METER, 0) for _ in range(3)] == [0, 1, 2]  # byte buckets
    clock.ns += 1_000_000_000
    assert colour(OP_BYTE_METER, 0) == 0
    pm.reset_config(2)
    assert colour(OP_PACKET_METER, 2) == 0
