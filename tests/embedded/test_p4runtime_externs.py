"""Action profiles, counters, meters, registers, PRE, digests and idle timeouts."""

from __future__ import annotations

import time

from finsy.proto import p4d, p4r, rpc_code

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

APM, APG = p4r.ActionProfileMember, p4r.ActionProfileGroup




def member(t: Target, member_id: int, port: int | None = None) -> p4r.Entity:
    n = t.names
    msg = APM(action_profile_id=n.id("ecmp_selector"), member_id=member_id)
    if port is not None:
        msg.action.CopyFrom(action(n.id("forward"), port))
    return p4r.Entity(action_profile_member=msg)


def group(t: Target, group_id: int, *members: int, max_size: int = 0) -> p4r.Entity:
    return p4r.Entity(action_profile_group=APG(
        action_profile_id=t.names.id("ecmp_selector"), group_id=group_id, max_size=max_size,
        members=[APG.Member(member_id=m, weight=1) for m in members]))


def ecmp(t: Target, dst: int, *, member_id: int = 0, group_id: int = 0) -> p4r.Entity:
    n = t.names
    entry = p4r.TableEntry(table_id=n.id("ecmp"), match=[p4r.FieldMatch(
        field_id=n.field("ecmp", "hdr.ipv4.dstAddr"),
        exact=p4r.FieldMatch.Exact(value=encode_uint(dst)))])
    if member_id:
        entry.action.action_profile_member_id = member_id
    else:
        entry.action.action_profile_group_id = group_id
    return p4r.Entity(table_entry=entry)


def test_members_groups_and_indirect_entries(t: Target) -> None:
    t.client.write(insert(member(t, 1, 2)), insert(member(t, 2, 3)))
    t.client.write(insert(group(t, 10, 1, 2)))
    t.client.write(insert(ecmp(t, 0x0A000001, group_id=10)), insert(ecmp(t, 0x0A000002,
                                                                      member_id=1)))
    flows = 16
    for src in range(flows):
        t.ports[1].inject(ipv4(0x1, 0x2, 0x0B000000 + src, 0x0A000001))
    seen = {2: 0, 3: 0}
    deadline = time.monotonic() + 5
    while sum(seen.values()) < flows and time.monotonic() < deadline:
        for port in seen:
            if t.ports[port].take(timeout=0.01) is not None:
                seen[port] += 1
    assert sum(seen.values()) == flows
    assert seen[2] and seen[3]  # the selector spreads flows over both members
    t.ports[1].inject(ipv4(0x1, 0x2, 0x0B000000, 0x0A000002))
    assert t.ports[2].take() is not None
    errors = t.client.write_errors(delete(member(t, 1)), delete(group(t, 10)),
                                   insert(group(t, 11, 9)), insert(member(t, 1, 2)),
                                   insert(ecmp(t, 0x0A000003, member_id=99)))
    assert [e.canonical_code for e in errors] == [
        rpc_code.FAILED_PRECONDITION, rpc_code.FAILED_PRECONDITION, rpc_code.NOT_FOUND,
        rpc_code.ALREADY_EXISTS, rpc_code.NOT_FOUND]
    t.client.write(modify(member(t, 2, 4)), modify(group(t, 10, 2)))
    groups = t.client.read(p4r.Entity(action_profile_group=APG()))
    assert [m.member_id for m in groups[0].action_profile_group.members] == [2]
    members = t.client.read(p4r.Entity(action_profile_member=APM()))
    assert sorted(m.action_profile_member.member_id for m in members) == [1, 2]
    t.client.write(delete(ecmp(t, 0x0A000001, group_id=10)), delete(group(t, 10)))
    t.client.write(delete(ecmp(t, 0x0A000002, member_id=1)), delete(member(t, 1)))
    assert len(t.client.read(p4r.Entity(action_profile_member=APM()))) == 1


