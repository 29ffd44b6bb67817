"""The public Unix socket of the P4Runtime server, in front of grpc.

grpcio names every client of a Unix socket `unix:` (a client socket has no
address), so the server could not tell two local connections apart: not to
bind a Write to the connection of the primary's stream, nor to count streams
per peer. So the target listens on the public path itself, and relays each
accepted connection to grpc's own socket (in a directory only the target's
user can enter) from a client socket bound to an abstract address of its own,
named after the connection and the peer's credentials (`SO_PEERCRED`):
grpc then sees `unix-abstract:p4rt-TOKEN-cN-uidU-pidP`, one peer per
connection. Bytes are relayed unchanged (HTTP/2 end to end) by two coroutines
per connection on the server's event loop.

The agent's guest channels use it too, for its limit on connections: grpc takes
every connection it is offered, so one guest opening thousands of idle ones could
use up the process's file descriptors and starve every other VNIC's channel.
Beyond ``max_connections`` a connection is closed as soon as it is accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import time
import uuid
from pathlib import Path

_log = logging.getLogger(__name__)
_CRED = struct.Struct("3i")
CHUNK = 256 * 1024
SAY_REFUSED_EVERY_S = 60.0
"""Connections refused over the limit are said at most this often (with a count)."""


class UnixFront:
    """Accepts on `public`, relays every connection to grpc's socket `internal`
    (``what``: what the log calls the connections; ``prefix``: their peers' names)."""

    def __init__(self, public: Path, internal: Path, *, what: str = "P4Runtime",
                 prefix: str = "p4rt", max_connections: int | None = None) -> None:
        self.public = public
        self.internal = internal
        self.what = what
        self.prefix = prefix
        self.max_connections = max_connections
        self.refused = 0
        """Connections closed at once, over ``max_connections``."""
        self._unsaid = 0
        self._said_at = -SAY_REFUSED_EVERY_S
        self._token = uuid.uuid4().hex[:12]
        self._count = 0
        self._listener: socket.socket | None = None
        self._acceptor: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Task[None]] = set()

    def bind(self, mode: int, uid: int | None, gid: int | None) -> None:
        """Bind the public socket (under umask 0177), then set its owner and mode."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            with contextlib.suppress(FileNotFoundError):
                self.public.unlink()  # a stale socket: the caller checked nobody listens
            listener.bind(str(self.public))
        except OSError:
            listener.close()
            raise
        finally:
            os.umask(old_umask)
        try:
            os.chown(self.public, -1 if uid is None else uid, -1 if gid is None else gid)
            os.chmod(self.public, mode)
            listener.listen(128)
        except OSError:
            listener.close()
            self.public.unlink(missing_ok=True)
            raise
        listener.setblocking(False)
        self._listener = listener

    def start(self) -> None:
        """Start accepting (on the running event loop)."""
        self._acceptor = asyncio.get_running_loop().create_task(self._accept())

    async def close(self) -> None:
        if self._acceptor is not None:
            self._acceptor.cancel()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
            self.public.unlink(missing_ok=True)

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._listener is not None
        while True:
            try:
                client, _ = await loop.sock_accept(self._listener)
            except OSError as exc:  # out of file descriptors...: keep serving the others
                _log.warning("accepting a %s connection failed: %s", self.what, exc)
                await asyncio.sleep(0.1)
                continue
            if self.max_connections is not None and \
                    len(self._connections) >= self.max_connections:
                client.close()
                self._refuse()
                continue
            task = loop.create_task(self._relay(client))
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)

    def _refuse(self) -> None:
        self.refused += 1
        self._unsaid += 1
        now = time.monotonic()
        if now - self._said_at >= SAY_REFUSED_EVERY_S:
            _log.warning("%s: %d connection(s) closed at once: %d are open, the limit "
                         "(said at most once a minute)", self.what, self._unsaid,
                         len(self._connections))
            self._said_at, self._unsaid = now, 0

    async def _relay(self, client: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            pid, uid, _ = _CRED.unpack(
                client.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size))
            self._count += 1
            upstream.bind(f"\0{self.prefix}-{self._token}-c{self._count}-uid{uid}-pid{pid}")
            client.setblocking(False)
            upstream.setblocking(False)
            await loop.sock_connect(upstream, str(self.internal))
            await asyncio.gather(self._pump(client, upstream), self._pump(upstream, client))
        except OSError as exc:
            _log.warning("relaying a %s connection failed: %s", self.what, exc)
        finally:
            upstream.close()
            client.close()

    @staticmethod
    async def _pump(source: socket.socket, sink: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            while data := await loop.sock_recv(source, CHUNK):
                await loop.sock_sendall(sink, data)
        except OSError:
            pass  # a reset: the other direction ends too
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)
