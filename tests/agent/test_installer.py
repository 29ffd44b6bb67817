"""All or nothing: a refused update undoes everything the apply wrote."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterable
from pathlib import Path

import grpc
import pytest
from finsy import P4Schema, P4TableEntry
from finsy.proto import p4r

from pyoffload.agent import Agent, AgentError
from pyoffload.agent.config import parse_config
from pyoffload.agent.installer import WILDCARD_FACTOR, Installer, InstallError
from pyoffload.compiler import CompiledRequest, ResourcePool, VnicTarget, compile_request
from pyoffload.p4runtime import P4RuntimeClient, UpdateType
from pyoffload.p4runtime.entities import EntityKey, entity_key
from pyoffload.pipeline import names
from pyoffload.pipeline.artifacts import Artifacts, load_constants
from pyoffload.rules import (
    Flow,
    FlowConfig,
    FlowMatch,
    OffloadRequest,
    PortRange,
    Rule,
    RuleMatch,
    Verdict,
    load_file,
)
from pyoffload.targets import RunningTarget

EXAMPLES = Path(__file__).resolve().parents[2] / "pyoffload" / "examples"
ARTIFACTS = Artifacts.packaged()


def count(client: P4RuntimeClient, schema: P4Schema, table: str) -> int:
    return len(client.read([P4TableEntry(table).encode(schema)]))


def web_server() -> CompiledRequest:
    return compile_request(load_file(EXAMPLES / "stateful-web-server.yaml"),
                           VnicTarget(name="v", vnic_id=1), load_constants(), ResourcePool())


def assert_nothing_installed(client: P4RuntimeClient, schema: P4Schema,
                             installer: Installer, foreign_acl: int = 0) -> None:
    assert count(client, schema, names.ACL) == foreign_acl
    assert count(client, schema, names.FLOW_CLASSIFIER) == 0
    assert count(client, schema, names.FLOW_CONFIG) == 0
    assert count(client, schema, names.CT_TIMEOUT) == 0
    assert installer.installed("v") == []


@pytest.mark.parametrize("batch_size", [1000, 2])
def test_refused_update_rolls_back_the_whole_apply(target: RunningTarget,
                                                   batch_size: int) -> None:
    with P4RuntimeClient(target.grpc_address, device_id=target.device_id) as client:
        schema = client.set_pipeline(ARTIFACTS.p4info, ARTIFACTS.bmv2_json)
        compiled = web_server()
        # Batches of 2: several are applied (and read back) before the refused one.
        installer = Installer(client=client, schema=schema, batch_size=batch_size)
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
        assert [e.SerializeToString() for e in info.value.failed] == [clash.SerializeToString()]
        # Only the foreign entry is left; nothing of ours stayed behind.
        assert_nothing_installed(client, schema, installer, foreign_acl=1)
        client.write_entities(UpdateType.DELETE, [clash])


class LosingClient(P4RuntimeClient):
    """A target that acknowledges every write but never reads back the ``lost`` ones
    (and a record of the reads)."""

    def __init__(self, address: str, device_id: int) -> None:
        super().__init__(address, device_id=device_id)
        self.lost: set[EntityKey] = set()
        self.reads: list[list[p4r.Entity]] = []
        """What was read, one list per request."""

    def read_async(self, entities: Iterable[p4r.Entity]
                   ) -> concurrent.futures.Future[list[p4r.Entity]]:
        entities = list(entities)
        self.reads.append(entities)
        answer = super().read_async(entities)
        lossy: concurrent.futures.Future[list[p4r.Entity]] = concurrent.futures.Future()
        answer.add_done_callback(lambda done: lossy.set_result(
            [e for e in done.result() if entity_key(e) not in self.lost]))
        return lossy


@pytest.mark.parametrize("wildcard_factor", [WILDCARD_FACTOR, 0], ids=["wildcard", "by-key"])
@pytest.mark.parametrize("batch_size", [1000, 3])
def test_an_entry_missing_on_read_back_undoes_the_apply(
        target: RunningTarget, batch_size: int, wildcard_factor: int) -> None:
    client = LosingClient(target.grpc_address, device_id=target.device_id)
    with client:
        schema = client.set_pipeline(ARTIFACTS.p4info, ARTIFACTS.bmv2_json)
        installer = Installer(client=client, schema=schema, batch_size=batch_size,
                              wildcard_factor=wildcard_factor)
        entities = compile_request(load_file(EXAMPLES / "load-balancer.json"),
                                   VnicTarget(name="v", vnic_id=1), load_constants(),
                                   ResourcePool()).entities
        encoded = installer.encode(entities)
        # One table entry and one selector member are acknowledged, then lost.
        client.lost = {entity_key(next(e for e in reversed(encoded)
                                       if e.WhichOneof("entity") == "table_entry")),
                       entity_key(next(e for e in encoded
                                       if e.WhichOneof("entity") == "action_profile_member"))}
        with pytest.raises(InstallError) as info:
            installer.install("v", entities)
        assert "2 written entities did not read back" in str(info.value)
        assert {entity_key(e) for e in info.value.failed} == client.lost
        assert_nothing_installed(client, schema, installer)
        # Once the target keeps them, the same apply goes through.
        client.lost = set()
        assert installer.install("v", entities).inserted == len(entities)


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


def allow_ports(vnic_id: int, ports: int) -> CompiledRequest:
    flow = Flow(id="f", config=FlowConfig(default_verdict=Verdict.DENY),
                match=FlowMatch(protocol=6),
                rules=tuple(Rule(id=f"r{p}", match=RuleMatch(dst_ports=PortRange.single(p + 1)),
                                 action=Verdict.ALLOW) for p in range(ports)))
    return compile_request(OffloadRequest(flows=(flow,)), VnicTarget(name=f"v{vnic_id}",
                           vnic_id=vnic_id), load_constants(), ResourcePool())


def test_a_table_mostly_written_is_read_back_whole_else_by_key(target: RunningTarget) -> None:
    client = LosingClient(target.grpc_address, device_id=target.device_id)
    with client:
        schema = client.set_pipeline(ARTIFACTS.p4info, ARTIFACTS.bmv2_json)
        installer = Installer(client=client, schema=schema)
        acl = schema.tables[names.ACL].id

        def acl_reads(vnic: str, compiled: CompiledRequest) -> list[int]:
            client.reads = []
            installer.install(vnic, compiled.entities)
            return [len(e.table_entry.match) for read in client.reads for e in read
                    if e.table_entry.table_id == acl]

        # The first VNIC's 100 rules are the whole ACL: one wildcard read (no match).
        assert acl_reads("a", allow_ports(1, 100)) == [0]
        # Five more rules of another VNIC are a small share: read by key.
        assert acl_reads("b", allow_ports(2, 5)) == [3] * 5
        # Only what an apply writes counts: one rule more is one entry, read by key.
        installer.install("a", [])
        assert acl_reads("b", allow_ports(2, 6)) == [3]
        # With the table empty again, a new VNIC's rules are all of it.
        installer.install("b", [])
        assert acl_reads("c", allow_ports(3, 5)) == [0]


class UnreadableClient(P4RuntimeClient):
    """A target whose reads fail with something other than a P4Runtime error."""

    def read_async(self, entities: Iterable[p4r.Entity]
                   ) -> concurrent.futures.Future[list[p4r.Entity]]:
        raise RuntimeError("cannot schedule new futures after shutdown")


def test_a_read_back_that_cannot_even_start_undoes_the_apply(target: RunningTarget) -> None:
    client = UnreadableClient(target.grpc_address, device_id=target.device_id)
    with client:
        schema = client.set_pipeline(ARTIFACTS.p4info, ARTIFACTS.bmv2_json)
        installer = Installer(client=client, schema=schema)
        with pytest.raises(RuntimeError):
            installer.install("v", web_server().entities)
        assert_nothing_installed(client, schema, installer)
