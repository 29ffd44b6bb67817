"""Small BMv2 JSON programs written by hand in p4c's shape, for semantics the fixtures miss:
expressions (signed, saturating, shifts, ternary), registers, hash primitive, varbit,
lookahead, verify, log_msg, exit. Header stacks: test_engine_v1model_semantics.py."""

from __future__ import annotations

from typing import Any

import pytest

from pyoffload.embedded.engine import Pipeline

STD_FIELDS = [
    ["ingress_port", 9, False], ["egress_spec", 9, False], ["egress_port", 9, False],
    ["instance_type", 32, False], ["packet_length", 32, False], ["mcast_grp", 16, False],
    ["egress_rid", 16, False], ["checksum_error", 1, False], ["parser_error", 32, False],
    ["_padding", 6, False],
]  # fmt: skip
ERRORS = [["NoError", 0], ["PacketTooShort", 1], ["NoMatch", 2], ["StackOutOfBounds", 3],
          ["HeaderTooShort", 4], ["ParserTimeout", 5], ["ParserInvalidArgument", 6],
          ["BadThing", 7]]  # fmt: skip


def F(h: str, f: str) -> dict[str, Any]:
    return {"type": "field", "value": [h, f]}


def H(v: int) -> dict[str, Any]:
    return {"type": "hexstr", "value": hex(v) if v >= 0 else "-" + hex(-v)}


def E(op: str, left: Any, right: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "expression", "value": {"op": op, "left": left, "right": right, **extra}}


def assign(dst: Any, src: Any) -> dict[str, Any]:
    return {"op": "assign", "parameters": [dst, src]}


def program(
    header_types: list[dict[str, Any]],
    headers: list[tuple[str, str, bool]],
    states: list[dict[str, Any]],
    ingress: list[dict[str, Any]],
    deparse: list[str],
    **extra: Any,
) -> dict[str, Any]:
    """A v1model-shaped program: one parser, ingress = one action, empty egress."""
    hts = [{"name": "standard_metadata", "id": 0, "fields": STD_FIELDS}]
    hts += [{"id": i + 1, **ht} for i, ht in enumerate(header_types)]
    hs = [
        {"name": "standard_metadata", "id": 0, "header_type": "standard_metadata", "metadata": True}
    ]
    hs += [
        {"name": n, "id": i + 1, "header_type": t, "metadata": m}
        for i, (n, t, m) in enumerate(headers)
    ]
    actions = [{"name": "act", "id": 0, "runtime_data": [], "primitives": ingress}]
    table = {
        "name": "tbl_act", "id": 0, "key": [], "match_type": "exact", "type": "simple",
        "max_size": 1, "with_counters": False, "support_timeout": False, "direct_meters": None,
        "action_ids": [0], "actions": ["act"], "base_default_next": None,
        "next_tables": {"act": None},
        "default_entry": {"action_id": 0, "action_const": True, "action_data": [],
                          "action_entry_const": True},
    }  # fmt: skip
    cfg: dict[str, Any] = {
        "__meta__": {"version": [2, 23]},
        "header_types": hts,
        "headers": hs,
        "header_stacks": extra.pop("header_stacks", []),
        "errors": ERRORS,
        "parsers": [{"name": "parser", "id": 0, "init_state": states[0]["name"],
                     "parse_states": states}],
        "deparsers": [{"name": "deparser", "id": 0, "order": deparse}],
        "actions": actions,
        "pipelines": [
            {"name": "ingress", "id": 0, "init_table": "tbl_act", "tables": [table],
             "action_profiles": [], "conditionals": []},
            {"name": "egress", "id": 1, "init_table": None, "tables": [],
             "action_profiles": [], "conditionals": []},
        ],
        "calculations": extra.pop("calculations", []),
        "register_arrays": extra.pop("register_arrays", []),
        "checksums": [],
        "field_aliases": [],
    }  # fmt: skip
    cfg.update(extra)
    return cfg


def state(name: str, ops: list[dict[str, Any]], key: list[Any] | None = None,
          transitions: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "name": name, "id": 0, "parser_ops": ops, "transition_key": key or [],
        "transitions": transitions or [{"type": "default", "value": None, "mask": None,
                                         "next_state": None}],
    }  # fmt: skip


def extract(h: str) -> dict[str, Any]:
    return {"op": "extract", "parameters": [{"type": "regular", "value": h}]}


