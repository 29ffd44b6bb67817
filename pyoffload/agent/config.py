"""The host configuration: which target, which VNICs, their channels and quotas.

A YAML (or JSON) file, written by the host's operator, never by a guest:

.. code-block:: yaml

    target:
      kind: embedded            # embedded | bmv2 (started by `pyoffload up`) | remote
      address: 127.0.0.1:9559   # remote: where it serves P4Runtime
      device_id: 1
      ports: {1: vnet0, 2: eth1}   # started targets: switch port -> interface
      pipeline: default         # or large: the build with 1,048,576 conntrack slots
      tls: {ca: ca.pem, cert: agent.pem, key: agent.key}   # mutual TLS to a TCP address
    vnics:
      - name: web-1
        id: 1                   # the pipeline's VNIC id, 1-65535
        guest_port: 1
        uplink_port: 2
        default_policy: deny    # IP traffic no declared flow matches: allow | deny | punt
        channel: unix:/run/pyoffload/web-1.sock   # or tcp:HOST:PORT, vsock:3:7001
        channel_access: {owner: qemu, group: kvm, mode: "0660"}   # unix: who may connect
        quotas: {flows: 64, rules: 1024, tracked_connections: 65536}
      - name: db-1
        ...
        channel: tcp:192.0.2.1:7002        # TCP: mutual TLS, the guest's identity bound here
        channel_tls: {ca: guests-ca.pem, cert: channel.pem, key: channel.key,
                      client: db-1.guests.example}   # CN or SAN of the guest's certificate
        channel_limits: {connections: 64, watch_streams_per_peer: 8, max_message_bytes: 2200000,
                         requests_per_second: 20, request_burst: 40,
                         bytes_per_second: 1048576}
    state:                      # the agent's durable desired state (optional)
      path: /var/lib/pyoffload/state.db   # relative: to this file's directory
      reconcile_interval: 5.0   # seconds between read-backs of the target, (0, 3600]
      checkpoint_interval: 1.0  # seconds between connection checkpoints, (0, 3600]

Guest channels (see the README's security section): a Unix socket is created owner
root, group root, mode 0600 unless ``channel_access`` says otherwise, in a directory
only root (or the agent's user) can write to; a TCP channel needs ``channel_tls``,
whose ``client`` is the one identity admitted, and no two VNICs may admit the same
one; plain TCP only with ``insecure_tcp: true`` on a loopback address (tests,
development). vsock channels are as before: the hypervisor binds a CID to its VM.

Errors name the VNIC and the field, e.g. ``vnics[1] "db": guest_port: port 3
is already the guest port of VNIC "web-1"``.
"""

from __future__ import annotations

import grp
import ipaddress
import os
import pwd
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import grpc
import yaml
from guest_shim.address import ChannelAddress, parse_address
from guest_shim.errors import ChannelAddressError

from pyoffload.errors import PyoffloadError
from pyoffload.pipeline.artifacts import VARIANTS

TARGET_KINDS = ("embedded", "bmv2", "remote")
POLICIES = ("allow", "deny", "punt")
DEFAULT_STATE_PATH = Path("/var/lib/pyoffload/state.db")
MAX_INTERVAL = 3600.0
MESSAGE_BASE_BYTES = 64 * 1024
"""A request's size allowance for its envelope, when the limit is derived from quotas."""
MESSAGE_BYTES_PER_FLOW = 1024
"""Allowance per flow of the quota (ids are at most 63 characters; a flow's match and
config take a few hundred bytes at most)."""
MESSAGE_BYTES_PER_RULE = 2048
"""Allowance per rule of the quota (a rule with a load balancer of many backends is the
largest: a few hundred bytes is typical)."""
MAX_MESSAGE_BYTES = 2**31 - 1
"""gRPC's own ceiling for a message size."""


class ConfigError(PyoffloadError):
    """The host configuration is wrong; the message says where and why."""


def read_pem(where: str, ca: Path, cert: Path, key: Path) -> tuple[bytes, bytes, bytes]:
    """(ca, cert, key) PEM bytes, read now: an unreadable one is named with ``where``."""
    blobs = []
    for label, path in (("ca", ca), ("cert", cert), ("key", key)):
        try:
            blobs.append(path.read_bytes())
        except OSError as exc:
            raise ConfigError(f"{where}: {label}: cannot read {path}: {exc.strerror}") from None
    return blobs[0], blobs[1], blobs[2]


