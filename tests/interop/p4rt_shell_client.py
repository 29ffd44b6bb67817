"""Runs INSIDE the p4runtime-shell virtual environment, never in ours.

It drives the embedded target only through p4runtime-shell's public API (the
way an operator would at the shell prompt): push the pipeline, insert
``vnic.port_map`` and ``vnic.acl`` entries, read them back, read and write the
ACL's direct counters, read an indirect counter, provoke one error, delete.
Each step is recorded as ok/failed with what was sent and seen, and the whole
report is printed as one JSON line, so the pytest side can name every failing
step instead of stopping at the first.

Usage: python p4rt_shell_client.py GRPC_ADDR DEVICE_ID P4INFO BMV2_JSON
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from typing import Any

import p4runtime_sh.shell as sh  # type: ignore[import-not-found]
from p4runtime_sh.context import P4Type  # type: ignore[import-not-found]
from p4runtime_sh.p4runtime import P4RuntimeWriteException  # type: ignore[import-not-found]

REPORT: list[dict[str, Any]] = []

# The same values the pytest side checks; one place.
PORT_MAP = {1: (1, 0, 2, 1, 1), 2: (1, 1, 1, 1, 1)}
"""port -> vnic_id, direction, peer, policy, admit_new"""
ACL = [
    # (priority, protocol, dst_port low, high, src_addr, src mask, action)
    (30, 6, 8080, 8080, 0, 0, "vnic.acl_allow_track"),
    (20, 17, 5353, 5353, 0x0A4D0000, 0xFFFF0000, "vnic.acl_deny"),
]


def to_int(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


def step(name: str, body: Callable[[], object]) -> None:
    """Run one step; record its outcome and detail (the exception text on failure)."""
    try:
        detail = body()
        REPORT.append({"step": name, "ok": True, "detail": repr(detail) if detail else ""})
    except BaseException as exc:  # the shell raises SystemExit, too
        REPORT.append({
            "step": name,
            "ok": False,
            "detail": f"{type(exc).__name__}: {exc}",
            "trace": traceback.format_exc(limit=4),
        })


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def port_map_entry(port: int) -> Any:
    vnic_id, direction, peer, policy, admit = PORT_MAP[port]
    te = sh.TableEntry("vnic.port_map")(action="vnic.set_vnic")
    te.match["port"] = str(port)
    te.action["vnic_id"] = str(vnic_id)
    te.action["direction"] = str(direction)
    te.action["peer_port"] = str(peer)
    te.action["default_policy"] = str(policy)
    te.action["admit_new"] = str(admit)
    return te


def acl_entry(rule: tuple[int, int, int, int, int, int, str]) -> Any:
    priority, proto, lo, hi, src, src_mask, action = rule
    te = sh.TableEntry("vnic.acl")(action=action)
    te.match["vnic_id"] = "1"
    te.match["flow_id"] = "1"
    te.match["protocol"] = f"{proto}&&&0xff"
    te.match["dst_port"] = f"{lo}..{hi}"
    if src_mask:
        te.match["src_addr"] = f"{src}&&&{src_mask}"
    te.priority = priority
    return te


def insert_port_map() -> None:
    for port in PORT_MAP:
        port_map_entry(port).insert()


def read_port_map() -> str:
    seen: dict[int, tuple[int, ...]] = {}
    for te in sh.TableEntry("vnic.port_map").read():
        msg = te.msg()
        port = to_int(msg.match[0].exact.value)
        params = {p.param_id: to_int(p.value) for p in msg.action.action.params}
        seen[port] = tuple(params[i] for i in sorted(params))
    check(seen == PORT_MAP, f"port_map read back {seen}, inserted {PORT_MAP}")
    return f"{len(seen)} entries"


def insert_acl() -> None:
    for rule in ACL:
        acl_entry(rule).insert()


def read_acl() -> str:
    by_priority: dict[int, tuple[dict[int, int | tuple[int, int]], str]] = {}
    for te in sh.TableEntry("vnic.acl").read():
        msg = te.msg()
        fields: dict[int, int | tuple[int, int]] = {}
        for m in msg.match:
            kind = m.WhichOneof("field_match_type")
            if kind == "exact":
                fields[m.field_id] = to_int(m.exact.value)
            elif kind == "ternary":
                fields[m.field_id] = (to_int(m.ternary.value), to_int(m.ternary.mask))
            elif kind == "range":
                fields[m.field_id] = (to_int(m.range.low), to_int(m.range.high))
        action = sh.context.get_name_from_id(msg.action.action.action_id)
        by_priority[msg.priority] = (fields, action)
    check(sorted(by_priority) == sorted(r[0] for r in ACL),
          f"acl priorities read back {sorted(by_priority)}")
    info = {f.name: f.id for f in sh.context.get_obj(P4Type.table, "vnic.acl").match_fields}
    for priority, proto, lo, hi, src, mask, action in ACL:
        fields, got_action = by_priority[priority]
        check(got_action == action, f"priority {priority}: action {got_action}, want {action}")
        check(fields[info["vnic_id"]] == 1 and fields[info["flow_id"]] == 1,
              f"priority {priority}: exact fields {fields}")
        check(fields[info["protocol"]] == (proto, 0xFF),
              f"priority {priority}: protocol {fields.get(info['protocol'])}")
        check(fields[info["dst_port"]] == (lo, hi),
              f"priority {priority}: dst_port {fields.get(info['dst_port'])}")
        if mask:
            check(fields.get(info["src_addr"]) == (src, mask),
                  f"priority {priority}: src_addr {fields.get(info['src_addr'])}")
        else:
            check(info["src_addr"] not in fields,
                  f"priority {priority}: don't-care src_addr read back as {fields}")
    return f"{len(by_priority)} entries"


def direct_counters_zero() -> str:
    counts = []
    for rule in ACL:
        dc = sh.DirectCounterEntry("vnic.acl_counter")
        dc.table_entry = acl_entry(rule)
        for entry in dc.read():
            counts.append((entry.packet_count, entry.byte_count))
    check(counts == [(0, 0)] * len(ACL), f"fresh ACL rules count {counts}")
    return str(counts)


def direct_counter_write() -> str:
    dc = sh.DirectCounterEntry("vnic.acl_counter")
    dc.table_entry = acl_entry(ACL[0])
    dc.packet_count = 7
    dc.byte_count = 700
    dc.modify()
    back = sh.DirectCounterEntry("vnic.acl_counter")
    back.table_entry = acl_entry(ACL[0])
    got = [(e.packet_count, e.byte_count) for e in back.read()]
    check(got == [(7, 700)], f"direct counter written (7, 700), read back {got}")
    return str(got)


def table_entry_counter_data() -> str:
    te = sh.TableEntry("vnic.acl")
    te.match["vnic_id"] = "1"
    te.match["flow_id"] = "1"
    te.match["protocol"] = f"{ACL[0][1]}&&&0xff"
    te.match["dst_port"] = f"{ACL[0][2]}..{ACL[0][3]}"
    te.priority = ACL[0][0]
    te.counter_data.packet_count = 0
    got = [(e.counter_data.packet_count, e.counter_data.byte_count) for e in te.read()]
    check(got == [(7, 700)], f"table entry read with counter_data gave {got}")
    return str(got)


def indirect_counter() -> str:
    counter = sh.CounterEntry("vnic.drop_counter")
    counter.index = 0
    got = [(e.index, e.packet_count, e.byte_count) for e in counter.read()]
    check(got == [(0, 0, 0)], f"drop_counter[0] read {got}")
    size = sh.context.get_obj(P4Type.counter, "vnic.drop_counter").size
    every = list(sh.CounterEntry("vnic.drop_counter").read())
    check(len(every) == size, f"wildcard counter read gave {len(every)} cells of {size}")
    return f"{len(every)} cells"


def duplicate_rejected() -> str:
    try:
        port_map_entry(1).insert()
    except P4RuntimeWriteException as exc:
        codes = [err.canonical_code for _idx, err in exc.errors]
        check(codes == [6], f"duplicate insert gave codes {codes}, want [6] ALREADY_EXISTS")
        return str(exc).strip()
    raise AssertionError("inserting an existing port_map entry succeeded")


def modify_port_map() -> str:
    te = port_map_entry(2)
    te.action["default_policy"] = "0"
    te.modify()
    got = [to_int(e.msg().action.action.params[3].value)
           for e in sh.TableEntry("vnic.port_map").read()
           if to_int(e.msg().match[0].exact.value) == 2]
    check(got == [0], f"modified default_policy read back {got}")
    return str(got)


def delete_all() -> str:
    for rule in ACL:
        acl_entry(rule).delete()
    for port in PORT_MAP:
        port_map_entry(port).delete()
    left = len(list(sh.TableEntry("vnic.acl").read())) + len(
        list(sh.TableEntry("vnic.port_map").read()))
    check(left == 0, f"{left} entries left after deleting all")
    return "empty"


def main() -> int:
    addr, device_id, p4info, bmv2_json = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    setup_ok = True

    def setup() -> None:
        sh.setup(device_id=device_id, grpc_addr=addr, election_id=(0, 1),
                 config=sh.FwdPipeConfig(p4info, bmv2_json), verbose=False)

    step("setup + push pipeline", setup)
    setup_ok = REPORT[-1]["ok"]
    if setup_ok:
        for name, body in [
            ("insert vnic.port_map", insert_port_map),
            ("read vnic.port_map", read_port_map),
            ("insert vnic.acl", insert_acl),
            ("read vnic.acl", read_acl),
            ("read direct counters", direct_counters_zero),
            ("write direct counter", direct_counter_write),
            ("read table entry with counter_data", table_entry_counter_data),
            ("read indirect counter", indirect_counter),
            ("duplicate insert rejected", duplicate_rejected),
            ("modify vnic.port_map", modify_port_map),
            ("delete all", delete_all),
        ]:
            step(name, body)
        step("teardown", sh.teardown)
    print(json.dumps(REPORT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
