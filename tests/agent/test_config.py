"""The host configuration: every mistake is named, with its VNIC and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pyoffload.agent.config import ConfigError, load_config, parse_config


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