@attrs.frozen(kw_only=True)
class QuotaConfig:
    """Per-VNIC limits: a guest cannot take more of the shared pipeline."""

    flows: int = 64
    """Declared flows."""
    rules: int = 1024
    """Service rules over all flows."""
    tracked_connections: int = 65536
    """Connections tracked at once: at the quota the pipeline tracks no new one of the
    VNIC until some end (``pyoffload.agent.quota``); reported in stats."""


@attrs.frozen(kw_only=True)
class ChannelAccess:
    """Who may connect to a Unix-socket channel: the socket's owner, group and mode."""

    owner: int | None = None
    """The socket's owning uid; None: the agent's own user (root as a service)."""
    group: int | None = None
    """The socket's group id; None: the agent's own group."""
    mode: int = 0o600
    """Permission bits of the socket (connecting needs write permission); never
    writable by others: name an owner or a group instead."""


@attrs.frozen(kw_only=True)
class ChannelTlsConfig:
    """The agent's side of a TCP channel's mutual TLS (PEM files) and the one guest
    identity it admits."""

    ca: Path
    """The CA that signs guests' certificates (the only one trusted on this channel)."""
    cert: Path
    """The channel's server certificate (its SAN must match the address guests dial,
    or the name they pass as ``--server-name``)."""
    key: Path
    """The server certificate's private key."""
    client: str
    """The identity bound to this VNIC: the guest's certificate must carry it as its
    common name or as a subject alternative name; every other certificate is refused."""

    def read(self, where: str) -> tuple[bytes, bytes, bytes]:
        """(ca, cert, key) PEM bytes, read now: errors name the VNIC and the file."""
        return read_pem(f"{where}: channel_tls", self.ca, self.cert, self.key)


@attrs.frozen(kw_only=True)
class ChannelLimits:
    """Per-channel limits checked before any expensive work."""

    connections: int = 64
    """Connections a Unix-socket channel holds open at once; more are closed as soon as
    they are accepted (grpc takes every one: thousands from one guest used up the
    agent's file descriptors and starved the other VNICs' channels)."""
    watch_streams_per_peer: int = 8
    """Watch streams one peer (an IP address, a vsock CID, the Unix socket's users) may
    hold open at once; more are refused with RESOURCE_EXHAUSTED."""
    max_message_bytes: int | None = None
    """The largest request the channel receives; None: derived from the VNIC's quotas
    (``message_bytes``)."""
    workers: int = 4
    """Threads that run this VNIC's unary calls (Apply, Withdraw, Get, Stats); Watch
    streams take none."""
    requests_per_second: float = 20.0
    """The guest's calls (any method, whatever they carry) a second on average; over it
    a call is refused (RESOURCE_EXHAUSTED, saying when to retry) before it is decoded."""
    request_burst: int = 40
    """Calls the guest may make at once above that rate."""
    bytes_per_second: int = 1 << 20
    """Request bytes the guest may send a second on average (its largest request, the
    receive limit, may always come at once); over it a call is refused like one over
    ``requests_per_second``, before its body is decoded."""


def message_bytes(limits: ChannelLimits, quotas: QuotaConfig) -> int:
    """The channel's receive limit: configured, else what the quotas can need."""
    if limits.max_message_bytes is not None:
        return limits.max_message_bytes
    derived = (MESSAGE_BASE_BYTES + quotas.flows * MESSAGE_BYTES_PER_FLOW
               + quotas.rules * MESSAGE_BYTES_PER_RULE)
    return min(derived, MAX_MESSAGE_BYTES)


@attrs.frozen(kw_only=True)
class VnicConfig:
    """One guest's VNIC: its ports, policy, channel and quotas."""

    name: str
    """Name used by channels, rule files and the CLI."""
    id: int
    """The pipeline's VNIC id (every table key carries it), 1-65535."""
    guest_port: int
    """Switch port facing the guest."""
    uplink_port: int
    """Switch port facing the network."""
    default_policy: str = "deny"
    """What happens to IP traffic that no declared flow matches."""
    channel: ChannelAddress | None = None
    """Where the guest channel is served; None = no channel (host API only)."""
    channel_access: ChannelAccess = attrs.field(factory=ChannelAccess)
    """Owner, group and mode of a Unix-socket channel."""
    channel_tls: ChannelTlsConfig | None = None
    """Mutual TLS of a TCP channel (required unless ``insecure_tcp``)."""
    insecure_tcp: bool = False
    """Serve a TCP channel without TLS (loopback addresses only): any local user can
    reach it, so for tests and development only."""
    channel_limits: ChannelLimits = attrs.field(factory=ChannelLimits)
    """Stream and size limits of the channel."""
    quotas: QuotaConfig = attrs.field(factory=QuotaConfig)
    """Per-VNIC limits."""


