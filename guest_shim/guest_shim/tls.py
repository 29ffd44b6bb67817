"""The guest's side of a TCP channel's mutual TLS.

The agent serves a TCP channel only with TLS, and admits only the certificate whose
identity (common name or subject alternative name) its host configuration binds to
that VNIC. The guest names three PEM files: the CA that signed the agent's channel
certificate, and its own certificate and key; or the same through the environment
(``PYOFFLOAD_CHANNEL_CA``, ``PYOFFLOAD_CHANNEL_CERT``, ``PYOFFLOAD_CHANNEL_KEY``,
``PYOFFLOAD_CHANNEL_SERVER_NAME``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc

from guest_shim.errors import ChannelTlsError

ENV_CA = "PYOFFLOAD_CHANNEL_CA"
ENV_CERT = "PYOFFLOAD_CHANNEL_CERT"
ENV_KEY = "PYOFFLOAD_CHANNEL_KEY"
ENV_SERVER_NAME = "PYOFFLOAD_CHANNEL_SERVER_NAME"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelTls:
    """PEM files for a TLS channel (read when the channel is opened)."""

    ca: Path
    """The CA that signed the agent's channel certificate."""
    cert: Path | None = None
    """This guest's certificate (the agent refuses a guest without one)."""
    key: Path | None = None
    """This guest's private key."""
    server_name: str | None = None
    """The name the agent's certificate must carry, when not the address's IP."""

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ChannelTlsError("TLS: give the guest's certificate and its key together")

    def credentials(self) -> grpc.ChannelCredentials:
        """gRPC channel credentials from the files (errors name the file)."""
        ca = _read("ca", self.ca)
        cert = None if self.cert is None else _read("cert", self.cert)
        key = None if self.key is None else _read("key", self.key)
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key,
                                            certificate_chain=cert)

    @property
    def channel_options(self) -> list[tuple[str, int | str]]:
        """Options for the gRPC channel (the expected server name, if given)."""
        if self.server_name:
            return [("grpc.ssl_target_name_override", self.server_name)]
        return []


def tls_from(
    ca: str | Path | None = None,
    cert: str | Path | None = None,
    key: str | Path | None = None,
    server_name: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> ChannelTls | None:
    """TLS files from the arguments, each defaulting to its environment variable; None
    when no CA is named either way (a Unix socket or vsock channel needs none)."""
    env = os.environ if environ is None else environ
    ca = ca or env.get(ENV_CA) or None
    cert = cert or env.get(ENV_CERT) or None
    key = key or env.get(ENV_KEY) or None
    server_name = server_name or env.get(ENV_SERVER_NAME) or None
    if ca is None:
        if cert is not None or key is not None:
            raise ChannelTlsError(f"TLS: a certificate needs the CA of the agent's channel "
                                  f"too (--ca or ${ENV_CA})")
        return None
    return ChannelTls(ca=Path(ca), cert=None if cert is None else Path(cert),
                      key=None if key is None else Path(key), server_name=server_name)


def _read(label: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ChannelTlsError(f"TLS: {label}: cannot read {path}: {exc.strerror}") from None
