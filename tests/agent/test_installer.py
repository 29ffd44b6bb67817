"""All or nothing: a refused update undoes everything the apply wrote."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from finsy import P4Schema, P4TableEntry

from bmv2_env.targets import RunningTarget
from pyoffload.agent import Agent, AgentError
from pyoffload.agent.config import parse_config
from pyoffload.agent.installer import Installer, InstallError
from pyoffload.compiler import ResourcePool, VnicTarget, compile_request, names
from pyoffload.p4artifacts import Artifacts, load_constants
from pyoffload.p4runtime import P4RuntimeClient, UpdateType
from pyoffload.rules import (
    Flow,
    FlowConfig,
    FlowMatch,
    OffloadRequest,
    PortRange,
    Verdict,
    load_file,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ARTIFACTS = Artifacts.in_dir()


def count(client: P4RuntimeClient, schema: P4Schema, table: str) -> int:
    return len(client.read([P4TableEntry(table).encode(schema)]))


def test_refused_update_rolls_back_the_whole_apply(target: RunningTarget) -> None:
    with P4RuntimeClient(target.grpc_address, device_id=target.device_id) as client:
        schema = client.set_pipeline(ARTIFACTS.p4info, ARTIFACTS.bmv2_json)
        compiled = compile_request(load_file(EXAMPLES / "stateful-web-server.yaml"),
                                   VnicTarget(name="v", vnic_id=1), load_constants(),
                                   ResourcePool())
        installer = Installer(client=client, schema=schema)
        desired = installer.encode(compiled.entities)
        # Someone else already holds the key of the last ACL entry: its insert fails.
        clash = next(e for e in reversed(desired)
                     if e.table_entry.table_id == schema.tables[names.ACL].id)
        client.write_entities(UpdateType.INSERT, [clash])
        with pytest.raises(InstallError) as info:
            installer.apply("v", desired)
        assert info.value.error is not None
        assert any(d.code == grpc.StatusCode.ALREADY_EXISTS
                   for d in info.value.error.details.values())
        assert "undone" in str(info.value)
        # Only the foreign entry is left; nothing of ours stayed behind.
        assert count(client, schema, names.ACL) == 1
        assert count(client, schema, names.FLOW_CLASSIFIER) == 0
        assert count(client, schema, names.CT_TIMEOUT) == 0
        assert installer.installed("v") == []


def test_request_larger_than_a_table_is_refused_before_writing(
        target: RunningTarget, tmp_path: Path) -> None:
    config = parse_config({
        "target": {"kind": "remote", "address": "unused"},
        "vnics": [{"name": "big", "id": 1, "guest_port": 1, "uplink_port": 2,
                   "quotas": {"flows": 65535}}],
    })
    agent = Agent(config, target.grpc_address, device_id=target.device_id,
                  reconnect=False).start()
    try:
        size = agent._size(names.FLOW_CLASSIFIER, "table")
        flows = tuple(
            Flow(id=f"f{i}", config=FlowConfig(default_verdict=Verdict.ALLOW),
                 match=FlowMatch(protocol=6, dst_ports=PortRange.single(i + 1)))
            for i in range(size + 1)
        )
        with pytest.raises(AgentError) as info:
            agent.apply("big", OffloadRequest(flows=flows))
        assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"{names.FLOW_CLASSIFIER} needs {size + 1} entries" in info.value.message
        assert agent.state("big").generation == 0
        schema = agent.schema
        assert agent.with_client(lambda c: count(c, schema, names.FLOW_CLASSIFIER)) == 0
    finally:
        agent.stop()