@attrs.frozen(kw_only=True)
class TargetTls:
    """The agent's side of mutual TLS with the target (PEM files)."""

    ca: Path
    """The CA that signed the target's server certificate."""
    cert: Path
    """The agent's client certificate (the target checks it against its own CA)."""
    key: Path
    """The agent's private key."""
    server_name: str | None = None
    """The name the server certificate must carry, when not the address's host."""

    def credentials(self) -> grpc.ChannelCredentials:
        """gRPC channel credentials from the files (read now: errors name the file)."""
        ca, cert, key = read_pem("target: tls", self.ca, self.cert, self.key)
        return grpc.ssl_channel_credentials(root_certificates=ca, certificate_chain=cert,
                                            private_key=key)


@attrs.frozen(kw_only=True)
class TargetConfig:
    """The P4 target the agent drives."""

    kind: str = "embedded"
    """embedded or bmv2 (started by ``pyoffload up``), or remote (already running)."""
    address: str | None = None
    """P4Runtime address (required for remote; chosen freely when started)."""
    device_id: int = 1
    """P4Runtime device id."""
    ports: Mapping[int, str] = attrs.field(factory=dict)
    """Switch port -> Linux interface, for started targets."""
    thrift_address: str | None = None
    """BMv2's Thrift runtime (host:port), where the conntrack registers are read and
    written (BMv2 does not serve registers over P4Runtime); set by ``pyoffload up``
    for a BMv2 it starts."""
    tls: TargetTls | None = None
    """Mutual TLS to the target's P4Runtime server (a TCP address); None: a Unix socket
    (whose permissions say who may connect) or, on loopback, an unauthenticated port."""
    pipeline: str = "default"
    """Which committed build of the VNIC program: ``default`` (``pyoffload/pipeline/build``)
    or a variant of ``pyoffload.pipeline.artifacts.VARIANTS`` (``large``: a million
    connections)."""


@attrs.frozen(kw_only=True)
class StateConfig:
    """Where the agent keeps its durable desired state, and how often it checks the target."""

    path: Path = DEFAULT_STATE_PATH
    """The state file (``pyoffload.agent.journal``); absolute once parsed."""
    reconcile_interval: float = 5.0
    """Seconds between periodic read-backs of the target, corrected to the journal."""
    checkpoint_interval: float = 1.0
    """Seconds between connection checkpoints, so connections survive a target restart."""


@attrs.frozen(kw_only=True)
class HostConfig:
    """The whole host configuration."""

    target: TargetConfig
    vnics: tuple[VnicConfig, ...]
    state: StateConfig = attrs.field(factory=StateConfig)
    """The durable state and its intervals."""

    def vnic(self, name: str) -> VnicConfig:
        for vnic in self.vnics:
            if vnic.name == name:
                return vnic
        known = ", ".join(v.name for v in self.vnics) or "none"
        raise ConfigError(f"no VNIC named {name!r} (configured: {known})")


def _int(data: Mapping[str, Any], key: str, where: str, low: int, high: int,
         default: int | None = None) -> int:
    value = data.get(key, default)
    if value is None:
        raise ConfigError(f"{where}: {key} is required")
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{where}: {key}: {value!r} is not a whole number in {low}-{high}")
    return value


def _seconds(data: Mapping[str, Any], key: str, where: str, default: float) -> float:
    value = data.get(key, default)
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not 0 < value <= MAX_INTERVAL):
        raise ConfigError(f"{where}: {key}: {value!r} is not a number of seconds above 0 "
                          f"and at most {MAX_INTERVAL:g}")
    return float(value)


def _check_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown field {unknown[0]!r} (known: {', '.join(sorted(allowed))})"
        )


def _pem_paths(data: Mapping[str, Any], where: str, base: Path) -> dict[str, Path]:
    """The ``ca``, ``cert`` and ``key`` file paths of a TLS mapping (relative: to ``base``)."""
    paths = {}
    for field in ("ca", "cert", "key"):
        value = data.get(field)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: {field}: expected the path of a PEM file")
        paths[field] = base / value
    return paths


