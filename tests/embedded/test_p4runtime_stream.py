"""StreamChannel over real gRPC: arbitration, packet-in/out, stream errors."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import grpc
import pytest
from finsy.proto import p4r, rpc_code

from pyoffload.embedded.p4runtime import service as service_module
from pyoffload.embedded.p4runtime.codec import encode_uint
from pyoffload.embedded.p4runtime.testing import (
    CPU_PORT,
    Target,
    action,
    eth,
    insert,
)


def to_cpu_entry(t: Target, mac: int) -> p4r.Entity:
    n = t.names
    return p4r.Entity(table_entry=p4r.TableEntry(
        table_id=n.id("l2"),
        match=[p4r.FieldMatch(field_id=n.field("l2", "hdr.ethernet.dstAddr"),
                              exact=p4r.FieldMatch.Exact(value=encode_uint(mac)))],
        action=p4r.TableAction(action=action(n.id("to_cpu")))))


def test_packet_in_carries_the_controller_header(t: Target) -> None:
    t.client.write(insert(to_cpu_entry(t, 0x0C)))
    frame = eth(0x0C, 0x0D)
    t.ports[3].inject(frame)
    packet = t.client.next("packet").packet
    assert packet.payload == frame
    header = t.names.index.controller_headers["packet_in"]
    ids = {f.name: f.id for f in header.fields}
    values = {m.metadata_id: m.value for m in packet.metadata}
    assert values[ids["ingress_port"]] == b"\x03"


def test_packet_out_goes_to_the_requested_port(t: Target) -> None:
    header = t.names.index.controller_headers["packet_out"]
    ids = {f.name: f.id for f in header.fields}
    frame = eth(0x55, 0x66)
    t.client.send(p4r.StreamMessageRequest(packet=p4r.PacketOut(payload=frame, metadata=[
        p4r.PacketMetadata(metadata_id=ids["egress_port"], value=b"\x04"),
        p4r.PacketMetadata(metadata_id=ids["_pad"], value=b"\x00")])))
    assert t.ports[4].take() == frame
    assert t.switch.stats.packet_out == 1


def test_bad_packet_out_gets_a_stream_error(t: Target) -> None:
    t.client.send(p4r.StreamMessageRequest(packet=p4r.PacketOut(payload=b"x", metadata=[
        p4r.PacketMetadata(metadata_id=77, value=b"\x01")])))
    error = t.client.next("error").error
    assert error.canonical_code == rpc_code.INVALID_ARGUMENT
    assert error.packet_out.packet_out.payload == b"x"
    assert t.switch.stats.packet_out == 0


def test_backup_cannot_write_and_takes_over(t: Target) -> None:
    backup = t.client_for(election_id=None)
    try:
        assert backup.arbitrate(0).status.code == rpc_code.ALREADY_EXISTS
        with pytest.raises(grpc.RpcError) as info:
            backup.write(insert(to_cpu_entry(t, 1)))
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # backups get no packet-ins
        t.client.write(insert(to_cpu_entry(t, 2)))
        t.ports[1].inject(eth(2, 1))
        t.client.next("packet")
        assert backup.nothing()
        # the backup raises its election id above the primary's: it takes over
        update = backup.arbitrate(5)
        assert update.status.code == rpc_code.OK and update.election_id.low == 5
        demoted = t.client.next("arbitration").arbitration
        assert demoted.status.code == rpc_code.ALREADY_EXISTS
        backup.write(insert(to_cpu_entry(t, 3)))
        with pytest.raises(grpc.RpcError) as info:
            t.client.write(insert(to_cpu_entry(t, 4)))
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        backup.close()
    # the primary went away: the old primary hears there is none
    assert t.client.next("arbitration").arbitration.status.code == rpc_code.NOT_FOUND


def test_arbitration_errors_end_the_stream(t: Target) -> None:
    other = t.client_for(election_id=1)  # same id as the live primary
    try:
        with pytest.raises(grpc.RpcError) as info:
            other.arbitrate()
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        other.close()
    wrong_device = t.client_for(election_id=9)
    try:
        with pytest.raises(grpc.RpcError) as info:
            wrong_device.arbitrate(device_id=42)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        wrong_device.close()
    # the server is still serving the primary
    t.client.write(insert(to_cpu_entry(t, 9)))


def test_cpu_port_constant_matches_the_program(t: Target) -> None:
    assert t.switch.cpu_port == CPU_PORT


class _BlockedWrites:
    """A stream's call whose client reads nothing: the first write never completes."""

    def __init__(self) -> None:
        self.written: list[p4r.StreamMessageResponse] = []
        self.unblock = asyncio.Event()

    async def write(self, message: p4r.StreamMessageResponse) -> None:
        self.written.append(message)
        await self.unblock.wait()


