"""The host configuration: every mistake is named, with its VNIC and field."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from pyoffload.agent.config import (
    ChannelAccess,
    ChannelLimits,
    ConfigError,
    QuotaConfig,
    load_config,
    message_bytes,
    parse_config,
)


def vnic(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "web-1", "id": 1, "guest_port": 1, "uplink_port": 2}
    return {**base, **fields}


def test_a_full_configuration() -> None:
    config = parse_config({
        "target": {"kind": "bmv2", "ports": {"1": "vnet0", 2: "eth1"}, "device_id": 3,
                   "thrift_address": "127.0.0.1:9090"},
        "vnics": [vnic(channel="vsock:3:7001", default_policy="punt",
                       quotas={"rules": 10})],
    })
    assert config.target.ports == {1: "vnet0", 2: "eth1"}
    assert config.target.thrift_address == "127.0.0.1:9090"
    web = config.vnic("web-1")
    assert web.channel is not None and (web.channel.kind, web.channel.cid) == ("vsock", 3)
    assert (web.quotas.rules, web.quotas.flows) == (10, 64)


@pytest.mark.parametrize(("data", "message"), [
    ({"vnics": [vnic(), vnic(id=2, guest_port=3, uplink_port=4)]},
     'vnics[1] "web-1": name is already used by vnics[0]'),
    ({"vnics": [vnic(), vnic(name="db", guest_port=3, uplink_port=4)]},
     'vnics[1] "db": id 1 is already the id of VNIC "web-1"'),
    ({"vnics": [vnic(), vnic(name="db", id=2, guest_port=2, uplink_port=4)]},
     'vnics[1] "db": guest_port: port 2 already belongs to VNIC "web-1"'),
    ({"vnics": [vnic(uplink_port=1)]}, "guest_port and uplink_port are both 1"),
    ({"vnics": [vnic(channel="unix:/run/x.sock"),
                vnic(name="db", id=2, guest_port=3, uplink_port=4,
                     channel="unix:/run/../run/x.sock")]},
     'vnics[1] "db": channel: unix:/run/../run/x.sock is already the channel of VNIC '
     '"web-1"; each VNIC needs its own'),
    ({"vnics": [vnic(id=0)]}, 'vnics[0] "web-1": id: 0 is not a whole number in 1-65535'),
    ({"vnics": [vnic(default_policy="maybe")]}, "default_policy: 'maybe' is not one of"),
    ({"vnics": [vnic(channel="http://x")]}, 'vnics[0] "web-1": channel: bad channel address'),
    ({"vnics": [vnic(quotas={"rule": 5})]}, "quotas: unknown field 'rule'"),
    ({"vnics": [vnic(colour="red")]}, "unknown field 'colour'"),
    ({"target": {"kind": "remote"}, "vnics": []}, "address is required for a remote target"),
    ({"target": {"kind": "tofino"}}, "kind: 'tofino' is not one of embedded, bmv2, remote"),
    ({"target": {"ports": {"x": "eth0"}}}, "ports: 'x' is not a port number"),
    ({"target": {"pipeline": "huge"}}, "pipeline: 'huge' is not one of default, large"),
    ([], "must be a mapping"),
])
def test_mistakes_are_named(data: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert message in str(info.value)


def test_unknown_vnic_lists_the_known_ones() -> None:
    config = parse_config({"vnics": [vnic()]})
    with pytest.raises(ConfigError, match="no VNIC named 'db' \\(configured: web-1\\)"):
        config.vnic("db")


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "host.yaml"
    bad.write_text("vnics: [\n")
    with pytest.raises(ConfigError, match=r"host\.yaml: not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"missing\.yaml"):
        load_config(tmp_path / "missing.yaml")


def test_state_defaults() -> None:
    state = parse_config({}).state
    assert state.path == Path("/var/lib/pyoffload/state.db")
    assert (state.reconcile_interval, state.checkpoint_interval) == (5.0, 1.0)


def test_state_values_and_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = {"state": {"path": "run/state.db", "reconcile_interval": 30,
                      "checkpoint_interval": 0.25}}
    state = parse_config(data, base=tmp_path / "etc").state
    assert state.path == tmp_path / "etc" / "run" / "state.db"
    assert (state.reconcile_interval, state.checkpoint_interval) == (30.0, 0.25)
    assert isinstance(state.reconcile_interval, float)
    monkeypatch.chdir(tmp_path)
    assert parse_config(data).state.path == tmp_path / "run" / "state.db"
    assert parse_config({"state": {"path": "/srv/s.db"}}, base=tmp_path).state.path == Path(
        "/srv/s.db")


def test_state_path_in_a_file_is_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    config = tmp_path / "etc" / "host.yaml"
    config.write_text("state:\n  path: state.db\n  reconcile_interval: 3600\n")
    state = load_config(config).state
    assert state.path == tmp_path / "etc" / "state.db"
    assert state.reconcile_interval == 3600.0


@pytest.mark.parametrize(("state", "message"), [
    ({"reconcile_interval": 0},
     "state: reconcile_interval: 0 is not a number of seconds above 0 and at most 3600"),
    ({"reconcile_interval": -1.5}, "state: reconcile_interval: -1.5 is not a number"),
    ({"reconcile_interval": 3601}, "state: reconcile_interval: 3601 is not a number"),
    ({"reconcile_interval": "5"}, "state: reconcile_interval: '5' is not a number"),
    ({"reconcile_interval": True}, "state: reconcile_interval: True is not a number"),
    ({"checkpoint_interval": 0.0}, "state: checkpoint_interval: 0.0 is not a number"),
    ({"checkpoint_interval": 7200}, "state: checkpoint_interval: 7200 is not a number"),
    ({"checkpoint_interval": None}, "state: checkpoint_interval: None is not a number"),
    ({"path": ""}, "state: path: '' is not a file path"),
    ({"path": 5}, "state: path: 5 is not a file path"),
    ({"path": "a\0b"}, "state: path: 'a\\x00b' is not a file path"),
    ({"file": "x.db"}, "state: unknown field 'file'"),
    ([], "state: expected a mapping"),
])
def test_state_mistakes_are_named(state: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"state": state})
    assert message in str(info.value)


# -- guest channels: who may connect, and limits ----------------------------------------------

TLS = {"ca": "ca.crt", "cert": "server.crt", "key": "server.key", "client": "web-1.guests"}


@pytest.mark.parametrize(("fields", "message"), [
    ({"channel": "tcp:127.0.0.1:7001"},
     'vnics[0] "web-1": channel: tcp:127.0.0.1:7001 is TCP without TLS: any local user could '
     "rewrite this guest's firewall through it; give channel_tls"),
    ({"channel": "tcp:192.0.2.1:7001", "insecure_tcp": True},
     "insecure_tcp: 192.0.2.1 is not a loopback address; a TCP channel beyond loopback needs "
     "channel_tls"),
    ({"channel": "tcp:127.0.0.1:7001", "insecure_tcp": True, "channel_tls": TLS},
     "give channel_tls or insecure_tcp, not both"),
    ({"channel": "unix:/run/w.sock", "channel_tls": TLS}, "channel_tls is for tcp: channels"),
    ({"channel": "unix:/run/w.sock", "insecure_tcp": True}, "insecure_tcp is for tcp: channels"),
    ({"channel": "tcp:127.0.0.1:7001", "insecure_tcp": "yes"},
     "insecure_tcp: expected true or false"),
    ({"channel": "tcp:127.0.0.1:7001", "channel_tls": {**TLS, "client": ""}},
     "channel_tls: client: expected the common name or subject alternative name"),
    ({"channel": "tcp:127.0.0.1:7001", "channel_tls": {**TLS, "key": None}},
     "channel_tls: key: expected the path of a PEM file"),
    ({"channel": "tcp:127.0.0.1:7001", "channel_tls": {**TLS, "crl": "x"}},
     "channel_tls: unknown field 'crl'"),
    ({"channel": "vsock:3:7001", "channel_access": {"mode": "0600"}},
     "channel_access is for unix: channels"),
    ({"channel": "unix:/run/w.sock", "channel_access": {"mode": "0666"}},
     'channel_access: mode: 0o666 lets every local user connect; name an owner or a group'),
    ({"channel": "unix:/run/w.sock", "channel_access": {"mode": "rw"}},
     "channel_access: mode: 'rw' is not an octal mode"),
    ({"channel": "unix:/run/w.sock", "channel_access": {"mode": "01600"}},
     "channel_access: mode: '01600' is not a permission mode"),
    ({"channel": "unix:/run/w.sock", "channel_access": {"owner": "no-such-user-here"}},
     "channel_access: owner: no user named 'no-such-user-here' on this host"),
    ({"channel": "unix:/run/w.sock", "channel_access": {"group": "no-such-group-here"}},
     "channel_access: group: no group named 'no-such-group-here' on this host"),
    ({"channel": "unix:/run/w.sock", "channel_limits": {"watch_streams_per_peer": 0}},
     "channel_limits: watch_streams_per_peer: 0 is not a whole number"),
    ({"channel": "unix:/run/w.sock", "channel_limits": {"max_message_bytes": 10}},
     "channel_limits: max_message_bytes: 10 is not a whole number in 1024-"),
    ({"channel": "unix:/run/w.sock", "channel_limits": {"requests_per_second": 0}},
     "channel_limits: requests_per_second: 0 is not a rate between 0.01 and"),
    ({"channel": "unix:/run/w.sock", "channel_limits": {"requests_per_second": "fast"}},
     "channel_limits: requests_per_second: 'fast' is not a rate"),
    ({"channel": "unix:/run/w.sock", "channel_limits": {"request_burst": 0}},
     "channel_limits: request_burst: 0 is not a whole number"),
])
def test_channel_mistakes_are_named(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"vnics": [vnic(**fields)]})
    assert message in str(info.value)


def test_channel_security_fields(tmp_path: Path) -> None:
    config = parse_config({"vnics": [
        vnic(channel="unix:/run/w.sock",
             channel_access={"owner": "root", "group": 0, "mode": "0660"},
             channel_limits={"watch_streams_per_peer": 100, "workers": 2,
                             "requests_per_second": 5, "request_burst": 9}),
        vnic(name="db", id=2, guest_port=3, uplink_port=4, channel="tcp:192.0.2.1:7002",
             channel_tls=TLS),
        vnic(name="dev", id=3, guest_port=5, uplink_port=6, channel="tcp:[::1]:7003",
             insecure_tcp=True),
    ]}, base=tmp_path)
    web, db, dev = config.vnics
    assert web.channel_access == ChannelAccess(owner=0, group=0, mode=0o660)
    assert web.channel_limits == ChannelLimits(watch_streams_per_peer=100, workers=2,
                                               requests_per_second=5.0, request_burst=9)
    assert db.channel_tls is not None and db.channel_tls.client == "web-1.guests"
    assert db.channel_tls.ca == tmp_path / "ca.crt"  # relative to the configuration
    assert dev.insecure_tcp and dev.channel is not None and dev.channel.host == "::1"
    assert parse_config({"vnics": [vnic(channel="unix:/w.sock")]}).vnics[0].channel_access == (
        ChannelAccess(owner=None, group=None, mode=0o600))


def test_one_guest_identity_reaches_one_vnic() -> None:
    with pytest.raises(ConfigError, match=re.escape(
            """'web-1.guests' is already the identity bound to VNIC "web-1"; one guest """
            "identity reaches one VNIC")):
        parse_config({"vnics": [
            vnic(channel="tcp:127.0.0.1:7001", channel_tls=TLS),
            vnic(name="db", id=2, guest_port=3, uplink_port=4, channel="tcp:127.0.0.1:7002",
                 channel_tls=TLS),
        ]})


def test_message_size_limit_follows_the_quotas() -> None:
    default = message_bytes(ChannelLimits(), QuotaConfig())
    assert default == 64 * 1024 + 64 * 1024 + 1024 * 2048  # about 2.1 MiB
    assert message_bytes(ChannelLimits(), QuotaConfig(rules=20000)) > 40_000_000
    assert message_bytes(ChannelLimits(max_message_bytes=5000), QuotaConfig()) == 5000
    assert message_bytes(ChannelLimits(), QuotaConfig(rules=2**31)) == 2**31 - 1
