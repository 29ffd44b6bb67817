"""The client and the CLI against a real gRPC server, on a Unix socket and TCP.

The servicer here records what it receives and answers canned replies: it
stands in for the agent (which serves the channel for real) only in tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from guest_shim.cli import main
from guest_shim.service import add_servicer

from guest_shim import GuestShimError, connect, parse_file
from guest_shim import offload_pb2 as pb

EXAMPLES = Path(__file__).resolve().parents[2] / "pyoffload" / "examples"
SHIM_CLI = Path(sys.executable).parent / "guest-shim"


class RecordingServicer:
    """Records requests; answers with canned replies; refuses VNIC "full"."""

    def __init__(self) -> None:
        self.applied: list[pb.OffloadRequest] = []
        self.withdrawn: list[pb.WithdrawRequest] = []
        self.installed = pb.OffloadRequest(vnic="web-1", generation=0)

    def Apply(self, request: pb.ApplyRequest, context: grpc.ServicerContext) -> pb.ApplyReply:
        if request.request.vnic == "full":
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "rules quota reached (limit 2)")
        self.applied.append(request.request)
        self.installed.CopyFrom(request.request)
        self.installed.generation = request.request.generation or 1
        results = [
            pb.RuleResult(flow_id=flow.id, rule_id=rule.id, installed=True)
            for flow in request.request.flows
            for rule in flow.rules
        ]
        return pb.ApplyReply(generation=self.installed.generation, results=results)

    def Withdraw(
        self, request: pb.WithdrawRequest, context: grpc.ServicerContext
    ) -> pb.WithdrawReply:
        self.withdrawn.append(request)
        ids = [flow.id for flow in self.installed.flows] if request.all else request.flow_ids
        return pb.WithdrawReply(generation=self.installed.generation + 1, withdrawn=ids)

    def Get(self, request: pb.GetRequest, context: grpc.ServicerContext) -> pb.GetReply:
        return pb.GetReply(request=self.installed)

    def Stats(self, request: pb.StatsRequest, context: grpc.ServicerContext) -> pb.StatsReply:
        return pb.StatsReply(
            generation=self.installed.generation,
            tracked_connections=12,
            flows=[
                pb.FlowStats(
                    flow_id="web-in",
                    counter=pb.Counter(packets=10, bytes=1500),
                    rules=[pb.RuleStats(rule_id="http", counter=pb.Counter(packets=4, bytes=240))],
                )
            ],
            quotas=[pb.QuotaUse(name="tracked_connections", used=12, limit=1000)],
        )

    def Watch(self, request: pb.WatchRequest, context: grpc.ServicerContext) -> Iterator[pb.Event]:
        yield pb.Event(kind=pb.Event.KIND_GENERATION_APPLIED, generation=1)
        yield pb.Event(
            kind=pb.Event.KIND_QUOTA_REACHED, quota="tracked_connections", message="1000 of 1000"
        )


@pytest.fixture(params=["unix", "tcp"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, RecordingServicer]]:
    """A real gRPC server with the recording servicer; yields (address, servicer)."""
    servicer = RecordingServicer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    add_servicer(server, servicer)
    with tempfile.TemporaryDirectory(prefix="shim") as tmp:
        if request.param == "unix":
            address = f"unix:{tmp}/vnic.sock"
            server.add_insecure_port(address)
        else:
            port = server.add_insecure_port("127.0.0.1:0")
            address = f"tcp:127.0.0.1:{port}"
        server.start()
        try:
            yield address, servicer
        finally:
            server.stop(grace=None)


def test_apply_file_and_request(served: tuple[str, RecordingServicer]) -> None:
    address, servicer = served
    with connect(address) as channel:
        reply = channel.apply(EXAMPLES / "stateful-web-server.yaml")
        assert reply.generation == 1
        assert [r.rule_id for r in reply.results] == ["http", "https", "stray"]
        assert servicer.applied[0] == parse_file(EXAMPLES / "stateful-web-server.yaml")
        channel.apply(pb.OffloadRequest(vnic="web-1", generation=5))
        assert channel.get().generation == 5


def test_withdraw_get_stats_watch(served: tuple[str, RecordingServicer]) -> None:
    address, servicer = served
    with connect(address) as channel:
        channel.apply(EXAMPLES / "snat.yaml")
        assert list(channel.withdraw(all_flows=True).withdrawn) == ["egress"]
        assert list(channel.withdraw(["a", "b"]).withdrawn) == ["a", "b"]
        assert servicer.withdrawn[0].all and list(servicer.withdrawn[1].flow_ids) == ["a", "b"]
        assert channel.get().flows[0].id == "egress"
        stats = channel.stats()
        assert stats.tracked_connections == 12 and stats.flows[0].rules[0].counter.packets == 4
        kinds = [event.kind for event in channel.watch()]
        assert kinds == [pb.Event.KIND_GENERATION_APPLIED, pb.Event.KIND_QUOTA_REACHED]


def test_withdraw_needs_flows_or_all(served: tuple[str, RecordingServicer]) -> None:
    with connect(served[0]) as channel, pytest.raises(GuestShimError, match="not both"):
        channel.withdraw(["a"], all_flows=True)


def test_refusal_carries_the_status(served: tuple[str, RecordingServicer]) -> None:
    with connect(served[0]) as channel, pytest.raises(GuestShimError) as info:
        channel.apply(pb.OffloadRequest(vnic="full"))
    assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert str(info.value) == "apply: RESOURCE_EXHAUSTED: rules quota reached (limit 2)"


def test_unreachable_channel(tmp_path: Path) -> None:
    with (
        connect(f"unix:{tmp_path}/absent.sock", timeout=5) as channel,
        pytest.raises(GuestShimError) as info,
    ):
        channel.get()
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert "cannot reach the VNIC channel at unix:" in str(info.value)


SLOW_AGENT = """
import sys, time
from concurrent import futures
import grpc
from guest_shim import offload_pb2 as pb
from guest_shim.service import add_servicer

