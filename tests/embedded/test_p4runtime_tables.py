"""Table entries over real gRPC: writes, errors, reads with wildcards, atomicity, packets."""

from __future__ import annotations

import grpc
import pytest
from finsy.proto import p4r, rpc_code

from pyoffload.embedded.p4runtime.codec import encode_uint
from pyoffload.embedded.p4runtime.testing import (
    Target,
    action,
    delete,
    eth,
    insert,
    ipv4,
    modify,
)

WA = p4r.WriteRequest




def l2(t: Target, mac: int, *, act: str = "forward", port: int | None = 2,
       **fields: object) -> p4r.Entity:
    n = t.names
    params = () if port is None else (port,)
    entry = p4r.TableEntry(
        table_id=n.id("l2"),
        match=[p4r.FieldMatch(field_id=n.field("l2", "hdr.ethernet.dstAddr"),
                              exact=p4r.FieldMatch.Exact(value=encode_uint(mac)))],
        action=p4r.TableAction(action=action(n.id(act), *params)),
        **fields,  # type: ignore[arg-type]
    )
    return p4r.Entity(table_entry=entry)


def acl(t: Target, src: int, mask: int, priority: int, lo: int = 0x800, hi: int = 0x8ff,
        act: str = "acl_forward", *params: int) -> p4r.Entity:
    n = t.names
    entry = p4r.TableEntry(
        table_id=n.id("acl"),
        match=[
            p4r.FieldMatch(field_id=n.field("acl", "hdr.ethernet.srcAddr"),
                           ternary=p4r.FieldMatch.Ternary(value=encode_uint(src),
                                                          mask=encode_uint(mask))),
            p4r.FieldMatch(field_id=n.field("acl", "hdr.ethernet.etherType"),
                           range=p4r.FieldMatch.Range(low=encode_uint(lo), high=encode_uint(hi))),
        ],
        priority=priority,
        action=p4r.TableAction(action=action(n.id(act), *(params or (3,)))),
    )
    return p4r.Entity(table_entry=entry)


def test_insert_forwards_packets_modify_and_delete(t: Target) -> None:
    frame = eth(0x0A0000000002, 0x0A0000000001)
    t.client.write(insert(l2(t, 0x0A0000000002, port=2)))
    t.ports[1].inject(frame)
    assert t.ports[2].take() == frame
    t.client.write(modify(l2(t, 0x0A0000000002, port=3)))
    t.ports[1].inject(frame)
    assert t.ports[3].take() == frame
    t.client.write(delete(l2(t, 0x0A0000000002, port=None, act="NoAction")))
    assert t.client.read(l2(t, 0x0A0000000002)) == []


def test_duplicate_missing_and_malformed_entries(t: Target) -> None:
    t.client.write(insert(l2(t, 5)))
    errors = t.client.write_errors(
        insert(l2(t, 5)),                       # duplicate
        modify(l2(t, 6)),                       # missing
        delete(l2(t, 7)),                       # missing
        insert(l2(t, 1 << 48)),                 # 49 bits in a 48-bit field
        insert(l2(t, 8, port=1 << 9)),          # 10 bits in a 9-bit parameter
        insert(l2(t, 9, act="acl_drop", port=None)),  # action of another table
        insert(l2(t, 10)),                      # fine
    )
    assert [e.canonical_code for e in errors] == [
        rpc_code.ALREADY_EXISTS, rpc_code.NOT_FOUND, rpc_code.NOT_FOUND,
        rpc_code.INVALID_ARGUMENT, rpc_code.INVALID_ARGUMENT, rpc_code.INVALID_ARGUMENT,
        rpc_code.OK,
    ]
    assert "hdr.ethernet.dstAddr" in errors[3].message
    assert "port" in errors[4].message
    assert errors[6].message == ""
    macs = sorted(int.from_bytes(e.table_entry.match[0].exact.value, "big")
                  for e in t.client.read(p4r.Entity(table_entry=p4r.TableEntry(
                      table_id=t.names.id("l2")))))
    assert macs == [5, 10]