def _tls(data: Any, base: Path) -> TargetTls | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ConfigError("target: tls: expected a mapping with ca, cert and key")
    _check_keys(data, {"ca", "cert", "key", "server_name"}, "target: tls")
    paths = _pem_paths(data, "target: tls", base)
    server_name = data.get("server_name")
    if server_name is not None and not isinstance(server_name, str):
        raise ConfigError("target: tls: server_name: expected a host name")
    return TargetTls(ca=paths["ca"], cert=paths["cert"], key=paths["key"],
                     server_name=server_name)


def _target(data: Any, base: Path) -> TargetConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("target: expected a mapping")
    _check_keys(data, {"kind", "address", "device_id", "ports", "thrift_address", "pipeline",
                       "tls"}, "target")
    pipeline = data.get("pipeline", "default")
    if pipeline != "default" and pipeline not in VARIANTS:
        raise ConfigError(f"target: pipeline: {pipeline!r} is not one of "
                          f"{', '.join(('default', *VARIANTS))}")
    kind = data.get("kind", "embedded")
    if kind not in TARGET_KINDS:
        raise ConfigError(f"target: kind: {kind!r} is not one of {', '.join(TARGET_KINDS)}")
    address = data.get("address")
    if kind == "remote" and not address:
        raise ConfigError("target: address is required for a remote target")
    ports_raw = data.get("ports") or {}
    if not isinstance(ports_raw, dict):
        raise ConfigError("target: ports: expected a mapping of port number to interface")
    ports: dict[int, str] = {}
    for key, iface in ports_raw.items():
        try:
            number = int(key)
        except (TypeError, ValueError):
            raise ConfigError(f"target: ports: {key!r} is not a port number") from None
        if not 0 <= number <= 509 or not isinstance(iface, str) or not iface:
            raise ConfigError(f"target: ports: {key}: expected a port 0-509 and an interface")
        ports[number] = iface
    return TargetConfig(
        kind=kind,
        address=address,
        device_id=_int(data, "device_id", "target", 0, 2**64 - 1, default=1),
        ports=ports,
        thrift_address=data.get("thrift_address"),
        tls=_tls(data.get("tls"), base),
        pipeline=pipeline,
    )


def _account(value: Any, field: str, where: str, kind: str) -> int:
    """A uid or gid from a number or a name known to the host."""
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise ConfigError(f"{where}: {field}: expected a {kind} name or number")
    if isinstance(value, int) or value.isdigit():
        number = int(value)
        if not 0 <= number < 2**32 - 1:
            raise ConfigError(f"{where}: {field}: {value!r} is not a {kind} id")
        return number
    try:
        if kind == "user":
            return pwd.getpwnam(value).pw_uid
        return grp.getgrnam(value).gr_gid
    except KeyError:
        raise ConfigError(f"{where}: {field}: no {kind} named {value!r} on this host") from None


def _access(data: Any, where: str) -> ChannelAccess:
    where = f"{where}: channel_access"
    if data is None:
        return ChannelAccess()
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping with owner, group and mode")
    _check_keys(data, {"owner", "group", "mode"}, where)
    owner = None if data.get("owner") is None else _account(data["owner"], "owner", where, "user")
    group = None if data.get("group") is None else _account(data["group"], "group", where, "group")
    raw = data.get("mode", "0600")
    try:
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            raise ValueError
        # YAML reads 0600 as the number 384 and "0600" as a string: both mean octal.
        mode = raw if isinstance(raw, int) else int(raw, 8)
    except ValueError:
        raise ConfigError(f"{where}: mode: {raw!r} is not an octal mode such as \"0660\"") from None
    if not 0 <= mode <= 0o777:
        raise ConfigError(f"{where}: mode: {raw!r} is not a permission mode (0-0777)")
    if mode & 0o002:
        raise ConfigError(f"{where}: mode: {oct(mode)} lets every local user connect; name "
                          "an owner or a group instead")
    return ChannelAccess(owner=owner, group=group, mode=mode)


def _channel_tls(data: Any, where: str, base: Path) -> ChannelTlsConfig | None:
    where = f"{where}: channel_tls"
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping with ca, cert, key and client")
    _check_keys(data, {"ca", "cert", "key", "client"}, where)
    paths = _pem_paths(data, where, base)
    client = data.get("client")
    if not isinstance(client, str) or not client.strip():
        raise ConfigError(f"{where}: client: expected the common name or subject alternative "
                          "name the guest's certificate carries")
    return ChannelTlsConfig(ca=paths["ca"], cert=paths["cert"], key=paths["key"],
                      client=client.strip())