def _arbitration(election: int) -> p4r.StreamMessageResponse:
    update = p4r.MasterArbitrationUpdate(device_id=1, election_id=p4r.Uint128(low=election))
    return p4r.StreamMessageResponse(arbitration=update)


def test_a_stream_that_reads_nothing_queues_one_arbitration_update() -> None:
    """Arbitration updates are never dropped, so a stream that does not read would
    queue every change of primary (1,000 streams each outranking the one before: half
    a million updates); the newest one not yet written replaces the one before, in
    its place, and packet-ins keep their order around it."""

    async def scenario() -> None:
        call = _BlockedWrites()
        loop = asyncio.get_running_loop()
        outbox = service_module._Outbox(loop, cast(Any, call), service_module._Notifier(loop))
        outbox.send(_arbitration(1))
        await asyncio.sleep(0)  # the writer takes the first and waits on the client
        packet = p4r.StreamMessageResponse(packet=p4r.PacketIn(payload=b"x"))
        for election in range(2, 1002):
            outbox.send(_arbitration(election))
            if election == 500:
                outbox.send(packet)
        assert len(outbox._items) == 2  # one arbitration update, one packet-in
        call.unblock.set()
        await outbox.flushed()
        elections = [m.arbitration.election_id.low for m in call.written
                     if m.HasField("arbitration")]
        assert elections == [1, 1001]
        assert [m.WhichOneof("update") for m in call.written] == \
            ["arbitration", "arbitration", "packet"]
        outbox.send(_arbitration(1002))  # a later one is written, not lost
        await outbox.flushed()
        assert call.written[-1].arbitration.election_id.low == 1002

    asyncio.run(scenario())


class _CountedWrites:
    """Calls whose writes take a moment; how many were in flight at once."""

    in_flight = 0
    most = 0

    def __init__(self, stuck: bool = False) -> None:
        self.stuck = stuck
        self.written: list[p4r.StreamMessageResponse] = []

    async def write(self, message: p4r.StreamMessageResponse) -> None:
        cls = _CountedWrites
        cls.in_flight += 1
        cls.most = max(cls.most, cls.in_flight)
        try:
            await asyncio.sleep(3600 if self.stuck else 0.001)
            self.written.append(message)
        finally:
            cls.in_flight -= 1


def test_a_change_of_primary_is_written_to_streams_a_batch_at_a_time() -> None:
    """A change of primary goes to every stream at once; their writes start
    ``NOTIFY_BATCH`` at a time (1,000 at once made the heap's high-water mark), a stream
    whose client reads nothing holds the others back no longer than
    ``NOTIFY_BATCH_WAIT_S``, and the answer to a stream's own arbitration does not wait."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        notifier = service_module._Notifier(loop)
        stuck = [_CountedWrites(stuck=True) for _ in range(service_module.NOTIFY_BATCH)]
        calls = stuck + [_CountedWrites() for _ in range(300)]
        boxes = [service_module._Outbox(loop, cast(Any, c), notifier) for c in calls]
        for box in boxes:
            box.notify(_arbitration(7))
        asker = _CountedWrites()
        own = service_module._Outbox(loop, cast(Any, asker), notifier)
        own.send(_arbitration(8))  # its own answer: written at once
        await asyncio.sleep(0.01)
        assert [m.arbitration.election_id.low for m in asker.written] == [8]


        async def all_written() -> None:
            while any(not c.written for c in calls[len(stuck):]):
                await asyncio.sleep(0.005)

        await asyncio.wait_for(all_written(), 10)  # the stuck ones did not hold them back
        # in flight at most: the stuck batch, one batch, the asker's answer
        assert _CountedWrites.most <= 2 * service_module.NOTIFY_BATCH + 1
        for box in boxes:
            box.close()

    asyncio.run(scenario())