def test_priority_rules_and_match_validation(t: Target) -> None:
    ok = acl(t, 0x0A0000000000, 0xFF0000000000, 10)
    no_priority = acl(t, 0x0A0000000000, 0xFF0000000000, 0)
    bad_mask = acl(t, 0x0A0000000001, 0xFF0000000000, 11)
    full_range = acl(t, 0x0B0000000000, 0xFF0000000000, 12, 0, 0xFFFF)
    inverted = acl(t, 0x0C0000000000, 0xFF0000000000, 13, 9, 3)
    exact_with_priority = l2(t, 1, priority=5)
    errors = t.client.write_errors(insert(ok), insert(no_priority), insert(bad_mask),
                                   insert(full_range), insert(inverted),
                                   insert(exact_with_priority))
    assert [e.canonical_code for e in errors] == [rpc_code.OK] + [rpc_code.INVALID_ARGUMENT] * 5
    assert "priority" in errors[1].message and "mask" in errors[2].message


def test_ternary_priority_decides_the_packet(t: Target) -> None:
    t.client.write(insert(acl(t, 0x0A0000000000, 0xFF0000000000, 10, 0x800, 0x8FF,
                              "acl_forward", 3)),
                   insert(acl(t, 0x0A0000000001, 0xFFFFFFFFFFFF, 20, 0x800, 0x8FF,
                              "acl_forward", 4)))
    frame = ipv4(0x0A00000000FF, 0x0A0000000001, 0x01020304, 0x05060708)
    t.ports[1].inject(frame)
    assert t.ports[4].take() is not None


def test_default_entry_modify_and_reset(t: Target) -> None:
    n = t.names
    default = p4r.Entity(table_entry=p4r.TableEntry(table_id=n.id("l2"), is_default_action=True))
    (before,) = t.client.read(default)
    assert before.table_entry.action.action.action_id == n.id("NoAction")
    changed = p4r.Entity()
    changed.CopyFrom(default)
    changed.table_entry.action.action.CopyFrom(action(n.id("forward"), 4))
    t.client.write(modify(changed))
    assert t.client.read(default)[0].table_entry.action.action.params[0].value == b"\x04"
    frame = eth(0x99, 0x98)
    t.ports[1].inject(frame)
    assert t.ports[4].take() == frame
    errors = t.client.write_errors(insert(changed), delete(default))
    assert [e.canonical_code for e in errors] == [rpc_code.INVALID_ARGUMENT] * 2
    t.client.write(modify(default))  # no action: back to the program's default
    assert t.client.read(default) == [before]


def test_wildcard_reads(t: Target) -> None:
    n = t.names
    t.client.write(insert(l2(t, 1)), insert(l2(t, 2, act="to_cpu", port=None)),
                   insert(acl(t, 0x0A0000000000, 0xFF0000000000, 10)),
                   insert(acl(t, 0x0B0000000000, 0xFF0000000000, 20)))
    everything = t.client.read(p4r.Entity(table_entry=p4r.TableEntry()))
    assert len(everything) == 4
    by_action = t.client.read(p4r.Entity(table_entry=p4r.TableEntry(
        table_id=n.id("l2"), action=p4r.TableAction(action=p4r.Action(action_id=n.id("to_cpu"))))))
    assert len(by_action) == 1
    by_priority = t.client.read(p4r.Entity(table_entry=p4r.TableEntry(
        table_id=n.id("acl"), priority=20)))
    assert [e.table_entry.priority for e in by_priority] == [20]
    one = t.client.read(l2(t, 2, act="to_cpu", port=None))
    assert len(one) == 1
    # read-write symmetry: what we wrote (canonical) is what we read
    written = l2(t, 1)
    assert t.client.read(written)[0] == written