CALC_T = {
    "name": "calc_t",
    "fields": [
        ["a", 8, True], ["b", 8, True], ["x", 8, False], ["y", 8, False],
        ["r1", 8, True], ["r2", 8, False], ["r3", 8, False], ["r4", 8, True],
        ["r5", 16, False], ["r6", 8, False], ["r7", 32, False], ["r8", 8, False],
    ],
}  # fmt: skip


def run_calc(prims: list[dict[str, Any]], a: int, b: int, x: int, y: int, **extra: Any) -> bytes:
    cfg = program([CALC_T], [("c", "calc_t", False)], [state("start", [extract("c")])],
                  prims, ["c"], **extra)  # fmt: skip
    pipe = Pipeline.load(cfg, seed=1)
    pkt = bytes([a & 0xFF, b & 0xFF, x, y]) + bytes(13)
    out = pipe.process(0, pkt).outputs
    assert len(out) == 1
    return out[0][1]


def s8(v: int) -> int:
    return v - 256 if v >= 128 else v


def test_signed_and_unsigned_arithmetic_wraps_like_p4c_emits_it() -> None:
    c = "c"
    prims = [
        # int<8> sum = a + b  -> p4c: two_comp_mod(a + b, 8)
        assign(F(c, "r1"), E("two_comp_mod", E("+", F(c, "a"), F(c, "b")), H(8))),
        # bit<8> x - y -> (x - y) & 0xff
        assign(F(c, "r2"), E("&", E("-", F(c, "x"), F(c, "y")), H(0xFF))),
        # x |+| y -> usat_cast(x + y, 8)
        assign(F(c, "r3"), E("usat_cast", E("+", F(c, "x"), F(c, "y")), H(8))),
        # a |+| b -> sat_cast(a + b, 8)
        assign(F(c, "r4"), E("sat_cast", E("+", F(c, "a"), F(c, "b")), H(8))),
        # x ++ y
        assign(F(c, "r5"), E("|", E("<<", F(c, "x"), H(8)), F(c, "y"))),
        # ~x & 0xff, x >> (y & 7)
        assign(F(c, "r6"), E("&", E("~", None, F(c, "x")), H(0xFF))),
        assign(F(c, "r8"), E(">>", F(c, "x"), E("&", F(c, "y"), H(7)))),
        # (a < b ? 1 : 0) | (x < y ? 2 : 0)
        assign(
            F(c, "r7"),
            E("|",
              E("?", H(1), H(0), cond=E("<", F(c, "a"), F(c, "b"))["value"]),
              E("?", H(2), H(0), cond=E("<", F(c, "x"), F(c, "y"))["value"])),
        ),
    ]  # fmt: skip
    out = run_calc(prims, a=-100, b=-50, x=200, y=100)
    r = out[4:]
    assert s8(r[0]) == s8((-150) & 0xFF)  # wraps to +106
    assert r[1] == 100
    assert r[2] == 255  # saturated
    assert s8(r[3]) == -128  # saturated at the signed minimum
    assert int.from_bytes(r[4:6], "big") == (200 << 8) | 100
    assert r[6] == (~200) & 0xFF
    assert int.from_bytes(r[7:11], "big") == 1  # -100 < -50 signed; 200 > 100
    assert r[11] == 200 >> (100 & 7)


REG = {"type": "register_array", "value": "R"}


def test_register_read_write_and_hash_primitive() -> None:
    c = "c"
    calc = {"name": "h", "id": 0, "algo": "crc16", "input": [F(c, "x"), F(c, "y")]}
    prims = [
        {"op": "register_read", "parameters": [F(c, "r6"), REG, F(c, "x")]},
        {"op": "register_write", "parameters": [REG, F(c, "x"), E("+", F(c, "r6"), H(1))]},
        {"op": "modify_field_with_hash_based_offset",
         "parameters": [F(c, "r5"), H(0), {"type": "calculation", "value": "h"}, H(65536)]},
        {"op": "modify_field_with_hash_based_offset",
         "parameters": [F(c, "r8"), H(10), {"type": "calculation", "value": "h"}, H(7)]},
    ]  # fmt: skip
    cfg = program([CALC_T], [("c", "calc_t", False)], [state("start", [extract("c")])], prims,
                  ["c"], calculations=[calc],
                  register_arrays=[{"name": "R", "id": 0, "size": 256, "bitwidth": 8}])  # fmt: skip
    pipe = Pipeline.load(cfg)
    pkt = bytes([0, 0, 3, 9]) + bytes(13)
    outs = [pipe.process(0, pkt).outputs[0][1] for _ in range(3)]
    assert [o[4 + 6] for o in outs] == [0, 1, 2]  # read before write, per packet
    assert pipe.state.register("R").read(3) == 3
    crc = 0
    for byte in (3, 9):
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    assert int.from_bytes(outs[0][8:10], "big") == crc
    assert outs[0][4 + 11] == 10 + crc % 7