class Slow:
    def Apply(self, request, context):
        time.sleep(30)
        return pb.ApplyReply(generation=1)

    Withdraw = Get = Stats = Watch = Apply

server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
add_servicer(server, Slow())
server.add_insecure_port(sys.argv[1])
server.start()
print("ready", flush=True)
server.wait_for_termination()
"""


def test_a_connection_broken_mid_apply_says_the_outcome_is_unknown(tmp_path: Path) -> None:
    """An agent killed while it applies may have committed the change or not: the guest
    is told exactly that, never that the channel could not be reached."""
    address = f"unix:{tmp_path}/vnic.sock"
    agent = subprocess.Popen([sys.executable, "-c", SLOW_AGENT, address],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert agent.stdout is not None and agent.stdout.readline().strip() == "ready"
        with connect(address, timeout=20) as channel:
            killer = threading.Timer(0.5, agent.kill)
            killer.start()
            with pytest.raises(GuestShimError) as info:
                channel.apply(pb.OffloadRequest())
            killer.join()
    finally:
        agent.kill()
        agent.wait(timeout=10)
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert "broke before the agent answered" in str(info.value)
    assert "may or may not be in force" in str(info.value)


def test_cli_in_process(
    served: tuple[str, RecordingServicer], capsys: pytest.CaptureFixture[str]
) -> None:
    address, _ = served
    assert main(["--channel", address, "apply", str(EXAMPLES / "load-balancer.json")]) == 0
    assert "generation 7 applied" in capsys.readouterr().out
    assert main(["--channel", address, "show"]) == 0
    shown = capsys.readouterr().out
    assert "vip-http" in shown and "lb 198.51.100.80:80/tcp -> 10.2.0.11:8080*3" in shown
    assert main(["--channel", address, "stats"]) == 0
    stats = capsys.readouterr().out
    assert "12 tracked connection(s)" in stats and "tracked_connections  12    1000" in stats
    assert main(["--channel", address, "watch"]) == 0
    events = capsys.readouterr().out.splitlines()
    assert events == [
        "generation-applied generation=1",
        "quota-reached quota=tracked_connections - 1000 of 1000",
    ]
    assert main(["--channel", address, "withdraw", "--all"]) == 0
    assert "withdrawn: vip-http" in capsys.readouterr().out


def test_cli_errors_are_one_line(
    served: tuple[str, RecordingServicer], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    address, _ = served
    full = tmp_path / "full.yaml"
    full.write_text("vnic: full\n")
    assert main(["--channel", address, "apply", str(full)]) == 1
    err = capsys.readouterr().err
    assert err == "guest-shim: apply: RESOURCE_EXHAUSTED: rules quota reached (limit 2)\n"
    bad = tmp_path / "bad.yaml"
    bad.write_text("flows: [{id: a, config: {default_verdict: nope}}]\n")
    assert main(["--channel", address, "apply", str(bad)]) == 2
    assert 'flow "a": config.default_verdict: "nope"' in capsys.readouterr().err
    assert main(["--channel", "tcp:8.8.8.8:1", "show"]) == 2
    assert main(["--channel", address, "withdraw"]) == 2


def test_cli_subprocess(served: tuple[str, RecordingServicer], tmp_path: Path) -> None:
    address, servicer = served
    env = {**os.environ, "PYOFFLOAD_CHANNEL": address}
    done = subprocess.run(
        [str(SHIM_CLI), "apply", str(EXAMPLES / "snat.yaml")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "generation 1 applied (2 result(s))" in done.stdout
    assert servicer.applied[0].vnic == "app-3"
    check = subprocess.run(
        [str(SHIM_CLI), "apply", "--check", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert check.returncode == 2
    assert "Traceback" not in check.stderr and check.stderr.count("\n") == 1


def test_apply_check_offline(capsys: pytest.CaptureFixture[str]) -> None:
    path = EXAMPLES / "stateful-web-server.yaml"
    assert main(["--channel", "unix:/nonexistent/x.sock", "apply", "--check", str(path)]) == 0
    assert "valid (2 flow(s), 3 rule(s))" in capsys.readouterr().out