def test_direct_counter_and_meter(t: Target) -> None:
    n = t.names
    entity = acl(t, 0x0A0000000000, 0xFF0000000000, 10)
    entity.table_entry.counter_data.packet_count = 5
    entity.table_entry.meter_config.CopyFrom(p4r.MeterConfig(cir=10, cburst=10, pir=20,
                                                             pburst=20))
    t.client.write(insert(entity))
    t.ports[1].inject(ipv4(0x1, 0x0A0000000001, 1, 2))
    assert t.ports[3].take() is not None
    request = p4r.Entity(table_entry=p4r.TableEntry(table_id=n.id("acl"),
                                                    counter_data=p4r.CounterData(),
                                                    meter_config=p4r.MeterConfig()))
    (read,) = t.client.read(request)
    assert read.table_entry.counter_data.packet_count == 6
    assert read.table_entry.counter_data.byte_count > 0
    assert read.table_entry.meter_config.pir == 20
    direct = p4r.Entity(direct_counter_entry=p4r.DirectCounterEntry(
        table_entry=entity.table_entry, data=p4r.CounterData(byte_count=7, packet_count=1)))
    direct.direct_counter_entry.table_entry.ClearField("action")
    t.client.write(modify(direct))
    (counter,) = t.client.read(p4r.Entity(direct_counter_entry=p4r.DirectCounterEntry()))
    assert counter.direct_counter_entry.data.byte_count == 7
    errors = t.client.write_errors(insert(direct))
    assert errors[0].canonical_code == rpc_code.INVALID_ARGUMENT
    meter = p4r.Entity(direct_meter_entry=p4r.DirectMeterEntry(
        table_entry=direct.direct_counter_entry.table_entry,
        config=p4r.MeterConfig(cir=1, cburst=1, pir=2, pburst=2)))
    t.client.write(modify(meter))
    (m,) = t.client.read(p4r.Entity(direct_meter_entry=p4r.DirectMeterEntry()))
    assert m.direct_meter_entry.config.pir == 2
    no_counter = l2(t, 1)
    no_counter.table_entry.counter_data.packet_count = 1
    errors = t.client.write_errors(insert(no_counter))
    assert errors[0].canonical_code == rpc_code.INVALID_ARGUMENT


def test_full_table_is_resource_exhausted(t: Target) -> None:
    n = t.names
    size = n.index.table(n.id("acl")).size
    updates = [insert(acl(t, i, 0xFFFFFFFFFFFF, 1)) for i in range(size)]
    t.client.write(*updates)
    errors = t.client.write_errors(insert(acl(t, size, 0xFFFFFFFFFFFF, 1)))
    assert errors[0].canonical_code == rpc_code.RESOURCE_EXHAUSTED


@pytest.mark.parametrize("atomicity", [WA.ROLLBACK_ON_ERROR, WA.DATAPLANE_ATOMIC])
def test_atomic_batches_are_all_or_nothing(t: Target, atomicity: int) -> None:
    t.client.write(insert(l2(t, 1, port=1)), insert(l2(t, 2, port=1)))
    before = t.client.read(p4r.Entity(table_entry=p4r.TableEntry()))
    errors = t.client.write_errors(
        insert(l2(t, 3)), modify(l2(t, 1, port=4)), delete(l2(t, 2, port=None, act="NoAction")),
        insert(acl(t, 1, 0xFF, 5)),
        insert(l2(t, 1)),  # duplicate: the whole batch is undone
        atomicity=atomicity,
    )
    codes = [e.canonical_code for e in errors]
    assert codes[4] == rpc_code.ALREADY_EXISTS
    assert all(c == rpc_code.ABORTED for c in codes[:4])
    assert t.client.read(p4r.Entity(table_entry=p4r.TableEntry())) == before
    frame = eth(1, 9)
    t.ports[2].inject(frame)
    assert t.ports[1].take() == frame  # still the old action
    t.client.write(insert(l2(t, 3)), modify(l2(t, 1, port=4)), atomicity=atomicity)
    assert len(t.client.read(p4r.Entity(table_entry=p4r.TableEntry()))) == 3


