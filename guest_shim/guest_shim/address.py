"""Channel addresses: where the guest reaches its VNIC's agent.

Three kinds, written as one string so they fit an environment variable:

* ``unix:/run/pyoffload/vnic.sock``: a Unix socket (the default; the agent
  serves one per VNIC);
* ``tcp:127.0.0.1:50051`` or ``tcp:[::1]:50051``: TCP; the agent serves it
  with mutual TLS (``guest_shim.tls``), when the address may be remote; without
  TLS it is loopback only unless the caller passes ``allow_remote=True`` (an
  unauthenticated channel on a shared network lets anyone rewrite the guest's
  firewall);
* ``vsock:CID:PORT``: AF_VSOCK, how a real VM reaches its host (CID 2, or
  ``host``).

Parsing is pure: nothing here opens a socket. ``ChannelAddress`` gives the
gRPC target for a client, the address a server listens on, and the socket
family and address tuple for code that needs the raw socket configuration.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Literal

from guest_shim.errors import ChannelAddressError

DEFAULT_ADDRESS = "unix:/run/pyoffload/vnic.sock"
ENV_VAR = "PYOFFLOAD_CHANNEL"
VMADDR_CID_HOST = 2
_VSOCK_ANY = 0xFFFFFFFF  # VMADDR_CID_ANY / VMADDR_PORT_ANY: for listening only
_AF_VSOCK = 40  # socket.AF_VSOCK on Linux, for Pythons built without it

Kind = Literal["unix", "tcp", "vsock"]
SockAddr = str | tuple[str, int] | tuple[int, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelAddress:
    """A parsed channel address."""

    kind: Kind
    """``unix``, ``tcp`` or ``vsock``."""
    path: str = ""
    """The socket path (unix)."""
    host: str = ""
    """The IP address, without brackets (tcp)."""
    cid: int = 0
    """The context id of the peer (vsock; 2 is the host)."""
    port: int = 0
    """The TCP or vsock port."""

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        if self.kind == "tcp":
            return f"tcp:{_bracketed(self.host)}:{self.port}"
        return f"vsock:{self.cid}:{self.port}"

    @property
    def grpc_target(self) -> str:
        """The target for ``grpc.insecure_channel``.

        TCP uses the ``ipv4:``/``ipv6:`` schemes so that no name resolution
        (and no DNS) is ever involved; vsock uses gRPC's ``vsock:CID:PORT``.
        """
        if self.kind == "unix":
            return f"unix:{self.path}"
        if self.kind == "tcp":
            scheme = "ipv6" if ":" in self.host else "ipv4"
            return f"{scheme}:{_bracketed(self.host)}:{self.port}"
        return f"vsock:{self.cid}:{self.port}"

    @property
    def listen_address(self) -> str:
        """The address for ``grpc.Server.add_insecure_port`` (the agent's side)."""
        if self.kind == "tcp":
            return f"{_bracketed(self.host)}:{self.port}"
        return self.grpc_target

    @property
    def socket_family(self) -> int:
        """The address family of the socket behind the channel."""
        if self.kind == "unix":
            return socket.AF_UNIX
        if self.kind == "tcp":
            return socket.AF_INET6 if ":" in self.host else socket.AF_INET
        return getattr(socket, "AF_VSOCK", _AF_VSOCK)

    @property
    def sockaddr(self) -> SockAddr:
        """The address tuple ``socket.connect`` would take for this family."""
        if self.kind == "unix":
            return self.path
        if self.kind == "tcp":
            return (self.host, self.port)
        return (self.cid, self.port)

    @property
    def channel_options(self) -> list[tuple[str, int | str]]:
        """gRPC channel options: never through an HTTP proxy (a local channel
        must not leave the machine because ``http_proxy`` is set), and a fixed
        authority for sockets whose path or CID means nothing to HTTP/2."""
        options: list[tuple[str, int | str]] = [("grpc.enable_http_proxy", 0)]
        if self.kind != "tcp":
            options.append(("grpc.default_authority", "localhost"))
        return options


def parse_address(text: str, *, allow_remote: bool = False) -> ChannelAddress:
    """Parse ``unix:PATH``, ``tcp:HOST:PORT`` or ``vsock:CID:PORT``."""
    scheme, colon, rest = text.strip().partition(":")
    if not colon or scheme not in ("unix", "tcp", "vsock"):
        raise _bad(text, "expected unix:PATH, tcp:HOST:PORT or vsock:CID:PORT")
    if scheme == "unix":
        path = rest[2:] if rest.startswith("//") else rest
        if not path:
            raise _bad(text, "the socket path is empty")
        if "\0" in path:
            raise _bad(text, "the socket path contains a NUL byte")
        return ChannelAddress(kind="unix", path=path)
    if scheme == "tcp":
        return _parse_tcp(text, rest, allow_remote)
    return _parse_vsock(text, rest)


def _parse_tcp(text: str, rest: str, allow_remote: bool) -> ChannelAddress:
    if rest.startswith("["):
        host, bracket, port_text = rest[1:].partition("]")
        if not bracket or not port_text.startswith(":"):
            raise _bad(text, "expected tcp:[IPV6]:PORT")
        port_text = port_text[1:]
    else:
        host, _, port_text = rest.rpartition(":")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise _bad(text, f"{host!r} is not an IP address (names are not resolved)") from None
    if not allow_remote and not ip.is_loopback:
        raise _bad(
            text,
            f"{ip} is not a loopback address; the channel is unauthenticated, so TCP is "
            "loopback only unless explicitly allowed",
        )
    port = _number(text, port_text, "port", 1, 65535)
    return ChannelAddress(kind="tcp", host=str(ip), port=port)


def _parse_vsock(text: str, rest: str) -> ChannelAddress:
    cid_text, colon, port_text = rest.partition(":")
    if not colon:
        raise _bad(text, "expected vsock:CID:PORT")
    cid = (
        VMADDR_CID_HOST
        if cid_text == "host"
        else _number(text, cid_text, "CID", 0, _VSOCK_ANY - 1)
    )
    port = _number(text, port_text, "port", 0, _VSOCK_ANY - 1)
    return ChannelAddress(kind="vsock", cid=cid, port=port)


def _number(text: str, value: str, what: str, low: int, high: int) -> int:
    if not value.isdigit() or not low <= int(value) <= high:
        raise _bad(text, f"{what} {value!r} is not a number {low}-{high}")
    return int(value)


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _bad(text: str, reason: str) -> ChannelAddressError:
    return ChannelAddressError(f"bad channel address {text!r}: {reason}")