def _limits(data: Any, where: str) -> ChannelLimits:
    where = f"{where}: channel_limits"
    if data is None:
        return ChannelLimits()
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping")
    _check_keys(data, {"connections", "watch_streams_per_peer", "max_message_bytes", "workers",
                       "requests_per_second", "request_burst", "bytes_per_second"}, where)
    defaults = ChannelLimits()
    size = data.get("max_message_bytes")
    return ChannelLimits(
        connections=_int(data, "connections", where, 1, 10_000, defaults.connections),
        watch_streams_per_peer=_int(data, "watch_streams_per_peer", where, 1, 100_000,
                                    defaults.watch_streams_per_peer),
        max_message_bytes=None if size is None else _int(data, "max_message_bytes", where,
                                                         1024, MAX_MESSAGE_BYTES),
        workers=_int(data, "workers", where, 1, 64, defaults.workers),
        requests_per_second=_rate(data, "requests_per_second", where,
                                  defaults.requests_per_second),
        request_burst=_int(data, "request_burst", where, 1, 1_000_000,
                           defaults.request_burst),
        bytes_per_second=_int(data, "bytes_per_second", where, 1024, MAX_MESSAGE_BYTES,
                              defaults.bytes_per_second),
    )


def _rate(data: Mapping[str, Any], key: str, where: str, default: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not 0.01 <= value <= 1_000_000:
        raise ConfigError(f"{where}: {key}: {value!r} is not a rate between 0.01 and "
                          "1000000 calls a second")
    return float(value)


def _channel(data: Mapping[str, Any], where: str, base: Path) -> dict[str, Any]:
    """The channel fields of a VNIC, checked against each other."""
    channel = None
    if data.get("channel"):
        try:
            # Remote TCP is allowed here only to be refused below without TLS.
            channel = parse_address(str(data["channel"]), allow_remote=True)
        except ChannelAddressError as exc:
            raise ConfigError(f"{where}: channel: {exc}") from None
    access = _access(data.get("channel_access"), where)
    tls = _channel_tls(data.get("channel_tls"), where, base)
    insecure = data.get("insecure_tcp", False)
    if not isinstance(insecure, bool):
        raise ConfigError(f"{where}: insecure_tcp: expected true or false")
    kind = channel.kind if channel is not None else None
    if "channel_access" in data and kind != "unix":
        raise ConfigError(f"{where}: channel_access is for unix: channels (the socket's "
                          "owner, group and mode)")
    if tls is not None and kind != "tcp":
        raise ConfigError(f"{where}: channel_tls is for tcp: channels")
    if insecure and kind != "tcp":
        raise ConfigError(f"{where}: insecure_tcp is for tcp: channels")
    if channel is not None and kind == "tcp":
        if tls is not None and insecure:
            raise ConfigError(f"{where}: give channel_tls or insecure_tcp, not both")
        if tls is None and not insecure:
            raise ConfigError(
                f"{where}: channel: {channel} is TCP without TLS: any local user could "
                "rewrite this guest's firewall through it; give channel_tls (mutual TLS, "
                "the guest's certificate bound to this VNIC) or, on loopback for tests, "
                "insecure_tcp: true")
        if insecure and not ipaddress.ip_address(channel.host).is_loopback:
            raise ConfigError(f"{where}: insecure_tcp: {channel.host} is not a loopback "
                              "address; a TCP channel beyond loopback needs channel_tls")
    return {"channel": channel, "channel_access": access, "channel_tls": tls,
            "insecure_tcp": insecure, "channel_limits": _limits(data.get("channel_limits"),
                                                                where)}


def _vnic(index: int, data: Any, base: Path) -> VnicConfig:
    where = f"vnics[{index}]"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: name is required")
    where = f'{where} "{name}"'
    _check_keys(data, {"name", "id", "guest_port", "uplink_port", "default_policy", "channel",
                       "channel_access", "channel_tls", "insecure_tcp", "channel_limits",
                       "quotas"}, where)
    policy = data.get("default_policy", "deny")
    if policy not in POLICIES:
        raise ConfigError(f"{where}: default_policy: {policy!r} is not one of "
                          f"{', '.join(POLICIES)}")
    channel = _channel(data, where, base)
    quotas_raw = data.get("quotas") or {}
    if not isinstance(quotas_raw, dict):
        raise ConfigError(f"{where}: quotas: expected a mapping")
    _check_keys(quotas_raw, {"flows", "rules", "tracked_connections"}, f"{where}: quotas")
    defaults = QuotaConfig()
    quotas = QuotaConfig(
        flows=_int(quotas_raw, "flows", f"{where}: quotas", 1, 65535, defaults.flows),
        rules=_int(quotas_raw, "rules", f"{where}: quotas", 1, 2**31, defaults.rules),
        tracked_connections=_int(quotas_raw, "tracked_connections", f"{where}: quotas", 1,
                                 2**31, defaults.tracked_connections),
    )
    return VnicConfig(
        name=name,
        id=_int(data, "id", where, 1, 65535),
        guest_port=_int(data, "guest_port", where, 0, 509),
        uplink_port=_int(data, "uplink_port", where, 0, 509),
        default_policy=policy,
        quotas=quotas,
        **channel,
    )


def _state(data: Any, base: Path) -> StateConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("state: expected a mapping")
    _check_keys(data, {"path", "reconcile_interval", "checkpoint_interval"}, "state")
    defaults = StateConfig()
    path = data.get("path", str(defaults.path))
    if not isinstance(path, str) or not path or "\0" in path:
        raise ConfigError(f"state: path: {path!r} is not a file path")
    return StateConfig(
        path=base / path,
        reconcile_interval=_seconds(data, "reconcile_interval", "state",
                                    defaults.reconcile_interval),
        checkpoint_interval=_seconds(data, "checkpoint_interval", "state",
                                     defaults.checkpoint_interval),
    )


def parse_config(data: Any, *, base: Path | None = None) -> HostConfig:
    """A checked HostConfig from parsed YAML/JSON data; relative paths in it are taken from
    ``base`` (the configuration file's directory), else from the current directory."""
    if not isinstance(data, dict):
        raise ConfigError("the host configuration must be a mapping with target and vnics")
    _check_keys(data, {"target", "vnics", "state"}, "host configuration")
    vnics_raw = data.get("vnics") or []
    if not isinstance(vnics_raw, list):
        raise ConfigError("vnics: expected a list")
    folder = (base or Path.cwd()).absolute()
    vnics = tuple(_vnic(i, v, folder) for i, v in enumerate(vnics_raw))
    names: dict[str, int] = {}
    clients: dict[str, str] = {}
    ids: dict[int, str] = {}
    ports: dict[int, str] = {}
    channels: dict[str, str] = {}
    for i, vnic in enumerate(vnics):
        where = f'vnics[{i}] "{vnic.name}"'
        if vnic.name in names:
            raise ConfigError(f"{where}: name is already used by vnics[{names[vnic.name]}]")
        names[vnic.name] = i
        if vnic.id in ids:
            raise ConfigError(f'{where}: id {vnic.id} is already the id of VNIC "{ids[vnic.id]}"')
        ids[vnic.id] = vnic.name
        if vnic.guest_port == vnic.uplink_port:
            raise ConfigError(f"{where}: guest_port and uplink_port are both {vnic.guest_port}")
        for field, port in (("guest_port", vnic.guest_port), ("uplink_port", vnic.uplink_port)):
            if port in ports:
                raise ConfigError(
                    f'{where}: {field}: port {port} already belongs to VNIC "{ports[port]}"'
                )
            ports[port] = vnic.name
        if vnic.channel is not None:
            where_to = _channel_key(vnic.channel)
            if where_to in channels:
                raise ConfigError(f"{where}: channel: {vnic.channel} is already the channel of "
                                  f'VNIC "{channels[where_to]}"; each VNIC needs its own')
            channels[where_to] = vnic.name
        if vnic.channel_tls is not None:
            client = vnic.channel_tls.client
            if client in clients:
                raise ConfigError(f"{where}: channel_tls: client: {client!r} is already the "
                                  f'identity bound to VNIC "{clients[client]}"; one guest '
                                  "identity reaches one VNIC")
            clients[client] = vnic.name
    state = _state(data.get("state"), folder)
    return HostConfig(target=_target(data.get("target"), folder), vnics=vnics, state=state)


def _channel_key(address: ChannelAddress) -> str:
    """What two channels may not share: a socket path, a TCP address, a vsock port."""
    if address.kind == "unix":
        return f"unix:{os.path.abspath(address.path)}"
    if address.kind == "tcp":
        return f"tcp:{address.host}:{address.port}"
    return f"{address.kind}:{address.port}"


def load_config(path: Path) -> HostConfig:
    """Read and check a host configuration file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    try:
        return parse_config(data, base=path.parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