def test_bad_requests_change_nothing_and_server_keeps_serving(t: Target) -> None:
    with pytest.raises(grpc.RpcError) as info:
        t.client.stub.Write(t.client.write_request([insert(l2(t, 1))], atomicity=7))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    errors = t.client.write_errors(p4r.Update(type=p4r.Update.INSERT, entity=p4r.Entity()),
                                   p4r.Update(entity=l2(t, 1)),
                                   insert(p4r.Entity(table_entry=p4r.TableEntry(table_id=7))))
    assert [e.canonical_code for e in errors] == [rpc_code.INVALID_ARGUMENT] * 3
    assert t.client.read(p4r.Entity(table_entry=p4r.TableEntry())) == []
    with pytest.raises(grpc.RpcError) as info:
        t.client.read(p4r.Entity())
    assert info.value.code() == grpc.StatusCode.UNKNOWN
    t.client.write(insert(l2(t, 1)))
    assert len(t.client.read(p4r.Entity(table_entry=p4r.TableEntry()))) == 1


def test_reads_by_key_follow_every_change(t: Target) -> None:
    """A read answers from a copy of the entry made at its first read: never a stale one."""
    key = l2(t, 7, port=1)
    t.client.write(insert(key))
    assert t.client.read(key) == [key]
    changed = l2(t, 7, port=4, controller_metadata=3, metadata=b"m")
    t.client.write(modify(changed))
    assert t.client.read(key) == [changed]
    undone = t.client.write_errors(modify(l2(t, 7, port=2)), insert(l2(t, 7)),
                                   atomicity=WA.ROLLBACK_ON_ERROR)
    assert [e.canonical_code for e in undone] == [rpc_code.ABORTED, rpc_code.ALREADY_EXISTS]
    assert t.client.read(key) == [changed]
    undone = t.client.write_errors(delete(key), insert(p4r.Entity(table_entry=p4r.TableEntry(
        table_id=7))), atomicity=WA.ROLLBACK_ON_ERROR)
    assert [e.canonical_code for e in undone] == [rpc_code.ABORTED, rpc_code.INVALID_ARGUMENT]
    assert t.client.read(p4r.Entity(table_entry=p4r.TableEntry())) == [changed]
    t.client.write(delete(key))
    assert t.client.read(key) == []
    t.client.write(insert(key))
    assert t.client.read(key) == [key]
    # counters are read from the engine each time, not from the copy
    entity = acl(t, 0x0A0000000000, 0xFF0000000000, 10)
    t.client.write(insert(entity))
    query = p4r.Entity()
    query.CopyFrom(entity)
    query.table_entry.ClearField("action")
    query.table_entry.counter_data.SetInParent()
    assert t.client.read(query)[0].table_entry.counter_data.packet_count == 0
    t.ports[1].inject(ipv4(0x1, 0x0A0000000001, 1, 2))
    assert t.ports[3].take() is not None
    (read,) = t.client.read(query)
    assert read.table_entry.counter_data.packet_count == 1
    read.table_entry.ClearField("counter_data")
    assert read == entity


def test_reads_by_key_reject_bad_keys_as_writes_do(t: Target) -> None:
    n = t.names
    good = acl(t, 0x0A0000000000, 0xFF0000000000, 10)
    t.client.write(insert(good))
    src, ether = n.field("acl", "hdr.ethernet.srcAddr"), n.field("acl", "hdr.ethernet.etherType")

    def bad(edit: str) -> p4r.Entity:
        entity = p4r.Entity()
        entity.CopyFrom(good)
        te = entity.table_entry
        ternary, range_ = te.match[0].ternary, te.match[1].range
        if edit == "twice":
            te.match.add().CopyFrom(te.match[0])
        elif edit == "unknown field":
            te.match.add(field_id=99).exact.value = b"\x01"
        elif edit == "wrong kind":
            te.match[1].exact.value = b"\x01"
        elif edit == "empty":
            ternary.value = b""
        elif edit == "too wide":
            ternary.mask = b"\x01" + b"\x00" * 6
        elif edit == "mask 0":
            ternary.value, ternary.mask = b"\x00", b"\x00"
        elif edit == "outside mask":
            ternary.value = b"\x0b\x00\x00\x00\x00\x01"
        elif edit == "full range":
            range_.low, range_.high = b"\x00", b"\xff\xff"
        elif edit == "inverted":
            range_.low, range_.high = b"\x09", b"\x03"
        elif edit == "no priority":
            te.priority = 0
        assert {m.field_id for m in te.match} >= {src, ether}
        return entity

    edits = ["twice", "unknown field", "wrong kind", "empty", "too wide", "mask 0",
             "outside mask", "full range", "inverted", "no priority"]
    queries = [bad(edit) for edit in edits]
    device = t.server.device
    found, read_errors = device.read(queries)
    write_errors = device.write([insert(q) for q in queries], WA.CONTINUE_ON_ERROR)
    assert found == []
    assert all(e is not None and e.code == rpc_code.INVALID_ARGUMENT for e in read_errors)
    assert [str(e) for e in read_errors] == [str(e) for e in write_errors]
    assert device.read([good]) == ([good], [None])


