"""The P4Runtime gRPC server of the embedded target.

Who may reach it is decided by the address (see `listen_policy`):

- ``unix:PATH``: a Unix socket whose owner, group and mode are set right after
  it is bound (default: the server's user, mode 0600, so only root when the
  target runs as root). The socket is created under a umask that keeps every
  other user out in the meantime. Each connection is relayed to grpc so that
  grpc sees it as a peer of its own (`unixfront.py`).
- ``HOST:PORT`` with TLS and client certificates (`TlsConfig`, client_auth):
  only clients with a certificate signed by the given CA get in.
- ``HOST:PORT`` in plain text (or TLS without client certificates): nobody is
  authenticated. Allowed on a loopback address, with a warning (tests and
  simple_switch_grpc scripts use ``127.0.0.1:PORT``); on any other address
  only with ``insecure_tcp=True``.

The server is grpc's asyncio server on an event loop thread of its own;
see `service.py` for how streams and unary calls are kept apart.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from finsy.proto import p4r

from pyoffload.errors import PyoffloadError

from ..switch import Switch
from .arbitration import Arbiter
from .device import Device, Loader, default_loader, default_meter_factory
from .meters import MeterFactory
from .service import DEFAULT_STREAM_LIMITS, P4RuntimeService, StreamLimits, add_to_server
from .unixfront import UnixFront

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

DEFAULT_ADDRESS = "127.0.0.1:9559"
"""The library's default (tests); the command line defaults to `DEFAULT_SOCKET`."""
DEFAULT_SOCKET = "unix:/run/pyoffload/p4rt.sock"
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
"""Large enough for big P4Info/BMv2 JSON pushes and read responses."""


