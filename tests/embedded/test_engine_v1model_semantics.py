"""The engine against BMv2's own simple_switch test programs and their expected results.

The JSON files under programs/bmv2/ are p4c outputs from p4lang/behavioral-model
(Apache-2.0, testdata of targets/simple_switch and simple_switch_grpc); each test
re-states the expectation of the BMv2 test that uses the same program.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pyoffload.embedded.engine import (
    Exact,
    MeterConfig,
    Optional_,
    Pipeline,
    Ternary,
    Wildcard,
)

PROGRAMS = Path(__file__).parent / "programs" / "bmv2"


class Clock:
    """A clock the tests move by hand."""

    def __init__(self) -> None:
        self.ns = 1_000_000_000

    def __call__(self) -> int:
        return self.ns


def load(name: str, clock: Clock | None = None) -> Pipeline:
    return Pipeline.load((PROGRAMS / f"{name}.json").read_text(), clock=clock or Clock())


# ---- packet_redirect.p4 (targets/simple_switch/tests/test_packet_redirect.cpp) ----


def redirect_pipe() -> Pipeline:
    """packet_redirect.json with the default actions the BMv2 test installs."""
    pipe = load("packet_redirect")
    for table, action in [
        ("t_ingress_1", "_nop"),
        ("t_ingress_2", "_nop"),
        ("t_egress", "_nop"),
        ("t_exit", "set_hdr"),
    ]:
        pipe.state.table(table).set_default(action)
    return pipe


def redirect(f1: int, port_out: int) -> Pipeline:
    pipe = redirect_pipe()
    pipe.state.table("t_ingress_1").add([Exact(f1), Exact(0)], "_set_port", [port_out])
    return pipe


def test_redirect_baseline_packet_length_after_remove_header() -> None:
    pipe = redirect(1, 2)
    out = pipe.process(1, b"\x01\x00\x00\x00").outputs
    assert [p for p, _ in out] == [2]
    assert out[0][1][1] == 2  # packet_length seen in egress after remove_header


def test_redirect_multicast_copies_see_packet_length() -> None:
    pipe = redirect_pipe()
    pipe.state.table("t_ingress_1").add([Exact(2), Exact(0)], "_multicast", [1])
    pipe.state.pre.set_multicast_group(1, [(1, 0), (2, 0)])
    out = pipe.process(1, b"\x02\x00\x00\x00").outputs
    assert sorted(p for p, _ in out) == [1, 2]
    assert all(frame[1] == 2 for _, frame in out)


def test_redirect_clone_i2e() -> None:
    pipe = redirect(3, 2)
    pipe.state.table("t_ingress_2").add([Exact(3), Ternary(0, 0)], "_clone_i2e", [1], priority=1)
    pipe.state.pre.set_clone_session(1, [(3, 0)])
    out = dict(pipe.process(1, b"\x03\x00\x00\x00").outputs)
    assert set(out) == {2, 3}
    assert out[2][1] == 2  # original: header removed
    assert out[3][1] == 4  # clone: length of the packet as received
    pipe.state.pre.delete_clone_session(1)
    assert [p for p, _ in pipe.process(1, b"\x03\x00\x00\x00").outputs] == [2]


def test_redirect_clone_e2e() -> None:
    pipe = redirect(4, 2)
    pipe.state.table("t_egress").add(
        [Exact(4), Ternary(0, 0xFFFFFFFF), Ternary(0, 0xFF)], "_clone_e2e", [1], priority=1
    )
    pipe.state.pre.set_clone_session(1, [(3, 0), (4, 0)])
    out = pipe.process(1, b"\x04\x00\x00\x00").outputs
    assert sorted(p for p, _ in out) == [2, 3, 4]
    assert all(frame[1] == 2 for _, frame in out)


def test_redirect_resubmit_uses_preserved_metadata() -> None:
    pipe = redirect(5, 2)
    pipe.state.table("t_ingress_1").add([Exact(5), Exact(1)], "_set_port", [3])
    pipe.state.table("t_ingress_2").add([Exact(5), Ternary(0, 0xFFFFFFFF)], "_resubmit", [], 1)
    out = pipe.process(1, b"\x05\x00\x00\x00").outputs
    assert [p for p, _ in out] == [3]
    assert out[0][1][1] == 2


def test_redirect_recirculate() -> None:
    pipe = redirect(6, 2)
    pipe.state.table("t_ingress_1").add([Exact(6), Exact(1)], "_set_port", [3])
    pipe.state.table("t_egress").add(
        [Exact(6), Ternary(0, 0xFFFFFFFF), Ternary(0, 0xFF)], "_recirculate", [], 1
    )
    out = pipe.process(1, b"\x06\x00\x00\x00\x00\x00").outputs
    assert [p for p, _ in out] == [3]
    assert out[0][1][1] == 2


def test_redirect_exit_in_ingress_goes_to_port_0() -> None:
    pipe = redirect_pipe()
    pipe.state.table("t_ingress_1").add([Exact(7), Exact(0)], "_exit", [])
    assert [p for p, _ in pipe.process(1, b"\x07\x00\x00\x00").outputs] == [0]


# ---- other simple_switch tests ----


def test_truncate() -> None:
    pipe = load("truncate")
    pipe.state.table("t_ingress").add([Exact(1)], "_truncate", [32, 2])
    pkt = b"\x01" + b"\xab" * 127
    assert pipe.process(1, pkt).outputs == [(2, pkt[:32])]


def test_recirc_p4_14() -> None:
    out = load("recirc").process(1, b"\x00").outputs
    assert len(out) == 1
    port, frame = out[0]
    assert port == 1 and len(frame) == 2 and frame[1] == 0xAB


@pytest.mark.parametrize(
    ("pkt", "expected"),
    [
        (b"\x00\x00\x00\x05", b"\x00\x00\x00\x00"),  # no error
        (b"\x00\x00\x00\x0b", b"\x00\x00\x00\x02"),  # verify failed: custom error
        (b"\x00\x00", b"\x00\x00\x00\x01\x00\x00"),  # too short: unparsed bytes stay payload
        (b"", b"\x00\x00\x00\x01"),
    ],
)
def test_parser_error(pkt: bytes, expected: bytes) -> None:
    assert load("parser_error").process(3, pkt).outputs == [(3, expected)]


# ---- simple_switch_grpc tests ----


def test_clone_session_rid_and_order() -> None:
    pipe = load("clone")
    pipe.state.pre.set_clone_session(5, [(3, 7), (4, 8)])
    out = pipe.process(1, b"\x00\x05").outputs
    assert out == [(3, b"\x00\x07"), (4, b"\x00\x08"), (1, b"\x00\x00")]
    assert load("clone").process(1, b"\x00\x05").outputs == [(1, b"\x00\x00")]


def test_multicast_replicas_carry_rid() -> None:
    pipe = load("multicast")
    pipe.state.pre.set_multicast_group(7, [(1, 10), (2, 20)])
    assert pipe.process(0, b"\x00\x07").outputs == [(1, b"\x00\x0a"), (2, b"\x00\x14")]
    assert pipe.process(0, b"\x00\x08").outputs == []  # empty group: nothing
    assert pipe.process(0, b"\x00\x00").outputs == [(0, b"\x00\x00")]


def test_digest_and_idle_time() -> None:
    clock = Clock()
    pipe = load("digest", clock)
    frame = bytes.fromhex("ffffffffffff0a0b0c0d0e0f0800") + b"x" * 10
    res = pipe.process(9, frame)
    assert res.outputs == [(9, frame)]
    assert len(res.digests) == 1
    name, values = res.digests[0]
    assert values == (0x0A0B0C0D0E0F, 9)
    assert name in pipe.state.names()["digests"]
    t = pipe.state.table("ingress.smac")
    eid = t.add([Exact(0x0A0B0C0D0E0F)], "NoAction", [])
    clock.ns += 5_000
    assert pipe.process(9, frame).digests == []
    assert t.last_hit_ns(eid) == clock.ns


def test_direct_meter_and_counter_tables() -> None:
    clock = Clock()
    pipe = load("meter", clock)
    t = pipe.state.table("ingress.t_redirect")
    assert t.has_direct_meter
    eid = t.add([Exact(1)], "ingress.port_redirect", [])
    t.set_direct_meter(eid, MeterConfig(cir=1, cburst=1, pir=1, pburst=1))
    assert pipe.process(1, b"abc").outputs == [(1, b"abc")]
    assert t.get_direct_meter(eid) == MeterConfig(1, 1, 1, 1)
    counter = load("counter")
    names = counter.state.names()
    assert names["tables"]


def test_optional_match() -> None:
    pipe = load("optional")
    t = pipe.state.table("ingress.opt")
    t.add([Optional_(5)], "ingress.send_1", [], priority=10)
    t.add([Wildcard()], "ingress.send_2", [], priority=1)
    assert [p for p, _ in pipe.process(0, b"\x00\x05").outputs] == [1]
    assert [p for p, _ in pipe.process(0, b"\x00\x06").outputs] == [2]


def test_action_profile_members() -> None:
    pipe = load("action_profile")
    names = pipe.state.names()
    assert names["action_profiles"]
    prof = pipe.state.action_profile(names["action_profiles"][0])
    (tname,) = [n for n in names["tables"] if pipe.state.table(n).is_indirect]
    t = pipe.state.table(tname)
    action = next(a for a in t.action_names if pipe.state.table(tname).cfg.actions[a].params)
    width = t.cfg.actions[action].params[0][1]
    m = prof.add_member(action, [min(3, (1 << width) - 1)] * len(t.cfg.actions[action].params))
    key = [Exact(0) if mt == "exact" else Wildcard() for _, mt, _ in t.key_fields]
    t.add(key, member=m)
    assert t.entries()[0].member == m