def test_read_answers_are_the_entries_as_written_byte_for_byte(t: Target) -> None:
    """Answers joined from cached serialized pieces (answers.py) are exactly the
    message built field by field, for every kind of match, action and entry field."""
    n = t.names
    route = n.id("routes"), n.field("routes", "hdr.ipv4.dstAddr")
    written = [l2(t, mac, port=mac % 7) for mac in range(1, 40)]
    written += [l2(t, 0xAA00 + i, controller_metadata=i, metadata=b"m" * i,
                   idle_timeout_ns=1_000_000_000 * i) for i in range(1, 4)]
    written += [l2(t, 0xBB00, act="drop", port=None)]
    written += [acl(t, 0x0A0000000000 + (i << 32), 0xFFFF00000000, 100 - i, 0x800, 0x800 + i)
                for i in range(20)]
    written += [p4r.Entity(table_entry=p4r.TableEntry(
        table_id=route[0], action=p4r.TableAction(action=action(n.id("forward"), 3)),
        match=[p4r.FieldMatch(field_id=route[1], lpm=p4r.FieldMatch.LPM(
            value=encode_uint(0x0A000000 + (i << 8)), prefix_len=24))])) for i in range(10)]
    profile = n.id("ecmp_selector")
    members = [p4r.Entity(action_profile_member=p4r.ActionProfileMember(
        action_profile_id=profile, member_id=m, action=action(n.id("forward"), m)))
        for m in (1, 2)]
    group = p4r.Entity(action_profile_group=p4r.ActionProfileGroup(
        action_profile_id=profile, group_id=9,
        members=[p4r.ActionProfileGroup.Member(member_id=m, weight=1) for m in (1, 2)]))
    indirect = []
    for dst, which in ((0x0A000001, "action_profile_member_id"),
                       (0x0A000002, "action_profile_group_id")):
        te = p4r.TableEntry(table_id=n.id("ecmp"), match=[p4r.FieldMatch(
            field_id=n.field("ecmp", "hdr.ipv4.dstAddr"),
            exact=p4r.FieldMatch.Exact(value=encode_uint(dst)))])
        setattr(te.action, which, 1 if which.endswith("member_id") else 9)
        indirect.append(p4r.Entity(table_entry=te))
    t.client.write(*[insert(e) for e in [*written, *members, group]])
    t.client.write(*[insert(e) for e in indirect])
    # Read back twice: the first answers are joined from pieces, the second from the copy.
    for _ in range(2):
        found = t.client.read(p4r.Entity(table_entry=p4r.TableEntry()))
        assert sorted(e.SerializeToString() for e in found) == \
            sorted(e.SerializeToString() for e in [*written, *indirect])
    store = t.server.device.store
    assert store is not None
    tables = store.tables
    for table_id, entries in tables.entries.items():
        info = tables._index.tables[table_id]
        for key, entry in entries.items():
            by_fields = p4r.Entity()
            tables.fill(info, key, entry, by_fields.table_entry)
            assert entry.read_back == by_fields.table_entry.SerializeToString()