class ServerError(PyoffloadError):
    """The server could not start (address in use, bad address, refused policy)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SocketAccess:
    """Owner, group and mode of a Unix socket the server listens on."""

    mode: int = 0o600
    """Connecting needs write permission: 0600 owner only, 0660 owner and group."""
    uid: int | None = None
    """Owner (None: the server's user)."""
    gid: int | None = None
    """Group (None: the server's group)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsConfig:
    """TLS for a TCP address (PEM bytes)."""

    cert: bytes
    """The server's certificate chain."""
    key: bytes
    """The server's private key."""
    ca: bytes | None = None
    """CA certificates that sign client certificates (needed for client_auth)."""
    client_auth: bool = False
    """Require and verify a client certificate (mutual TLS)."""

    @classmethod
    def from_files(cls, *, cert: Path, key: Path, ca: Path | None = None,
                   client_auth: bool = False) -> TlsConfig:
        """Read the PEM files; ServerError naming the file that cannot be read."""
        def read(path: Path) -> bytes:
            try:
                return path.read_bytes()
            except OSError as exc:
                raise ServerError(f"cannot read {path}: {exc.strerror}") from None

        if client_auth and ca is None:
            raise ServerError("client authentication needs the CA certificate "
                              "(--grpc-server-cacert) that signs client certificates")
        return cls(cert=read(cert), key=read(key), ca=read(ca) if ca else None,
                   client_auth=client_auth)


def unix_path(address: str) -> Path | None:
    """The socket path of a ``unix:PATH`` / ``unix:///PATH`` address, else None."""
    if address.startswith("unix://"):
        return Path(address[len("unix://"):])
    if address.startswith("unix:"):
        return Path(address[len("unix:"):])
    return None


def _listening(path: Path) -> bool:
    """True when a server accepts connections on the Unix socket `path` (not a stale file)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


def _remove_stale_private_dirs(directory: Path) -> None:
    """Remove the `.p4rt-*` directories of servers that died without cleaning up."""
    for private in directory.glob(".p4rt-*"):
        try:
            if private.stat().st_uid != os.geteuid():
                continue
            inner = private / "grpc.sock"
            if not (inner.is_socket() and _listening(inner)):
                shutil.rmtree(private, ignore_errors=True)
        except OSError:
            continue


def _is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen_policy(address: str, tls: TlsConfig | None, insecure_tcp: bool) -> str | None:
    """Check that `address` may be served as asked: a warning to print, or None.

    Raises ServerError for what is refused.
    """
    if address.startswith("unix-abstract:"):
        raise ServerError("abstract Unix sockets have no owner or mode (any local user could "
                          "connect); use unix:PATH")
    path = unix_path(address)
    if path is not None:
        if tls is not None:
            raise ServerError("TLS is for TCP addresses; a Unix socket is protected by its "
                              "owner and mode (--grpc-socket-mode, --grpc-socket-owner)")
        if not path.is_absolute():
            raise ServerError(f"Unix socket path {str(path)!r} must be absolute")
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ServerError(f"bad address {address!r} (expected HOST:PORT or unix:PATH)")
    if tls is not None and tls.client_auth:
        return None
    what = "TLS without client certificates" if tls is not None else "plain TCP"
    if insecure_tcp:
        return (f"WARNING: P4Runtime on {address} over {what} with --grpc-insecure-tcp: "
                "UNAUTHENTICATED, anyone who reaches this address can read, write and take "
                "the primary role")
    if _is_loopback(host):
        return (f"WARNING: P4Runtime on {address} over {what} is UNAUTHENTICATED: any local "
                "user can read, write and take the primary role; use unix:PATH or TLS with "
                "client certificates (--grpc-server-with-client-auth)")
    raise ServerError(
        f"refusing unauthenticated P4Runtime on {address} ({what}): use TLS with client "
        "certificates (--grpc-server-ssl --grpc-server-cert --grpc-server-key "
        "--grpc-server-cacert --grpc-server-with-client-auth), a unix:PATH address, or "
        "--grpc-insecure-tcp if you really mean it")


class P4RuntimeServer:
    """A switch exposed as one P4Runtime device on a gRPC address.

    `address` may end in `:0` to pick a free port; `port` tells which one.
    `max_workers` threads run the blocking part of unary calls; streams run on
    the event loop and are limited by `stream_limits`.
    """

    def __init__(
        self,
        switch: Switch,
        *,
        device_id: int = 0,
        address: str = DEFAULT_ADDRESS,
        tls: TlsConfig | None = None,
        socket_access: SocketAccess = SocketAccess(),
        insecure_tcp: bool = False,
        stream_limits: StreamLimits = DEFAULT_STREAM_LIMITS,
        max_workers: int = 8,
        loader: Loader = default_loader,
        meter_factory: MeterFactory = default_meter_factory,
        clock: Callable[[], int] = time.monotonic_ns,
        idle_scan_ns: int = 50_000_000,
    ) -> None:
        self.warning = listen_policy(address, tls, insecure_tcp)
        if self.warning is not None:
            _log.info("%s", self.warning)
        self.switch = switch
        self.device = Device(switch, device_id, self._broadcast, loader=loader,
                             meter_factory=meter_factory, clock=clock, idle_scan_ns=idle_scan_ns)
        self.arbiter = Arbiter(frozenset({device_id}))
        self._unary_pool = futures.ThreadPoolExecutor(max_workers=max_workers,
                                                      thread_name_prefix="p4rt-unary")
        self._stream_pool = futures.ThreadPoolExecutor(max_workers=2,
                                                       thread_name_prefix="p4rt-stream")
        self.service = P4RuntimeService(self.device, self.arbiter, unary_pool=self._unary_pool,
                                        stream_pool=self._stream_pool, limits=stream_limits)
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name="p4rt-loop",
                                             daemon=True)
        self._loop_thread.start()
        self._started = False
        self._stopped = False
        self.socket_path = unix_path(address)
        self._front: UnixFront | None = None
        self._private: Path | None = None
        try:
            self._server, self.port = self._call(self._listen(address, tls, socket_access))
        except BaseException:
            self._close_loop()
            self.service.close()
            raise
        if self.socket_path is not None:
            self.address = address
        else:
            host = address.rsplit(":", 1)[0]
            self.address = f"{host}:{self.port}"

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _listen(self, address: str, tls: TlsConfig | None, access: SocketAccess
                      ) -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ])
        add_to_server(self.service, server)
        path = self.socket_path
        if path is not None:
            try:
                path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            except OSError as exc:
                raise ServerError(f"cannot create {path.parent}: {exc.strerror}") from None
            if path.exists() and not path.is_socket():
                raise ServerError(f"{path} exists and is not a socket")
            if path.is_socket() and _listening(path):  # it would be silently replaced
                raise ServerError(f"cannot listen on {address}: another server listens there")
            # grpc listens in a directory only this user may enter; clients come in
            # through the public socket and its relay (see unixfront.py)
            _remove_stale_private_dirs(path.parent)
            try:
                self._private = Path(tempfile.mkdtemp(prefix=".p4rt-", dir=path.parent))
            except OSError as exc:
                raise ServerError(f"cannot create a directory in {path.parent}: "
                                  f"{exc.strerror}") from None
            internal = self._private / "grpc.sock"
            port = server.add_insecure_port(f"unix:{internal}")
            if port == 0:
                raise ServerError(f"cannot listen on {internal}")
            front = UnixFront(path, internal)
            try:
                front.bind(access.mode, access.uid, access.gid)
            except OSError as exc:
                raise ServerError(f"cannot listen on {address}: {exc.strerror}") from None
            self._front = front
            return server, 0
        try:
            if tls is None:
                port = server.add_insecure_port(address)
            else:
                credentials = grpc.ssl_server_credentials(
                    [(tls.key, tls.cert)], root_certificates=tls.ca,
                    require_client_auth=tls.client_auth)
                port = server.add_secure_port(address, credentials)
        except RuntimeError as exc:
            raise ServerError(f"cannot listen on {address}: {exc}") from None
        if port == 0:
            raise ServerError(f"cannot listen on {address} (address in use or invalid)")
        return server, port

    def _broadcast(self, message: p4r.StreamMessageResponse) -> None:
        self.service.broadcast(message)

    def start(self) -> None:
        self._call(self._start())
        self._started = True
        self.device.start()

    async def _start(self) -> None:
        await self._server.start()
        if self._front is not None:
            self._front.start()

    async def _stop(self, grace: float | None) -> None:
        if self._front is not None:
            await self._front.close()
        await self._server.stop(grace)

    def stop(self, grace: float | None = 1.0) -> None:
        """Stop serving: open streams are cancelled, then background work ends."""
        if self._stopped:
            return
        self._stopped = True
        self._call(self._stop(grace))
        self._close_loop()
        self.device.stop()
        self.service.close()

    def _close_loop(self) -> None:
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join(timeout=10)
        self._loop.close()
        self._unary_pool.shutdown(wait=True, cancel_futures=True)
        self._stream_pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> P4RuntimeServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["DEFAULT_ADDRESS", "DEFAULT_SOCKET", "P4RuntimeServer", "ServerError", "SocketAccess",
           "StreamLimits", "TlsConfig", "default_loader", "listen_policy"]
