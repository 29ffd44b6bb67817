"""The guest's side of a TLS channel: CA, certificate and key from arguments, options or
the environment, against a real gRPC server that requires client certificates.

The certificates are made for the test with ``openssl`` (a throwaway CA, a rogue CA
and certificates for two guests); ``channel_pki`` is shared with the agent's channel
security tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from guest_shim.cli import build_parser, main
from guest_shim.service import add_servicer
from guest_shim.tls import ENV_CA, ENV_CERT, ENV_KEY, ChannelTls, tls_from

from guest_shim import ChannelTlsError, GuestShimError, connect
from guest_shim import offload_pb2 as pb
from tests.embedded.test_security import public_dir
from tests.guest_shim.test_channel import EXAMPLES, RecordingServicer
from tests.pki import make_pki

__all__ = ["channel_pki", "public_dir"]  # fixtures the agent's tests import too

@pytest.fixture
def channel_pki(public_dir: Path) -> Path:
    """ca.crt with server (IP 127.0.0.1), web-1 (SAN web-1.guests) and db-1 (SAN
    db-1.guests); rogue-ca.crt with rogue (SAN web-1.guests: the right name, the wrong
    CA). Readable by every user, like the directory."""
    return make_pki(public_dir, {"server": ("ca", "IP:127.0.0.1"),
                                 "web-1": ("ca", "DNS:web-1.guests"),
                                 "db-1": ("ca", "DNS:db-1.guests"),
                                 "rogue": ("rogue-ca", "DNS:web-1.guests")})


def guest_tls(pki: Path, name: str | None, ca: str = "ca") -> ChannelTls:
    """TLS files of guest ``name`` (None: the CA only, no certificate)."""
    if name is None:
        return ChannelTls(ca=pki / f"{ca}.crt")
    return ChannelTls(ca=pki / f"{ca}.crt", cert=pki / f"{name}.crt", key=pki / f"{name}.key")


@pytest.fixture
def tls_server(channel_pki: Path) -> Iterator[tuple[str, RecordingServicer]]:
    """A gRPC server on loopback that requires a certificate of ca.crt."""
    servicer = RecordingServicer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    add_servicer(server, servicer)
    credentials = grpc.ssl_server_credentials(
        [((channel_pki / "server.key").read_bytes(), (channel_pki / "server.crt").read_bytes())],
        root_certificates=(channel_pki / "ca.crt").read_bytes(), require_client_auth=True)
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield f"tcp:127.0.0.1:{port}", servicer
    finally:
        server.stop(None)


def test_a_certified_guest_is_served(tls_server: tuple[str, RecordingServicer],
                                     channel_pki: Path) -> None:
    address, servicer = tls_server
    with connect(address, tls=guest_tls(channel_pki, "web-1")) as channel:
        assert channel.apply(EXAMPLES / "snat.yaml").generation == 1
        assert channel.get().flows[0].id == "egress"
    assert servicer.applied[0].vnic == "app-3"


@pytest.mark.parametrize("who", ["no certificate", "rogue CA", "no TLS"])
def test_the_handshake_refuses_other_guests(tls_server: tuple[str, RecordingServicer],
                                            channel_pki: Path, who: str) -> None:
    address, servicer = tls_server
    tls = {"no certificate": guest_tls(channel_pki, None),
           "rogue CA": guest_tls(channel_pki, "rogue", ca="rogue-ca"), "no TLS": None}[who]
    with connect(address, tls=tls, timeout=5) as channel, pytest.raises(GuestShimError) as info:
        channel.apply(pb.OffloadRequest(vnic="web-1"))
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert f"cannot reach the VNIC channel at {address}" in str(info.value)
    if tls is None:
        assert "a TCP channel needs TLS: --ca, --cert, --key" in str(info.value)
    assert servicer.applied == []


def test_cli_options_and_environment(tls_server: tuple[str, RecordingServicer],
                                     channel_pki: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    address, servicer = tls_server
    files = ["--ca", str(channel_pki / "ca.crt"), "--cert", str(channel_pki / "web-1.crt"),
             "--key", str(channel_pki / "web-1.key")]
    assert main(["--channel", address, *files, "apply", str(EXAMPLES / "snat.yaml")]) == 0
    assert "generation 1 applied" in capsys.readouterr().out
    monkeypatch.setenv(ENV_CA, str(channel_pki / "ca.crt"))
    monkeypatch.setenv(ENV_CERT, str(channel_pki / "web-1.crt"))
    monkeypatch.setenv(ENV_KEY, str(channel_pki / "web-1.key"))
    assert main(["--channel", address, "show"]) == 0
    assert "egress" in capsys.readouterr().out
    assert len(servicer.applied) == 1


def test_cli_tls_mistakes_are_one_line(channel_pki: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    ca = str(channel_pki / "ca.crt")
    address = "tcp:127.0.0.1:1"
    assert main(["--channel", address, "--ca", ca, "--cert", ca, "show"]) == 2
    assert capsys.readouterr().err == (
        "guest-shim: TLS: give the guest's certificate and its key together\n")
    assert main(["--channel", address, "--ca", str(tmp_path / "absent.crt"), "show"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("guest-shim: TLS: ca: cannot read ") and err.count("\n") == 1
    assert main(["--channel", f"unix:{tmp_path}/s.sock", "--ca", ca, "show"]) == 2
    assert "TLS is for tcp: channels" in capsys.readouterr().err


def test_help_documents_the_tls_options() -> None:
    text = build_parser().format_help()
    for word in ("--ca", "--cert", "--key", "--server-name", ENV_CA, ENV_CERT, ENV_KEY,
                 "mutual TLS"):
        assert word in text


def test_tls_from_environment_and_arguments() -> None:
    env = {ENV_CA: "/e/ca.crt", ENV_CERT: "/e/g.crt", ENV_KEY: "/e/g.key"}
    assert tls_from(environ={}) is None
    assert tls_from(environ=env) == ChannelTls(ca=Path("/e/ca.crt"), cert=Path("/e/g.crt"),
                                               key=Path("/e/g.key"))
    given = tls_from("/a/ca.crt", environ=env)
    assert given is not None and given.ca == Path("/a/ca.crt")
    with pytest.raises(ChannelTlsError, match="needs the CA"):
        tls_from(cert="/a/g.crt", key="/a/g.key", environ={})


def test_tls_allows_a_remote_address(channel_pki: Path) -> None:
    """An authenticated channel may leave the machine (nothing is sent: no call is made)."""
    with pytest.raises(GuestShimError, match="not a loopback address"):
        connect("tcp:192.0.2.1:7001")
    with connect("tcp:192.0.2.1:7001", tls=guest_tls(channel_pki, "web-1")) as channel:
        assert channel.address.host == "192.0.2.1"
