"""Channel addresses, vsock included, parsed and configured without any socket.

vsock on this machine reaches a host that is not ours: these tests only
check the strings and tuples a vsock channel would use, never open one.
"""

from __future__ import annotations

import socket

import grpc
import pytest
from guest_shim.address import DEFAULT_ADDRESS, ENV_VAR

from guest_shim import ChannelAddressError, default_address, parse_address


def test_unix() -> None:
    address = parse_address("unix:/run/pyoffload/vnic.sock")
    assert address.kind == "unix" and address.path == "/run/pyoffload/vnic.sock"
    assert address.grpc_target == "unix:/run/pyoffload/vnic.sock"
    assert address.listen_address == "unix:/run/pyoffload/vnic.sock"
    assert address.socket_family == socket.AF_UNIX
    assert address.sockaddr == "/run/pyoffload/vnic.sock"
    assert ("grpc.default_authority", "localhost") in address.channel_options
    assert parse_address("unix:///tmp/x.sock").path == "/tmp/x.sock"
    assert str(address) == "unix:/run/pyoffload/vnic.sock"


def test_tcp_loopback() -> None:
    address = parse_address("tcp:127.0.0.1:50051")
    assert (address.host, address.port) == ("127.0.0.1", 50051)
    assert address.grpc_target == "ipv4:127.0.0.1:50051"
    assert address.listen_address == "127.0.0.1:50051"
    assert address.socket_family == socket.AF_INET
    assert address.sockaddr == ("127.0.0.1", 50051)
    assert ("grpc.enable_http_proxy", 0) in address.channel_options
    six = parse_address("tcp:[::1]:7")
    assert six.grpc_target == "ipv6:[::1]:7" and six.socket_family == socket.AF_INET6
    assert str(six) == "tcp:[::1]:7"
    assert parse_address("tcp:localhost:9").host == "127.0.0.1"


def test_tcp_remote_needs_consent() -> None:
    with pytest.raises(ChannelAddressError, match="not a loopback address") as info:
        parse_address("tcp:192.0.2.1:50051")
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert parse_address("tcp:192.0.2.1:50051", allow_remote=True).host == "192.0.2.1"


def test_vsock_configuration() -> None:
    address = parse_address("vsock:2:5000")
    assert (address.kind, address.cid, address.port) == ("vsock", 2, 5000)
    assert address.grpc_target == "vsock:2:5000"
    assert address.listen_address == "vsock:2:5000"
    assert address.socket_family == getattr(socket, "AF_VSOCK", 40)
    assert address.sockaddr == (2, 5000)
    assert ("grpc.default_authority", "localhost") in address.channel_options
    assert parse_address("vsock:host:1024").cid == 2
    assert str(parse_address("vsock:4294967294:1")) == "vsock:4294967294:1"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "expected unix:PATH"),
        ("/run/x.sock", "expected unix:PATH"),
        ("http://127.0.0.1:80", "expected unix:PATH"),
        ("unix:", "the socket path is empty"),
        ("unix:/a\0b", "NUL"),
        ("tcp:127.0.0.1", "not an IP address"),
        ("tcp:127.0.0.1:0", "port '0' is not a number 1-65535"),
        ("tcp:127.0.0.1:65536", "port '65536'"),
        ("tcp:example.com:80", "names are not resolved"),
        ("tcp:[::1:80", "expected tcp:[IPV6]:PORT"),
        ("vsock:2", "expected vsock:CID:PORT"),
        ("vsock:x:5", "CID 'x'"),
        ("vsock:4294967295:5", "CID '4294967295'"),
        ("vsock:2:-1", "port '-1'"),
        ("vsock:2:4294967295", "port '4294967295'"),
    ],
)
def test_bad_addresses(text: str, reason: str) -> None:
    with pytest.raises(ChannelAddressError) as info:
        parse_address(text)
    assert reason in str(info.value)
    assert str(info.value).startswith(f"bad channel address {text!r}")


def test_default_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert default_address() == DEFAULT_ADDRESS == "unix:/run/pyoffload/vnic.sock"
    monkeypatch.setenv(ENV_VAR, "tcp:127.0.0.1:1")
    assert default_address() == "tcp:127.0.0.1:1"