def test_indexed_counter_meter_and_register(t: Target) -> None:
    n = t.names
    counter_id, meter_id, register_id = n.id("port_counter"), n.id("port_meter"), \
        n.id("last_port")
    t.ports[3].inject(eth(0x1, 0x2))
    t.ports[3].inject(eth(0x1, 0x2))
    deadline = time.monotonic() + 5
    while True:  # the port thread processes injected frames on its own time
        (cell,) = t.client.read(p4r.Entity(counter_entry=p4r.CounterEntry(
            counter_id=counter_id, index=p4r.Index(index=3))))
        if cell.counter_entry.data.packet_count == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert cell.counter_entry.data.packet_count == 2
    assert cell.counter_entry.data.byte_count == 2 * len(eth(0x1, 0x2))
    t.client.write(modify(p4r.Entity(counter_entry=p4r.CounterEntry(
        counter_id=counter_id, index=p4r.Index(index=3), data=p4r.CounterData()))))
    everything = t.client.read(p4r.Entity(counter_entry=p4r.CounterEntry()))
    assert len(everything) == n.index.counter(counter_id).size
    assert all(c.counter_entry.data.packet_count == 0 for c in everything)
    (reg,) = t.client.read(p4r.Entity(register_entry=p4r.RegisterEntry(
        register_id=register_id, index=p4r.Index(index=0))))
    assert reg.register_entry.data.bitstring == b"\x03"
    t.client.write(modify(p4r.Entity(register_entry=p4r.RegisterEntry(
        register_id=register_id, index=p4r.Index(index=5),
        data=p4d.P4Data(bitstring=b"\x12\x34")))))
    (reg,) = t.client.read(p4r.Entity(register_entry=p4r.RegisterEntry(
        register_id=register_id, index=p4r.Index(index=5))))
    assert reg.register_entry.data.bitstring == b"\x12\x34"
    config = p4r.MeterConfig(cir=100, cburst=10, pir=200, pburst=20)
    t.client.write(modify(p4r.Entity(meter_entry=p4r.MeterEntry(
        meter_id=meter_id, index=p4r.Index(index=1), config=config))))
    (m,) = t.client.read(p4r.Entity(meter_entry=p4r.MeterEntry(
        meter_id=meter_id, index=p4r.Index(index=1))))
    assert m.meter_entry.config == config
    errors = t.client.write_errors(
        insert(p4r.Entity(counter_entry=p4r.CounterEntry(counter_id=counter_id))),
        modify(p4r.Entity(register_entry=p4r.RegisterEntry(
            register_id=register_id, index=p4r.Index(index=10_000),
            data=p4d.P4Data(bitstring=b"\x01")))),
        modify(p4r.Entity(register_entry=p4r.RegisterEntry(
            register_id=register_id, index=p4r.Index(index=1),
            data=p4d.P4Data(bitstring=b"\x01\x00\x00\x00\x00")))),
        modify(p4r.Entity(meter_entry=p4r.MeterEntry(
            meter_id=meter_id, index=p4r.Index(index=1),
            config=p4r.MeterConfig(cir=10, cburst=1, pir=5, pburst=1)))),
    )
    assert [e.canonical_code for e in errors] == [
        rpc_code.INVALID_ARGUMENT, rpc_code.OUT_OF_RANGE, rpc_code.INVALID_ARGUMENT,
        rpc_code.INVALID_ARGUMENT]


def pre(entry: p4r.MulticastGroupEntry | p4r.CloneSessionEntry) -> p4r.Entity:
    entity = p4r.Entity()
    if isinstance(entry, p4r.MulticastGroupEntry):
        entity.packet_replication_engine_entry.multicast_group_entry.CopyFrom(entry)
    else:
        entity.packet_replication_engine_entry.clone_session_entry.CopyFrom(entry)
    return entity


