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
        channel: unix:/run/pyoffload/web-1.sock   # or tcp:127.0.0.1:7001, vsock:3:7001
        quotas: {flows: 64, rules: 1024, tracked_connections: 65536}
    state:                      # the agent's durable desired state (optional)
      path: /var/lib/pyoffload/state.db   # relative: to this file's directory
      reconcile_interval: 5.0   # seconds between read-backs of the target, (0, 3600]
      checkpoint_interval: 1.0  # seconds between connection checkpoints, (0, 3600]

Errors name the VNIC and the field, e.g. ``vnics[1] "db": guest_port: port 3
is already the guest port of VNIC "web-1"``.
"""

from __future__ import annotations

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


class ConfigError(PyoffloadError):
    """The host configuration is wrong; the message says where and why."""


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
    quotas: QuotaConfig = attrs.field(factory=QuotaConfig)
    """Per-VNIC limits."""


@attrs.frozen(kw_only=True)
class TlsConfig:
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
        blobs = []
        for label, path in (("ca", self.ca), ("cert", self.cert), ("key", self.key)):
            try:
                blobs.append(path.read_bytes())
            except OSError as exc:
                raise ConfigError(f"target: tls: {label}: cannot read {path}: "
                                  f"{exc.strerror}") from None
        return grpc.ssl_channel_credentials(root_certificates=blobs[0], certificate_chain=blobs[1],
                                            private_key=blobs[2])


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
    tls: TlsConfig | None = None
    """Mutual TLS to the target's P4Runtime server (a TCP address); None: a Unix socket
    (whose permissions say who may connect) or, on loopback, an unauthenticated port."""
    pipeline: str = "default"
    """Which committed build of the VNIC program: ``default`` (p4src/build) or a variant
    of ``pyoffload.pipeline.artifacts.VARIANTS`` (``large``: a million connections)."""


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


def _tls(data: Any, base: Path) -> TlsConfig | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ConfigError("target: tls: expected a mapping with ca, cert and key")
    _check_keys(data, {"ca", "cert", "key", "server_name"}, "target: tls")
    paths = {}
    for field in ("ca", "cert", "key"):
        value = data.get(field)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"target: tls: {field}: expected the path of a PEM file")
        paths[field] = base / value
    server_name = data.get("server_name")
    if server_name is not None and not isinstance(server_name, str):
        raise ConfigError("target: tls: server_name: expected a host name")
    return TlsConfig(ca=paths["ca"], cert=paths["cert"], key=paths["key"],
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


def _vnic(index: int, data: Any) -> VnicConfig:
    where = f"vnics[{index}]"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: name is required")
    where = f'{where} "{name}"'
    _check_keys(data, {"name", "id", "guest_port", "uplink_port", "default_policy", "channel",
                       "quotas"}, where)
    policy = data.get("default_policy", "deny")
    if policy not in POLICIES:
        raise ConfigError(f"{where}: default_policy: {policy!r} is not one of "
                          f"{', '.join(POLICIES)}")
    channel = None
    if data.get("channel"):
        try:
            channel = parse_address(str(data["channel"]))
        except ChannelAddressError as exc:
            raise ConfigError(f"{where}: channel: {exc}") from None
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
        channel=channel,
        quotas=quotas,
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
    vnics = tuple(_vnic(i, v) for i, v in enumerate(vnics_raw))
    names: dict[str, int] = {}
    ids: dict[int, str] = {}
    ports: dict[int, str] = {}
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
    folder = (base or Path.cwd()).absolute()
    state = _state(data.get("state"), folder)
    return HostConfig(target=_target(data.get("target"), folder), vnics=vnics, state=state)


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