VL_T = {"name": "opt_t", "fields": [["kind", 8, False], ["len", 8, False], ["data", "*"]],
        "max_length": 10}  # fmt: skip
MARK_T = {"name": "mark_t", "fields": [["v", 8, False]]}


def vl_program() -> dict[str, Any]:
    # len = lookahead<bit<16>>()[7:0]; extract(opt, (len - 2) * 8); verify(kind != 0, BadThing)
    look = {"type": "lookahead", "value": [8, 8]}
    nbits = E("<<", E("&", E("-", F("meta", "len"), H(2)), H(0xFF)), H(3))
    ops = [
        {"op": "set", "parameters": [F("meta", "len"), look]},
        {"op": "extract_VL", "parameters": [{"type": "regular", "value": "opt"}, nbits]},
        {"op": "verify", "parameters": [E("!=", F("opt", "kind"), H(0)), H(7)]},
        extract("mark"),
    ]
    meta_t = {"name": "meta_t", "fields": [["len", 8, False]]}
    return program(
        [VL_T, MARK_T, meta_t],
        [("opt", "opt_t", False), ("mark", "mark_t", False), ("meta", "meta_t", True)],
        [state("start", ops)],
        [
            assign(F("mark", "v"), F("standard_metadata", "parser_error")),
            assign(
                F("opt", "kind"),
                E("|", F("opt", "kind"), E("<<", F("standard_metadata", "parser_error"), H(4))),
            ),
        ],
        ["opt", "mark"],
    )


@pytest.mark.parametrize(
    ("pkt", "expected"),
    [
        (b"\x05\x04\xaa\xbb\x00", b"\x05\x04\xaa\xbb\x00"),  # varbit of 2 bytes, mark 0
        (b"\x05\x02\x00", b"\x05\x02\x00"),  # empty varbit
        # verify fails: BadThing (7) reported, mark not extracted so its byte stays payload
        (b"\x00\x03\xcc\x01", b"\x70\x03\xcc\x01"),
        (b"\x05\x05\x01\x02", b"\x05\x05\x01\x02"),  # too short: error, mark invalid
        (b"\x05\x0f" + bytes(20), b"\x05\x0f" + bytes(20)),  # over max_length: HeaderTooShort
    ],
)
def test_varbit_lookahead_verify(pkt: bytes, expected: bytes) -> None:
    pipe = Pipeline.load(vl_program())
    assert pipe.process(0, pkt).outputs == [(0, expected)]


def test_log_msg_and_exit() -> None:
    prims: list[dict[str, Any]] = [
        {"op": "log_msg", "parameters": [
            {"type": "string", "value": "x={} y={}"},
            {"type": "parameters_vector", "value": [F("c", "x"), F("c", "y")]}]},
        {"op": "exit", "parameters": []},
        assign(F("c", "r2"), H(42)),  # BMv2 still runs the rest of the action
    ]  # fmt: skip
    cfg = program([CALC_T], [("c", "calc_t", False)], [state("start", [extract("c")])], prims,
                  ["c"])  # fmt: skip
    res = Pipeline.load(cfg).process(0, bytes([0, 0, 7, 8]) + bytes(13))
    assert res.logs == ["x=7 y=8"]
    assert res.outputs[0][1][5] == 42


def test_assert_failure_drops_the_packet_and_logs() -> None:
    prims = [{"op": "assert", "parameters": [E("==", F("c", "x"), H(1))]}]
    cfg = program([CALC_T], [("c", "calc_t", False)], [state("start", [extract("c")])], prims,
                  ["c"])  # fmt: skip
    pipe = Pipeline.load(cfg)
    res = pipe.process(0, bytes([0, 0, 2, 0]) + bytes(13))
    assert res.outputs == [] and "Assert" in res.logs[0]
    assert pipe.process(0, bytes([0, 0, 1, 0]) + bytes(13)).outputs
