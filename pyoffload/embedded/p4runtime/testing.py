"""An embedded target and a P4Runtime controller in one process, for tests.

Everything is real: a Switch with MemoryPorts, the P4Runtime gRPC server on a
free 127.0.0.1 port, a grpc channel and the official stub. Names are looked up
in the program's P4Info (any unique dotted suffix), never hand-written ids.
Used by pyoffload's own tests and by anyone testing a program on the target.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import grpc
from finsy.proto import p4i, p4r, p4r_grpc, rpc_status
from google.protobuf import text_format

from ..ports import MemoryPort
from ..switch import Switch
from .codec import encode_uint
from .p4info import P4InfoIndex
from .server import P4RuntimeServer
from .service import DEFAULT_STREAM_LIMITS, StreamLimits

DEVICE_ID = 1
CPU_PORT = 64
DATA_PORTS = (1, 2, 3, 4)
SPFC = p4r.SetForwardingPipelineConfigRequest


def load_program(directory: Path, name: str) -> tuple[p4i.P4Info, bytes]:
    """The P4Info (`NAME.p4info.txtpb`) and BMv2 JSON (`NAME.json`) of a compiled program.

    Raises FileNotFoundError when either is missing.
    """
    info_path = directory / f"{name}.p4info.txtpb"
    json_path = directory / f"{name}.json"
    return text_format.Parse(info_path.read_text(), p4i.P4Info()), json_path.read_bytes()


def uint128(value: int) -> p4r.Uint128:
    return p4r.Uint128(high=value >> 64, low=value & (2**64 - 1))


class Names:
    """P4Info ids by short name (any unique dotted suffix), from the index."""

    def __init__(self, p4info: p4i.P4Info) -> None:
        self.index = P4InfoIndex(p4info)

    def id(self, name: str) -> int:
        matches = [i for full, i in self.index.names.items()
                   if full == name or full.endswith("." + name)]
        assert len(matches) == 1, f"{name!r} matches {len(matches)} P4Info objects"
        return matches[0]

    def field(self, table: str, name: str) -> int:
        info = self.index.table(self.id(table))
        return next(f.id for f in info.match_fields if f.name == name)


class Client:
    """A controller: one channel, one stream, arbitration, convenience RPCs."""

    def __init__(self, address: str, election_id: int | None = 1, *,
                 credentials: grpc.ChannelCredentials | None = None,
                 own_connection: bool = False) -> None:
        options: list[tuple[str, int | str]] = [("grpc.max_metadata_size", 1 << 20)]
        if own_connection:  # else channels of one process to one address share a connection
            options.append(("grpc.use_local_subchannel_pool", 1))
        if credentials is None:
            self.channel = grpc.insecure_channel(address, options=options)
        else:
            self.channel = grpc.secure_channel(address, credentials, options=options)
        grpc.channel_ready_future(self.channel).result(timeout=10)
        self.stub = p4r_grpc.P4RuntimeStub(self.channel)
        self.election_id = election_id
        self._requests: queue.SimpleQueue[p4r.StreamMessageRequest | None] = queue.SimpleQueue()
        self.responses: queue.SimpleQueue[p4r.StreamMessageResponse | grpc.RpcError] = (
            queue.SimpleQueue())
        self._stream = self.stub.StreamChannel(iter(self._requests.get, None))
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        try:
            for response in self._stream:
                self.responses.put(response)
        except grpc.RpcError as exc:
            self.responses.put(exc)

    def send(self, request: p4r.StreamMessageRequest) -> None:
        self._requests.put(request)

    def arbitrate(self, election_id: int | None = None, role: str = "",
                  device_id: int = DEVICE_ID) -> p4r.MasterArbitrationUpdate:
        if election_id is not None:
            self.election_id = election_id
        update = p4r.MasterArbitrationUpdate(device_id=device_id)
        if self.election_id is not None:
            update.election_id.SetInParent()
            update.election_id.CopyFrom(uint128(self.election_id))
        if role:
            update.role.name = role
        self.send(p4r.StreamMessageRequest(arbitration=update))
        return self.next("arbitration").arbitration

    def next(self, kind: str, timeout: float = 3.0) -> p4r.StreamMessageResponse:
        """The next stream message, which must be of `kind`."""
        item = self.responses.get(timeout=timeout)
        if isinstance(item, grpc.RpcError):
            raise item
        assert item.WhichOneof("update") == kind, item
        return item

    def nothing(self, timeout: float = 0.2) -> bool:
        """True when no stream message arrives within `timeout`."""
        try:
            item = self.responses.get(timeout=timeout)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected stream message {item}")

    def close(self) -> None:
        self._requests.put(None)
        self._stream.cancel()  # type: ignore[no-untyped-call]
        self.channel.close()

    # unary RPCs -------------------------------------------------------------
    def set_pipeline(self, p4info: p4i.P4Info | None, device_config: bytes | None,
                     action: int = SPFC.VERIFY_AND_COMMIT, cookie: int | None = None) -> None:
        request = SPFC(device_id=DEVICE_ID)
        request.action = action  # type: ignore[assignment]
        if self.election_id is not None:
            request.election_id.CopyFrom(uint128(self.election_id))
        if p4info is not None or device_config is not None:
            config = request.config
            if p4info is not None:
                config.p4info.CopyFrom(p4info)
            if device_config is not None:
                config.p4_device_config = device_config
            if cookie is not None:
                config.cookie.cookie = cookie
        self.stub.SetForwardingPipelineConfig(request)

    def write_request(self, updates: Sequence[p4r.Update], atomicity: int = 0
                      ) -> p4r.WriteRequest:
        request = p4r.WriteRequest(device_id=DEVICE_ID, updates=updates)
        request.atomicity = atomicity  # type: ignore[assignment]
        if self.election_id is not None:
            request.election_id.CopyFrom(uint128(self.election_id))
        return request

    def write(self, *updates: p4r.Update, atomicity: int = 0) -> None:
        self.stub.Write(self.write_request(updates, atomicity))

    def write_errors(self, *updates: p4r.Update, atomicity: int = 0) -> list[p4r.Error]:
        """Per-update errors of a batch that must fail with UNKNOWN and details."""
        try:
            self.write(*updates, atomicity=atomicity)
        except grpc.RpcError as exc:
            return batch_details(exc)
        raise AssertionError("the write succeeded")

    def read(self, *entities: p4r.Entity) -> list[p4r.Entity]:
        request = p4r.ReadRequest(device_id=DEVICE_ID, entities=entities)
        return [e for response in self.stub.Read(request) for e in response.entities]



def batch_details(error: grpc.RpcError) -> list[p4r.Error]:
    """The p4.v1.Error of every element of a failed batch."""
    call = cast(grpc.Call, error)
    assert call.code() == grpc.StatusCode.UNKNOWN, error
    details = b""
    for item in call.trailing_metadata() or ():
        key, value = item
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            details = value
    status = rpc_status.Status.FromString(details)
    out = []
    for detail in status.details:
        err = p4r.Error()
        assert detail.Unpack(err)
        out.append(err)
    return out


def insert(entity: p4r.Entity) -> p4r.Update:
    return p4r.Update(type=p4r.Update.INSERT, entity=entity)


def modify(entity: p4r.Entity) -> p4r.Update:
    return p4r.Update(type=p4r.Update.MODIFY, entity=entity)


def delete(entity: p4r.Entity) -> p4r.Update:
    return p4r.Update(type=p4r.Update.DELETE, entity=entity)


def action(action_id: int, *params: int) -> p4r.Action:
    return p4r.Action(action_id=action_id, params=[
        p4r.Action.Param(param_id=i + 1, value=encode_uint(v)) for i, v in enumerate(params)])


@dataclass
class Target:
    switch: Switch
    server: P4RuntimeServer
    ports: dict[int, MemoryPort]
    client: Client
    names: Names
    p4info: p4i.P4Info
    device_config: bytes

    def client_for(self, election_id: int | None, *, own_connection: bool = False) -> Client:
        return Client(self.server.address, election_id, own_connection=own_connection)


@contextmanager
def running_target(p4info: p4i.P4Info, device_config: bytes, *, commit: bool = True,
                   idle_scan_ns: int = 5_000_000, address: str = "127.0.0.1:0",
                   stream_limits: StreamLimits = DEFAULT_STREAM_LIMITS) -> Iterator[Target]:
    """A switch + server (+ the program pushed, if `commit`) and an arbitrated primary client."""
    switch = Switch(cpu_port=CPU_PORT)
    ports = {n: MemoryPort(f"p{n}") for n in DATA_PORTS}
    for number, port in ports.items():
        switch.add_port(number, port)
    server = P4RuntimeServer(switch, device_id=DEVICE_ID, address=address,
                             idle_scan_ns=idle_scan_ns, stream_limits=stream_limits)
    switch.start()
    server.start()
    client = Client(server.address)
    try:
        arbitration = client.arbitrate()
        assert arbitration.status.code == 0
        if commit:
            client.set_pipeline(p4info, device_config)
        yield Target(switch, server, ports, client, Names(p4info), p4info, device_config)
    finally:
        client.close()
        server.stop(grace=0)
        switch.stop()


def eth(dst: int, src: int, ethertype: int = 0x88B5, payload: bytes = b"\x00" * 46) -> bytes:
    return dst.to_bytes(6, "big") + src.to_bytes(6, "big") + ethertype.to_bytes(2, "big") + payload


def ipv4(dst_mac: int, src_mac: int, src_ip: int, dst_ip: int) -> bytes:
    header = bytes([0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0]) + src_ip.to_bytes(4, "big") \
        + dst_ip.to_bytes(4, "big")
    return eth(dst_mac, src_mac, 0x0800, header + b"\x00" * 26)
