"""The offload path end to end: guest shim -> channel -> agent -> P4Runtime -> target.

Every test runs the real embedded target in its own process, the real agent,
and the guest channel on a real Unix socket or TCP loopback.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import attrs
import grpc
import pytest
from finsy import P4Schema, P4TableEntry
from finsy.proto import p4r, p4r_grpc
from google.protobuf.message import DecodeError
from guest_shim.client import Channel
from guest_shim.errors import GuestShimError

from guest_shim import offload_pb2 as pb
from pyoffload.agent import Agent
from pyoffload.agent.channel import serve_channel
from pyoffload.agent.config import parse_config
from pyoffload.pipeline import names
from pyoffload.pipeline.artifacts import Artifacts
from pyoffload.rules import load_file
from pyoffload.targets import RunningTarget

EXAMPLES = Path(__file__).resolve().parents[2] / "pyoffload" / "examples"


def host_config(tmp_path: Path, **quotas: int) -> dict[str, object]:
    return {
        "target": {"kind": "remote", "address": "127.0.0.1:1"},
        "vnics": [
            {"name": "web-1", "id": 1, "guest_port": 1, "uplink_port": 2,
             "channel": f"unix:{tmp_path}/web-1.sock", "quotas": quotas or {}},
            {"name": "db-1", "id": 2, "guest_port": 3, "uplink_port": 4,
             "channel": f"unix:{tmp_path}/db-1.sock"},
        ],
    }


@pytest.fixture
def agent(target: RunningTarget, tmp_path: Path) -> Iterator[Agent]:
    config = parse_config(host_config(tmp_path, rules=8))
    running = Agent(config, target.grpc_address, device_id=target.device_id).start()
    servers = [serve_channel(running, v.name, v.channel) for v in config.vnics if v.channel]
    yield running
    for server in servers:
        server.stop(None)
    running.stop()


def read_table(target: RunningTarget, table: str) -> list[P4TableEntry]:
    """Everything the target holds in ``table``: a Read needs no stream, so it is read
    without arbitrating (a second controller would take primary from the agent)."""
    schema = P4Schema(Artifacts.packaged().p4info)
    with grpc.insecure_channel(target.grpc_address) as channel:
        request = p4r.ReadRequest(device_id=target.device_id,
                                  entities=[P4TableEntry(table).encode(schema)])
        replies = p4r_grpc.P4RuntimeStub(channel).Read(request, timeout=30)
        return [P4TableEntry.decode(e, schema) for reply in replies for e in reply.entities]


def web_request() -> pb.OffloadRequest:
    from pyoffload.rules import to_proto

    return to_proto(load_file(EXAMPLES / "stateful-web-server.yaml"))


def test_apply_installs_the_whole_rule_set(agent: Agent, target: RunningTarget,
                                           tmp_path: Path) -> None:
    with Channel(f"unix:{tmp_path}/web-1.sock") as guest:
        reply = guest.apply(web_request())
        assert reply.generation == 1
        installed = guest.get()
    assert installed.generation == 1
    assert [f.id for f in installed.flows] == ["web-in", "dns-out"]
    acl = read_table(target, names.ACL)
    assert len(acl) == 3
    assert {e.match["vnic_id"] for e in acl if e.match} == {1}
    classifier = read_table(target, names.FLOW_CLASSIFIER)
    assert len(classifier) == 2
    port_map = read_table(target, names.PORT_MAP)
    assert len(port_map) == 4  # two VNICs, two ports each


def test_reapply_is_idempotent_and_withdraw_removes(agent: Agent, target: RunningTarget,
                                                    tmp_path: Path) -> None:
    request = web_request()
    request.generation = 0
    first = agent.apply("web-1", load_file(EXAMPLES / "stateful-web-server.yaml"))
    assert first.inserted > 0
    from pyoffload.rules import from_proto

    again = agent.apply("web-1", from_proto(request))
    assert (again.inserted, again.modified, again.deleted) == (0, 0, 0)
    assert again.generation == 2
    with Channel(f"unix:{tmp_path}/web-1.sock") as guest:
        reply = guest.withdraw(["web-in"])
    assert list(reply.withdrawn) == ["web-in"]
    assert len(read_table(target, names.ACL)) == 0
    assert len(read_table(target, names.FLOW_CLASSIFIER)) == 1


def test_bad_request_names_the_rule_and_changes_nothing(agent: Agent, target: RunningTarget,
                                                        tmp_path: Path) -> None:
    with Channel(f"unix:{tmp_path}/web-1.sock") as guest:
        guest.apply(web_request())
        bad = web_request()
        bad.generation = 2
        bad.flows[0].rules[0].match.dst_ports.lo = 90  # lo > hi
        bad.flows[0].rules[0].match.dst_ports.hi = 70
        with pytest.raises(GuestShimError) as info:
            guest.apply(bad)
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "web-in" in str(info.value) and "http" in str(info.value)
        assert guest.get().generation == 1
    assert len(read_table(target, names.ACL)) == 3


def test_a_guest_cannot_name_another_vnic(agent: Agent, tmp_path: Path) -> None:
    request = web_request()
    request.vnic = "db-1"
    with Channel(f"unix:{tmp_path}/web-1.sock") as guest, pytest.raises(GuestShimError) as info:
        guest.apply(request)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert agent.state("db-1").generation == 0


def test_stale_generation_loses(agent: Agent, tmp_path: Path) -> None:
    with Channel(f"unix:{tmp_path}/web-1.sock") as guest:
        request = web_request()
        request.generation = 5
        assert guest.apply(request).generation == 5
        request.generation = 4
        with pytest.raises(GuestShimError) as info:
            guest.apply(request)
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "stale" in str(info.value)


def test_quota_is_resource_exhausted(agent: Agent, target: RunningTarget,
                                     tmp_path: Path) -> None:
    request = web_request()  # 3 rules; the VNIC's quota is 8
    for i in range(6):
        extra = request.flows[1].rules.add()
        extra.id = f"extra-{i}"
        extra.verdict = pb.VERDICT_ALLOW
    with Channel(f"unix:{tmp_path}/web-1.sock") as guest, pytest.raises(GuestShimError) as info:
        guest.apply(request)
    assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "9 rules" in str(info.value) and "quota is 8" in str(info.value)
    assert read_table(target, names.ACL) == []


def test_watch_reports_applied_generations(agent: Agent, tmp_path: Path) -> None:
    with Channel(f"unix:{tmp_path}/web-1.sock") as guest:
        stream = guest.watch()
        applied = threading.Event()

        def apply_until_seen() -> None:
            # The subscription starts when the server runs the call: apply
            # until the watcher has seen one (bounded).
            for _ in range(50):
                agent.apply("web-1", load_file(EXAMPLES / "stateful-web-server.yaml")
                            .__class__(flows=()))
                if applied.wait(0.2):
                    return

        thread = threading.Thread(target=apply_until_seen, daemon=True)
        thread.start()
        event = next(iter(stream))
        applied.set()
        thread.join(10)
    assert event.kind == pb.Event.KIND_GENERATION_APPLIED
    assert event.generation >= 1


def test_target_restart_reinstalls(tmp_path: Path) -> None:
    from pyoffload.targets import start_target

    out = tmp_path / "t1.log"
    first = start_target("embedded", {}, output=out)
    address = first.grpc_address
    config = parse_config(host_config(tmp_path))
    agent = Agent(config, address, device_id=first.device_id, backoff=(0.05, 0.5)).start()
    try:
        agent.apply("web-1", load_file(EXAMPLES / "stateful-web-server.yaml"))
        first.stop()
        second = start_target("embedded", {}, output=tmp_path / "t2.log", grpc_address=address)
        try:
            for _ in range(100):
                if agent.target_status().reconnects:
                    break
                threading.Event().wait(0.1)
            assert agent.target_status().reconnects == 1
            assert len(read_table(second, names.ACL)) == 3
            assert len(read_table(second, names.PORT_MAP)) == 4
        finally:
            second.stop()
    finally:
        agent.stop()


def test_tcp_loopback_channel(target: RunningTarget, tmp_path: Path) -> None:
    from pyoffload.targets import free_tcp_port

    port = free_tcp_port()
    data = host_config(tmp_path)
    data["vnics"][0]["channel"] = f"tcp:127.0.0.1:{port}"  # type: ignore[index]
    data["vnics"][0]["insecure_tcp"] = True  # type: ignore[index]
    config = parse_config(data)
    agent = Agent(config, target.grpc_address, device_id=target.device_id).start()
    server = serve_channel(agent, "web-1", config.vnic("web-1").channel)  # type: ignore[arg-type]
    try:
        with Channel(f"tcp:127.0.0.1:{port}") as guest:
            assert guest.apply(web_request()).generation == 1
            stats = guest.stats()
        assert {f.flow_id for f in stats.flows} == {"web-in", "dns-out"}
    finally:
        server.stop(None)
        agent.stop()


def test_deadlines_expiring_anywhere_in_an_apply_are_honoured(
        agent: Agent, target: RunningTarget, tmp_path: Path) -> None:
    """Guests give up (their deadline passes) at random points of 500-rule applies: what
    each was told is what is in force on the target, read back, never the other way."""
    seed = int(os.environ.get("PYOFFLOAD_DEADLINE_SEED", random.randrange(2**32)))
    print(f"deadline seed {seed} (PYOFFLOAD_DEADLINE_SEED replays it)")
    rng = random.Random(seed)
    state = agent.state("web-1")  # the fixture allows 8 rules: raise it for this test
    agent._vnics["web-1"] = attrs.evolve(state, config=attrs.evolve(
        state.config, quotas=attrs.evolve(state.config.quotas, rules=1000)))
    in_force = (0, 0)  # (generation, ACL entries) the guest was last told of
    told = {"ok": 0, "deadline": 0}
    for round_ in range(16):
        request = web_request()
        request.generation = 0  # the next one
        flow = request.flows[1]
        count = rng.choice((100, 300, 500))
        for i in range(count):
            rule = flow.rules.add(id=f"r{i}", verdict=pb.VERDICT_ALLOW)
            rule.match.dst_ports.lo = rule.match.dst_ports.hi = 1000 + i + round_
        timeout = 0.002 * 150 ** rng.random()  # 2 ms to 300 ms: before, during, after
        with Channel(f"unix:{tmp_path}/web-1.sock", timeout=timeout) as guest:
            try:
                reply = guest.apply(request)
            except GuestShimError as exc:
                assert exc.code == grpc.StatusCode.DEADLINE_EXCEEDED, exc
                told["deadline"] += 1
            else:
                told["ok"] += 1
                in_force = (reply.generation, count + 3)
        with agent._vnic_lock("web-1"):  # the agent has finished with the request
            pass
        assert (agent.state("web-1").generation, len(read_table(target, names.ACL))) == in_force
    print(f"told: {told}")


def test_garbage_that_decodes_by_luck_changes_nothing(agent: Agent, target: RunningTarget,
                                                      tmp_path: Path) -> None:
    """Random bytes can parse as an (empty) apply request; applied, it would withdraw every
    rule. Bodies with fields the protocol does not have, or with no request, are refused."""
    address = f"unix:{tmp_path}/web-1.sock"
    with Channel(address) as guest:
        assert guest.apply(web_request()).generation == 1
    before = len(read_table(target, names.ACL))
    lucky = b""
    rng = random.Random(1)
    for _ in range(3000):  # the first random body that parses (seeded: found at once)
        candidate = rng.randbytes(rng.randrange(1, 4000))
        try:
            pb.ApplyRequest.FromString(candidate)
        except DecodeError:  # most random bytes do not parse
            continue
        lucky = candidate
        break
    assert lucky, "no random body parsed"
    with grpc.insecure_channel(address) as channel:
        raw = channel.unary_unary("/pyoffload.guest.v1.OffloadChannel/Apply",
                                  request_serializer=None, response_deserializer=None)
        for body in (lucky, pb.ApplyRequest().SerializeToString()):
            with pytest.raises(grpc.RpcError) as info:
                raw(body, timeout=10)
            error = cast(grpc.Call, info.value)
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
            assert "nothing was installed" in (error.details() or "")
    assert agent.state("web-1").generation == 1
    assert len(read_table(target, names.ACL)) == before


def test_what_a_guest_sends_is_echoed_short_and_an_empty_withdraw_is_refused(
        agent: Agent, target: RunningTarget, tmp_path: Path) -> None:
    """A 9,000-character flow id, named 3,000 times, made the agent's answer 18 KB: the
    guest got gRPC's "metadata size exceeds hard limit" instead of it. Ids are shown
    short and escaped, and an answer is bounded. A withdraw that names no flow changed
    nothing but a new generation; it is refused."""
    address = f"unix:{tmp_path}/web-1.sock"
    with Channel(address) as guest:
        assert guest.apply(web_request()).generation == 1
    long_id = "x" * 9000
    request = pb.OffloadRequest(flows=[pb.Flow(id=long_id) for _ in range(3)])
    odd = pb.OffloadRequest(flows=[pb.Flow(id="a\x00b\nWARNING forged")])
    with grpc.insecure_channel(address) as channel:
        raw = channel.unary_unary("/pyoffload.guest.v1.OffloadChannel/Apply",
                                  request_serializer=None, response_deserializer=None)
        withdraw = channel.unary_unary("/pyoffload.guest.v1.OffloadChannel/Withdraw",
                                       request_serializer=None, response_deserializer=None)
        answers = []
        for call, body in ((raw, pb.ApplyRequest(request=request)),
                           (raw, pb.ApplyRequest(request=odd)),
                           (withdraw, pb.WithdrawRequest()),
                           (withdraw, pb.WithdrawRequest(flow_ids=["é" * 20000]))):
            with pytest.raises(grpc.RpcError) as info:
                call(body.SerializeToString(), timeout=10)
            error = cast(grpc.Call, info.value)
            answers.append((error.code(), error.details() or ""))
    (long_code, long_said), (odd_code, odd_said), (empty_code, empty_said), \
        (unknown_code, unknown_said) = answers
    # (it was 20,000 characters, 60 KB as sent: gRPC refused to deliver it)
    assert (unknown_code, unknown_said) == (
        grpc.StatusCode.NOT_FOUND, f'VNIC web-1 has no flow "{"é" * 80}…" (20000 characters)')
    assert long_code == grpc.StatusCode.INVALID_ARGUMENT, long_said
    assert long_said.startswith(f'flow "{"x" * 80}…" (9000 characters): ')
    assert len(long_said.encode()) < 4000
    assert odd_code == grpc.StatusCode.INVALID_ARGUMENT
    assert odd_said.startswith('flow "a\\x00b\\nWARNING forged": '), odd_said
    assert empty_code == grpc.StatusCode.INVALID_ARGUMENT
    assert empty_said == ("VNIC web-1: the withdraw names no flow; name the flows to withdraw, "
                          "or withdraw all of them; nothing was withdrawn")
    assert agent.state("web-1").generation == 1
