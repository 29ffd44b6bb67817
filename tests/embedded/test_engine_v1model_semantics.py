"""v1model packet semantics, on our own programs (programs/replication.p4, parsing.p4).

The expectations are simple_switch's documented behaviour: clones, resubmits and
recirculations keep only their field list; an ingress clone is the packet as
received; packet_length in egress follows header removal; replicas carry their
egress_rid; a parser error leaves the unparsed bytes as payload.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyoffload.embedded.engine import InvalidValue, NotFound, Pipeline, TableFull

PROGRAMS = Path(__file__).parent / "programs"


def load(name: str) -> Pipeline:
    return Pipeline.load((PROGRAMS / f"{name}.json").read_text())


# ---- replication.p4 ----

SRC_MAC = 0x0A0B0C0D0E0F
ETH_PROBE = bytes.fromhex("ffffffffffff0a0b0c0d0e0f88b5")
PROBE = struct.Struct(">BBIHHBIB")  # op passes instance_type rid in_port kept pkt_len has_tail
TAIL = b"\xca\xfe"
PAYLOAD = b"payload!"

OP_NONE, OP_CLONE_I2E, OP_RESUBMIT, OP_RECIRCULATE, OP_DIGEST = 0, 1, 2, 3, 4
OP_MULTICAST, OP_TRUNCATE, OP_LOG, OP_CLONE_E2E, OP_MULTICAST_DROPPED = 5, 6, 7, 8, 9
OP_EXIT, OP_CLONE_AND_MULTICAST = 10, 11

NORMAL, I2E_CLONE, E2E_CLONE, RECIRCULATED, RESUBMITTED = 0, 1, 2, 4, 6


@dataclass(frozen=True, kw_only=True)
class Seen:
    """What the pipeline wrote into the probe header of an output frame."""

    op: int
    passes: int
    instance_type: int
    """Written by ingress, and by egress for clones."""
    rid: int
    """egress_rid seen in egress."""
    in_port: int
    """ingress_port seen by ingress (0 when not run or not preserved)."""
    kept: int
    pkt_len: int
    """packet_length seen in egress."""
    has_tail: int
    rest: bytes
    """Everything after the probe header."""


def probe(op: int, *, tail: bool = True) -> bytes:
    fields = PROBE.pack(op, 0, 0, 0, 0, 0, 0, int(tail))
    return ETH_PROBE + fields + (TAIL if tail else b"") + PAYLOAD


FRAME_LEN = len(probe(OP_NONE))
STRIPPED_LEN = FRAME_LEN - len(TAIL)


def seen(frame: bytes) -> Seen:
    assert frame[:14] == ETH_PROBE
    op, passes, it, rid, in_port, kept, pkt_len, has_tail = PROBE.unpack_from(frame, 14)
    return Seen(op=op, passes=passes, instance_type=it, rid=rid, in_port=in_port, kept=kept,
                pkt_len=pkt_len, has_tail=has_tail, rest=frame[14 + PROBE.size:])  # fmt: skip


def test_unicast_sees_packet_length_after_header_removal() -> None:
    out = load("replication").process(1, probe(OP_NONE)).outputs
    assert [p for p, _ in out] == [2]
    s = seen(out[0][1])
    assert (s.pkt_len, s.has_tail, s.rest) == (STRIPPED_LEN, 0, PAYLOAD)
    assert (s.in_port, s.instance_type, s.rid, s.kept) == (1, NORMAL, 0, 0)
    assert len(out[0][1]) == STRIPPED_LEN


def test_frames_without_probe_are_dropped() -> None:
    assert load("replication").process(1, bytes(14) + PAYLOAD).outputs == []


def test_multicast_replicas_carry_rid_and_packet_length() -> None:
    pipe = load("replication")
    pipe.state.pre.set_multicast_group(7, [(1, 10), (2, 20), (4, 20)])
    out = pipe.process(3, probe(OP_MULTICAST)).outputs
    assert [p for p, _ in out] == [1, 2, 4]
    assert [seen(f).rid for _, f in out] == [10, 20, 20]
    assert all(seen(f).pkt_len == STRIPPED_LEN and seen(f).in_port == 3 for _, f in out)
    pipe.state.pre.set_multicast_group(7, [])
    assert pipe.process(3, probe(OP_MULTICAST)).outputs == []  # empty group: nothing
    pipe.state.pre.delete_multicast_group(7)
    assert pipe.process(3, probe(OP_MULTICAST)).outputs == []  # unknown group: nothing
    with pytest.raises(NotFound):
        pipe.state.pre.delete_multicast_group(7)


def test_mark_to_drop_cancels_multicast() -> None:
    pipe = load("replication")
    pipe.state.pre.set_multicast_group(7, [(1, 10)])
    assert pipe.process(3, probe(OP_MULTICAST_DROPPED)).outputs == []


def test_ingress_clone_is_the_packet_as_received_with_session_rids_first() -> None:
    pipe = load("replication")
    pipe.state.pre.set_clone_session(5, [(3, 7), (4, 8)])
    out = pipe.process(1, probe(OP_CLONE_I2E)).outputs
    assert [p for p, _ in out] == [3, 4, 2]  # clones first, in session order
    clones = [seen(f) for _, f in out[:2]]
    assert [c.rid for c in clones] == [7, 8]
    for c in clones:
        assert c.instance_type == I2E_CLONE and c.kept == 0x77  # field list preserved
        assert c.pkt_len == FRAME_LEN  # length as received
        assert (c.has_tail, c.rest) == (1, TAIL + PAYLOAD)  # ingress changes not applied
        assert c.in_port == 0
    original = seen(out[2][1])
    assert (original.instance_type, original.kept, original.rid) == (NORMAL, 0, 0)
    assert (original.pkt_len, original.rest) == (STRIPPED_LEN, PAYLOAD)
    pipe.state.pre.delete_clone_session(5)
    assert [p for p, _ in pipe.process(1, probe(OP_CLONE_I2E)).outputs] == [2]


def test_clone_to_missing_session_is_a_no_op() -> None:
    out = load("replication").process(1, probe(OP_CLONE_I2E)).outputs
    assert [p for p, _ in out] == [2] and seen(out[0][1]).kept == 0


def test_egress_clone_copies_the_packet_leaving_egress() -> None:
    pipe = load("replication")
    pipe.state.pre.set_clone_session(6, [(5, 0), (6, 1)])
    out = pipe.process(1, probe(OP_CLONE_E2E)).outputs
    assert [p for p, _ in out] == [2, 5, 6]  # the packet, then its egress clones
    original = seen(out[0][1])
    assert (original.instance_type, original.kept, original.pkt_len) == (NORMAL, 0, STRIPPED_LEN)
    clones = [seen(f) for _, f in out[1:]]
    assert [c.rid for c in clones] == [0, 1]
    for c in clones:
        assert (c.instance_type, c.kept) == (E2E_CLONE, 0x66)
        assert c.pkt_len == STRIPPED_LEN  # the egress packet's length
        assert c.in_port == 1 and c.rest == PAYLOAD  # headers as the original left them


def test_clone_and_multicast_in_one_pass() -> None:
    pipe = load("replication")
    pipe.state.pre.set_clone_session(5, [(3, 7)])
    pipe.state.pre.set_multicast_group(7, [(1, 10), (2, 20)])
    out = pipe.process(9, probe(OP_CLONE_AND_MULTICAST)).outputs
    assert [(p, seen(f).rid, seen(f).instance_type) for p, f in out] == [
        (3, 7, I2E_CLONE), (1, 10, NORMAL), (2, 20, NORMAL)]  # fmt: skip
    assert seen(out[0][1]).kept == 0x44 and seen(out[0][1]).pkt_len == FRAME_LEN
    assert all(seen(f).pkt_len == STRIPPED_LEN for _, f in out[1:])


def test_resubmit_keeps_only_the_field_list() -> None:
    out = load("replication").process(1, probe(OP_RESUBMIT)).outputs
    assert [p for p, _ in out] == [2]  # egress_spec 3 of the first pass is forgotten
    s = seen(out[0][1])
    assert (s.passes, s.kept) == (1, 0x55)  # preserved; `lost` (0x99) is not
    assert s.instance_type == RESUBMITTED
    assert s.in_port == 0  # standard metadata is not preserved
    assert (s.pkt_len, s.rest) == (STRIPPED_LEN, PAYLOAD)  # the original packet is re-parsed


def test_recirculate_runs_the_deparsed_packet_again() -> None:
    out = load("replication").process(1, probe(OP_RECIRCULATE)).outputs
    assert [p for p, _ in out] == [2]
    s = seen(out[0][1])
    assert s.passes == 3  # three ingress passes, two recirculations
    assert (s.instance_type, s.in_port) == (RECIRCULATED, 0)
    assert (s.pkt_len, s.has_tail, s.rest) == (STRIPPED_LEN, 0, PAYLOAD)


def test_exit_in_ingress_skips_the_rest_of_ingress_but_not_egress() -> None:
    frame = probe(OP_EXIT)
    out = load("replication").process(1, frame).outputs
    assert [p for p, _ in out] == [0]  # egress_spec never set
    s = seen(out[0][1])
    assert (s.in_port, s.has_tail, s.rest) == (0, 1, TAIL + PAYLOAD)
    assert s.pkt_len == FRAME_LEN  # egress ran


def test_truncate_cuts_the_output_frame() -> None:
    frame = probe(OP_TRUNCATE)
    out = load("replication").process(1, frame).outputs
    assert out == [(2, frame[:20])]  # the first 20 bytes are not changed by the pipeline


def test_digest_reports_fields_and_forwards() -> None:
    pipe = load("replication")
    res = pipe.process(4, probe(OP_DIGEST))
    assert res.digests == [("digest_t", (SRC_MAC, 4))]
    assert pipe.state.names()["digests"] == ["digest_t"]
    assert [p for p, _ in res.outputs] == [2]
    assert pipe.process(4, probe(OP_NONE)).digests == []


def test_log_msg_formats_its_arguments() -> None:
    assert load("replication").process(3, probe(OP_LOG)).logs == ["port=3 op=7"]


# ---- parsing.p4 ----

MACS = bytes.fromhex("020000000001020000000002")
NO_ERROR, PACKET_TOO_SHORT, HEADER_TOO_SHORT, BAD_VERSION = 0, 1, 4, 7  # parsing.p4's numbering


def calc(version: int, a: int = 0, b: int = 0, x: int = 0, y: int = 0) -> bytes:
    """A calc_t header (27 bytes): the inputs, then zeroed result fields."""
    return bytes([version, a & 0xFF, b & 0xFF, x, y]) + bytes(22)


def calc_results(frame: bytes) -> bytes:
    return frame[14 + 5 : 14 + 27]


def error_in_src(frame: bytes) -> int:
    """parsing.p4 writes the parser error into the source MAC when calc_t is missing."""
    return int.from_bytes(frame[6:12], "big")


def test_compiled_arithmetic_signed_saturating_shifts_slices() -> None:
    pkt = MACS + b"\x88\xb5" + calc(4, a=-100, b=-50, x=200, y=100) + b"PAY"
    ((port, frame),) = load("parsing").process(3, pkt).outputs
    assert port == 3
    r = calc_results(frame)
    assert r[0] == (-150) & 0xFF  # int<8> sum wraps
    assert r[1] == (-50) & 0xFF  # a - b
    assert r[2] == 300 & 0xFF and r[3] == 100  # bit<8> wraps
    assert (r[4], r[5]) == (0xFF, 100)  # |+| saturates, |-| does not need to
    assert r[6] == 0x80  # int<8> |+| saturates at -128
    assert r[7] == (200 << 3) & 0xFF and r[8] == 200 >> (100 & 7)
    assert r[9] == (-25) & 0xFF  # arithmetic shift of a negative int
    assert r[10:12] == bytes([200, 100])  # x ++ y
    assert r[12] >> 4 == (200 >> 3) & 0xF  # x[6:3]
    assert (r[13], r[14]) == ((200 * 100) & 0xFF, (~200) & 0xFF)
    assert r[15:19] == NO_ERROR.to_bytes(4, "big")
    assert r[19] == 4  # lookahead<bit<8>> saw the version byte
    assert r[21] == 1  # -100 < -50 (signed); 200 < 100 is false
    assert frame[14 + 27 :] == b"\xab" + b"PAY"  # marker made valid in ingress, then payload


@pytest.mark.parametrize(
    ("pkt", "expected"),
    [
        pytest.param(b"", b"", id="empty"),
        pytest.param(b"0123456789", b"0123456789", id="shorter-than-ethernet"),
        # calc_t cut short: error in the source MAC, the 5 bytes stay payload
        pytest.param(
            MACS + b"\x88\xb5" + calc(4)[:5],
            MACS[:6] + PACKET_TOO_SHORT.to_bytes(6, "big") + b"\x88\xb5" + calc(4)[:5],
            id="too-short",
        ),
        # varbit longer than its 32-byte maximum, with enough bytes in the packet
        pytest.param(
            MACS + b"\x88\xb6\x05\x30" + bytes(60),
            MACS[:6] + HEADER_TOO_SHORT.to_bytes(6, "big") + b"\x88\xb6\x05\x30" + bytes(60),
            id="varbit-over-max",
        ),
        # varbit running past the end of the packet is PacketTooShort, checked first
        pytest.param(
            MACS + b"\x88\xb6\x05\xff" + bytes(40),
            MACS[:6] + PACKET_TOO_SHORT.to_bytes(6, "big") + b"\x88\xb6\x05\xff" + bytes(40),
            id="varbit-past-end",
        ),
    ],
)
def test_parser_errors_leave_unparsed_bytes_as_payload(pkt: bytes, expected: bytes) -> None:
    assert load("parsing").process(3, pkt).outputs == [(3, expected)]


def test_verify_failure_reports_custom_error_after_extract() -> None:
    pkt = MACS + b"\x88\xb5" + calc(5) + b"PAY"
    ((_, frame),) = load("parsing").process(3, pkt).outputs
    assert calc_results(frame)[15:19] == BAD_VERSION.to_bytes(4, "big")
    assert frame[:12] == MACS  # calc_t was extracted, so the other branch did not run
    assert frame[14 + 27 :] == b"\xab" + b"PAY"


def test_varbit_header_is_emitted_with_its_length() -> None:
    pkt = MACS + b"\x88\xb6" + b"\x05\x04\xaa\xbb" + calc(4, 1, 2, 3, 4)
    ((_, frame),) = load("parsing").process(3, pkt).outputs
    assert frame[14:18] == b"\x05\x04\xaa\xbb"
    r = frame[18 + 5 : 18 + 27]
    assert r[15:19] == bytes(4) and r[20] == 4  # no error; depth = opt.len


def mpls(label: int, bos: int, ttl: int = 5) -> bytes:
    return (label << 12 | bos << 8 | ttl).to_bytes(4, "big")


ETH_MPLS = MACS + b"\x88\x47"


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        pytest.param(mpls(100, 0) + mpls(7, 1), mpls(7, 1), id="pop_front"),
        pytest.param(mpls(200, 1), mpls(999, 0, 64) + mpls(200, 1), id="push_front"),
        # a full stack: push_front shifts the last label out
        pytest.param(
            mpls(200, 0) + mpls(2, 0) + mpls(3, 1),
            mpls(999, 0, 64) + mpls(200, 0) + mpls(2, 0),
            id="push_front-full",
        ),
        # a fourth label overflows the stack: it stays payload
        pytest.param(mpls(300, 0) * 4, mpls(300, 0) * 4, id="overflow"),
        pytest.param(mpls(300, 1), mpls(300, 1), id="untouched"),
    ],
)
def test_header_stack_push_and_pop(labels: bytes, expected: bytes) -> None:
    out = load("parsing").process(3, ETH_MPLS + labels + b"PAY").outputs
    assert out == [(3, ETH_MPLS + expected + b"PAY")]


def test_parser_value_set_selects_a_state_at_runtime() -> None:
    pipe = load("parsing")
    assert pipe.state.names()["value_sets"] == ["MyParser.tag_types"]
    vset = pipe.state.value_set("MyParser.tag_types")
    pkt = MACS + b"\x91\x00" + b"\x00\x05\x08\x00" + b"PAY"
    untagged = MACS[:6] + NO_ERROR.to_bytes(6, "big") + pkt[12:]
    tagged = MACS + b"\x91\x00" + b"\x01\x05\x08\x00" + b"PAY"  # tag.seen set, src kept
    assert pipe.process(3, pkt).outputs == [(3, untagged)]
    vset.add(0x9100)
    vset.add(0x9200)
    assert pipe.process(3, pkt).outputs == [(3, tagged)]
    vset.remove(0x9100)
    assert pipe.process(3, pkt).outputs == [(3, untagged)]
    vset.add(0x9100)
    vset.clear()
    assert pipe.process(3, pkt).outputs == [(3, untagged)]


def test_parser_value_set_checks_width_and_capacity() -> None:
    vset = load("parsing").state.value_set("MyParser.tag_types")
    with pytest.raises(InvalidValue, match=r"tag_types.*16 bits"):
        vset.add(1 << 16)
    with pytest.raises(InvalidValue):
        vset.add(-1)
    for v in range(4):
        vset.add(0x9100 + v)
    vset.add(0x9100)  # already there: not a new entry
    with pytest.raises(TableFull, match="full"):
        vset.add(0x9200)
    vset.remove(0x9100)
    vset.add(0x9200)