def test_multicast_and_clone(t: Target) -> None:
    n = t.names
    t.client.write(insert(pre(p4r.MulticastGroupEntry(multicast_group_id=1, replicas=[
        p4r.Replica(port=b"\x02", instance=1), p4r.Replica(port=b"\x03", instance=1)]))))
    flood = p4r.TableEntry(table_id=n.id("l2"), match=[p4r.FieldMatch(
        field_id=n.field("l2", "hdr.ethernet.dstAddr"),
        exact=p4r.FieldMatch.Exact(value=encode_uint(0xFFFFFFFFFFFF)))],
        action=p4r.TableAction(action=action(n.id("flood"))))
    t.client.write(insert(p4r.Entity(table_entry=flood)))
    frame = eth(0xFFFFFFFFFFFF, 0x1)
    t.ports[1].inject(frame)
    assert t.ports[2].take() == frame and t.ports[3].take() == frame
    t.client.write(insert(pre(p4r.CloneSessionEntry(session_id=5, replicas=[
        p4r.Replica(port=b"\x04", instance=0)]))))
    mirror = p4r.TableEntry(table_id=n.id("acl"), priority=1, match=[p4r.FieldMatch(
        field_id=n.field("acl", "hdr.ethernet.srcAddr"),
        ternary=p4r.FieldMatch.Ternary(value=b"\x07", mask=b"\xff"))],
        action=p4r.TableAction(action=action(n.id("mirror"), 5)))
    t.client.write(insert(p4r.Entity(table_entry=mirror)))
    t.ports[1].inject(eth(0x9, 0x7))
    assert t.ports[4].take() is not None
    groups = t.client.read(pre(p4r.MulticastGroupEntry()))
    assert len(groups[0].packet_replication_engine_entry.multicast_group_entry.replicas) == 2
    errors = t.client.write_errors(
        insert(pre(p4r.MulticastGroupEntry(multicast_group_id=1))),
        modify(pre(p4r.MulticastGroupEntry(multicast_group_id=2))),
        insert(pre(p4r.MulticastGroupEntry(multicast_group_id=0))),
        insert(pre(p4r.MulticastGroupEntry(multicast_group_id=3, replicas=[
            p4r.Replica(port=b"\x02", instance=1), p4r.Replica(port=b"\x02", instance=1)]))),
        delete(pre(p4r.CloneSessionEntry(session_id=9))),
    )
    assert [e.canonical_code for e in errors] == [
        rpc_code.ALREADY_EXISTS, rpc_code.NOT_FOUND, rpc_code.INVALID_ARGUMENT,
        rpc_code.INVALID_ARGUMENT, rpc_code.NOT_FOUND]
    t.client.write(delete(pre(p4r.MulticastGroupEntry(multicast_group_id=1))))
    assert t.client.read(pre(p4r.MulticastGroupEntry())) == []


def test_digest_lists_are_deduplicated_until_acknowledged(t: Target) -> None:
    digest_id = t.names.id("learn_t")
    t.switch.receive(1, eth(0x1, 0xAA))  # learning is off: no digest
    t.client.write(insert(p4r.Entity(digest_entry=p4r.DigestEntry(
        digest_id=digest_id, config=p4r.DigestEntry.Config(
            max_timeout_ns=0, max_list_size=1, ack_timeout_ns=10**10)))))
    t.ports[2].inject(eth(0x1, 0xAB))
    digest = t.client.next("digest").digest
    assert digest.digest_id == digest_id
    (data,) = digest.data
    assert [m.bitstring for m in data.struct.members] == [b"\xab", b"\x02"]
    t.ports[2].inject(eth(0x1, 0xAB))  # duplicate of an unacknowledged list
    assert t.client.nothing()
    t.client.send(p4r.StreamMessageRequest(digest_ack=p4r.DigestListAck(
        digest_id=digest_id, list_id=digest.list_id)))
    # An ack for an unknown digest is answered with a stream error; as the
    # stream is processed in order, the real ack has been handled by then.
    t.client.send(p4r.StreamMessageRequest(digest_ack=p4r.DigestListAck(digest_id=1)))
    assert t.client.next("error").error.canonical_code == rpc_code.INVALID_ARGUMENT
    t.ports[2].inject(eth(0x1, 0xAB))
    assert t.client.next("digest").digest.list_id == digest.list_id + 1
    (config,) = t.client.read(p4r.Entity(digest_entry=p4r.DigestEntry()))
    assert config.digest_entry.config.max_list_size == 1


def test_idle_timeout_notification(t: Target) -> None:
    n = t.names
    entry = p4r.TableEntry(table_id=n.id("l2"), idle_timeout_ns=20_000_000, match=[
        p4r.FieldMatch(field_id=n.field("l2", "hdr.ethernet.dstAddr"),
                       exact=p4r.FieldMatch.Exact(value=b"\x42"))],
        action=p4r.TableAction(action=action(n.id("forward"), 2)))
    t.client.write(insert(p4r.Entity(table_entry=entry)))
    note = t.client.next("idle_timeout_notification").idle_timeout_notification
    (expired,) = note.table_entry
    assert expired.match == entry.match and expired.idle_timeout_ns == 20_000_000
    request = p4r.Entity(table_entry=p4r.TableEntry(
        table_id=n.id("l2"), time_since_last_hit=p4r.TableEntry.IdleTimeout()))
    (read,) = t.client.read(request)
    assert read.table_entry.time_since_last_hit.elapsed_ns >= 0
    no_idle = p4r.TableEntry()
    no_idle.CopyFrom(entry)
    no_idle.table_id = n.id("routes")
    no_idle.ClearField("match")
    errors = t.client.write_errors(insert(p4r.Entity(table_entry=no_idle)))
    assert errors[0].canonical_code == rpc_code.INVALID_ARGUMENT
