"""Who reaches a VNIC's guest channel, and what a guest can cost the agent before it is
refused. A real embedded target, a real agent, real sockets on loopback.

* Unix sockets with the owner and mode of the host configuration: an unprivileged user
  created for the test reaches the VNIC whose socket it owns, not another's.
* TCP only with mutual TLS: the certificate bound to the VNIC applies; another VNIC's
  certificate, one of another CA, none, and a local user without one are refused.
* The admin socket is root's alone; another user's ``pyoffload status`` is told so.
* A hundred Watch streams do not block applies (and receive their events); a peer gets
  no more streams than its limit.
* A 4 MB request over the VNIC's quota is refused from its counts before validation;
  one over the channel's size limit is refused by gRPC with a clear message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from guest_shim.address import parse_address
from guest_shim.client import Channel
from guest_shim.errors import GuestShimError
from guest_shim.service import method_path

from guest_shim import offload_pb2 as pb
from pyoffload.agent import Agent
from pyoffload.agent import channel as channel_module
from pyoffload.agent.admin import serve_admin
from pyoffload.agent.channel import ChannelServer, peer_key, serve_all, serve_channel
from pyoffload.agent.config import parse_config
from pyoffload.agent.errors import AgentError
from pyoffload.targets import RunningTarget, free_tcp_port
from tests.embedded.test_security import User, run_probe, unprivileged
from tests.guest_shim.test_tls import channel_pki, guest_tls, public_dir

__all__ = ["channel_pki", "public_dir", "unprivileged"]  # fixtures used here

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="creates a user and drops to it")

PROBE = r'''
import json, os, pathlib, sys
import grpc, grpc._channel, grpc._common, grpc._interceptor, grpc._utilities
import google.protobuf.any_pb2, encodings.idna
from guest_shim import offload_pb2 as pb
from guest_shim.address import parse_address
from guest_shim.client import Channel
from guest_shim.errors import GuestShimError
from guest_shim.tls import ChannelTls
uid, gid, address, ca = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
os.setgroups([gid]); os.setgid(gid); os.setuid(uid)
tls = ChannelTls(ca=pathlib.Path(ca)) if ca else None
out = {}
with Channel(address, timeout=3, tls=tls) as channel:
    calls = {"get": channel.get, "apply": lambda: channel.apply(pb.OffloadRequest())}
    for name, call in calls.items():
        try:
            call()
            out[name] = "OK"
        except GuestShimError as exc:
            out[name] = exc.code.name
print(json.dumps(out), flush=True)
os._exit(0)  # (grpc can hang at interpreter exit while it retries a failed handshake)
'''


def probe(user: User, address: str, ca: Path | None = None) -> dict[str, str]:
    """What ``user`` gets for Get and Apply on the channel at ``address``."""
    return run_probe(PROBE, user, address, ca)


def vnic(name: str, number: int, channel: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "id": number, "guest_port": 2 * number - 1,
            "uplink_port": 2 * number, "channel": channel, **fields}


@pytest.fixture
def start_agent(target: RunningTarget) -> Iterator[Any]:
    """start_agent(vnics) -> (agent, servers): the agent and every VNIC's channel,
    stopped after the test."""
    started: list[tuple[Agent, dict[str, ChannelServer]]] = []

    def start(vnics: list[dict[str, Any]]) -> tuple[Agent, dict[str, ChannelServer]]:
        config = parse_config({"target": {"kind": "remote", "address": "unused"},
                               "vnics": vnics})
        agent = Agent(config, target.grpc_address, device_id=target.device_id).start()
        try:
            servers = serve_all(agent)
        except BaseException:
            agent.stop()
            raise
        started.append((agent, servers))
        return agent, servers

    yield start
    for agent, servers in started:
        for server in servers.values():
            server.stop(None)
        agent.stop()


# -- Unix sockets ---------------------------------------------------------------------------

@needs_root
def test_unix_sockets_admit_only_their_owner(start_agent: Any, unprivileged: User,
                                             public_dir: Path) -> None:
    run = public_dir / "run"  # missing: the agent creates it, 0755
    web, db = run / "web-1.sock", run / "db-1.sock"
    _agent, servers = start_agent([
        vnic("web-1", 1, f"unix:{web}", channel_access={"owner": unprivileged.name}),
        vnic("db-1", 2, f"unix:{db}"),
    ])
    assert oct(run.stat().st_mode & 0o7777) == "0o755" and run.stat().st_uid == 0
    assert (web.stat().st_uid, oct(web.stat().st_mode & 0o777)) == (unprivileged.uid, "0o600")
    assert (db.stat().st_uid, oct(db.stat().st_mode & 0o777)) == (0, "0o600")
    assert sorted(p.name for p in run.iterdir()) == ["db-1.sock", "web-1.sock"]  # no leftovers

    assert probe(unprivileged, f"unix:{web}") == {"get": "OK", "apply": "OK"}
    assert probe(unprivileged, f"unix:{db}") == {"get": "UNAVAILABLE", "apply": "UNAVAILABLE"}
    with Channel(f"unix:{db}") as root:  # the owner (root) is served
        assert root.get().generation == 0

    for server in servers.values():
        server.stop(None)
    assert list(run.iterdir()) == []  # the sockets go with their servers


@needs_root
def test_the_admin_endpoint_refuses_others_and_pyoffload_says_why(
        start_agent: Any, unprivileged: User, public_dir: Path) -> None:
    """The admin socket is root's (0600): another user's `pyoffload status` is refused,
    and told it was refused, not that no agent runs; with no agent, it is told that."""
    agent, _servers = start_agent([vnic("web-1", 1, f"unix:{public_dir}/web-1.sock")])
    admin = public_dir / "admin.sock"
    server = serve_admin(agent, f"unix:{admin}")
    try:
        status = _pyoffload("status", "--admin", f"unix:{admin}", cwd=public_dir, user=unprivileged)
        assert status.returncode == 1 and "Traceback" not in status.stderr
        assert status.stderr.strip() == (
            f"pyoffload status: permission denied on {admin} (owner root, mode 0600): the "
            "admin endpoint answers only the user the agent runs as; run this command as "
            "that user (root by default)")
        flows = _pyoffload("flows", "--admin", f"unix:{admin}", cwd=public_dir, user=unprivileged)
        assert "permission denied on" in flows.stderr and flows.returncode == 1
        assert _pyoffload("status", "--admin", f"unix:{admin}", cwd=public_dir).returncode == 0
    finally:
        server.stop(None)
    stale = socket.socket(socket.AF_UNIX)  # bound, not listening: what a killed agent leaves
    stale.bind(str(admin))
    with stale:
        status = _pyoffload("status", "--admin", f"unix:{admin}", cwd=public_dir)
    assert status.stderr.strip() == (
        f"pyoffload status: no agent listens on {admin} (a socket an agent left when it "
        "stopped); is `pyoffload up` running?")


AS_USER = """
import os, sys
from pyoffload.cli import main
uid, gid = int(sys.argv[1]), int(sys.argv[2])
if uid:
    os.setgroups([gid]); os.setgid(gid); os.setuid(uid)
sys.exit(main(sys.argv[3:]))
"""
"""`pyoffload` as another user: it drops to that user once loaded (the interpreter
here lives in root's home, which that user cannot read)."""


def _pyoffload(*argv: str, cwd: Path, user: User | None = None
               ) -> subprocess.CompletedProcess[str]:
    ids = (str(user.uid), str(user.gid)) if user else ("0", "0")
    return subprocess.run([sys.executable, "-c", AS_USER, *ids, *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=False)


def test_group_and_mode_from_the_configuration(start_agent: Any, tmp_path: Path) -> None:
    web = tmp_path / "web-1.sock"
    start_agent([vnic("web-1", 1, f"unix:{web}",
                      channel_access={"owner": 0, "group": os.getgid(), "mode": "0660"})])
    assert oct(web.stat().st_mode & 0o777) == "0o660"
    assert web.stat().st_gid == os.getgid()


def test_a_directory_others_could_change_is_refused(start_agent: Any, tmp_path: Path) -> None:
    agent, _servers = start_agent([vnic("web-1", 1, f"unix:{tmp_path}/unused.sock")])

    def serve(path: Path) -> ChannelServer:
        return serve_channel(agent, "web-1", parse_address(f"unix:{path}"))

    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    with pytest.raises(AgentError, match=r"open is writable by others \(mode 0777\)"):
        serve(open_dir / "web-1.sock")
    sticky = tmp_path / "sticky"  # as /tmp: others cannot remove what is not theirs
    sticky.mkdir()
    sticky.chmod(0o1777)
    serve(sticky / "web-1.sock").stop(None)
    if os.geteuid() == 0:
        foreign = tmp_path / "foreign"
        foreign.mkdir()
        os.chown(foreign, 65534, 65534)
        with pytest.raises(AgentError, match="belongs to uid 65534"):
            serve(foreign / "web-1.sock")
    not_a_socket = tmp_path / "file.sock"
    not_a_socket.write_text("x")
    with pytest.raises(AgentError, match="exists and is not a socket"):
        serve(not_a_socket)
    assert not_a_socket.read_text() == "x"


# -- TCP with mutual TLS --------------------------------------------------------------------

@needs_root
def test_tls_channels_admit_only_the_bound_guest(start_agent: Any, channel_pki: Path,
                                                 unprivileged: User,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pyoffload.agent.channel")
    ports = {"web-1": free_tcp_port(), "db-1": free_tcp_port()}

    def tls(client: str) -> dict[str, str]:
        return {"ca": str(channel_pki / "ca.crt"), "cert": str(channel_pki / "server.crt"),
                "key": str(channel_pki / "server.key"), "client": client}

    agent, _servers = start_agent([
        vnic("web-1", 1, f"tcp:127.0.0.1:{ports['web-1']}", channel_tls=tls("web-1.guests")),
        vnic("db-1", 2, f"tcp:127.0.0.1:{ports['db-1']}", channel_tls=tls("db-1.guests")),
    ])
    web = f"tcp:127.0.0.1:{ports['web-1']}"
    request = pb.OffloadRequest(vnic="web-1")

    with Channel(web, tls=guest_tls(channel_pki, "web-1")) as guest:
        assert guest.apply(request).generation == 1

    refused = {}
    for who, tls_files in (("db-1's certificate", guest_tls(channel_pki, "db-1")),
                           ("another CA", guest_tls(channel_pki, "rogue", ca="rogue-ca")),
                           ("no certificate", guest_tls(channel_pki, None)),
                           ("no TLS", None)):
        with Channel(web, tls=tls_files, timeout=5) as other, \
                pytest.raises(GuestShimError) as info:
            other.apply(request)
        refused[who] = info.value.code.name
    assert refused == {"db-1's certificate": "PERMISSION_DENIED", "another CA": "UNAVAILABLE",
                       "no certificate": "UNAVAILABLE", "no TLS": "UNAVAILABLE"}
    logged = [r.getMessage() for r in caplog.records]
    assert any("VNIC web-1: refused Apply from ipv4:127.0.0.1:" in line
               and "'db-1.guests'" in line for line in logged), logged

    # A local user without a certificate, with TLS or without.
    assert probe(unprivileged, web, channel_pki / "ca.crt") == {
        "get": "UNAVAILABLE", "apply": "UNAVAILABLE"}
    assert probe(unprivileged, web) == {"get": "UNAVAILABLE", "apply": "UNAVAILABLE"}

    with Channel(f"tcp:127.0.0.1:{ports['db-1']}", tls=guest_tls(channel_pki, "db-1")) as db:
        assert db.get().generation == 0
    assert agent.state("web-1").generation == 1  # only the bound guest's apply happened


# -- Watch streams ----------------------------------------------------------------------------

async def _open_watches(target: str, count: int) -> tuple[grpc.aio.Channel, list[Any]]:
    channel = grpc.aio.insecure_channel(target)
    watch = channel.unary_stream(method_path("Watch"),
                                 request_serializer=pb.WatchRequest.SerializeToString,
                                 response_deserializer=pb.Event.FromString)
    return channel, [watch(pb.WatchRequest()) for _ in range(count)]


def _wait_for(condition: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def test_a_hundred_watch_streams_do_not_block_applies(start_agent: Any, tmp_path: Path) -> None:
    socket_path = tmp_path / "web-1.sock"
    agent, _servers = start_agent([vnic("web-1", 1, f"unix:{socket_path}",
                                        channel_limits={"watch_streams_per_peer": 128})])

    async def scenario() -> tuple[float, list[int]]:
        channel, calls = await _open_watches(f"unix:{socket_path}", 100)
        try:
            opened = await asyncio.to_thread(
                _wait_for, lambda: agent.events.watchers("web-1") == 100, 20)
            assert opened, f"{agent.events.watchers('web-1')} of 100 Watch streams open"

            def apply() -> float:
                started = time.monotonic()
                with Channel(f"unix:{socket_path}", timeout=10) as guest:
                    assert guest.apply(pb.OffloadRequest()).generation == 1
                    assert guest.get().generation == 1
                    guest.stats()
                return time.monotonic() - started

            took = await asyncio.wait_for(asyncio.to_thread(apply), 20)
            events = await asyncio.wait_for(asyncio.gather(*(call.read() for call in calls)), 20)
            return took, [event.generation for event in events
                          if event.kind == pb.Event.KIND_GENERATION_APPLIED]
        finally:
            for call in calls:
                call.cancel()
            await channel.close(None)

    took, generations = asyncio.run(scenario())
    print(f"apply, get and stats with 100 Watch streams open: {took * 1000:.0f} ms")
    assert took < 10
    assert generations == [1] * 100
    assert _wait_for(lambda: agent.events.watchers("web-1") == 0, 10)


def test_watch_streams_per_peer_are_limited(start_agent: Any, tmp_path: Path) -> None:
    socket_path = tmp_path / "web-1.sock"
    agent, _servers = start_agent([vnic("web-1", 1, f"unix:{socket_path}",
                                        channel_limits={"watch_streams_per_peer": 2})])

    async def scenario() -> tuple[grpc.StatusCode, str]:
        channel, calls = await _open_watches(f"unix:{socket_path}", 2)
        try:
            assert await asyncio.to_thread(
                _wait_for, lambda: agent.events.watchers("web-1") == 2, 10)
            _, [third] = await _open_watches(f"unix:{socket_path}", 1)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await asyncio.wait_for(third.read(), 10)
            calls[0].cancel()  # one closes: another may open
            assert await asyncio.to_thread(
                _wait_for, lambda: agent.events.watchers("web-1") == 1, 10)
            _, [again] = await _open_watches(f"unix:{socket_path}", 1)
            assert await asyncio.to_thread(
                _wait_for, lambda: agent.events.watchers("web-1") == 2, 10)
            again.cancel()
            return info.value.code(), info.value.details() or ""
        finally:
            for call in calls:
                call.cancel()
            await channel.close(None)

    code, details = asyncio.run(scenario())
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details == ("VNIC web-1: unix already has 2 Watch streams open, the limit per peer "
                       "(channel_limits: watch_streams_per_peer)")


def test_refused_watch_streams_do_not_flood_the_log(
        start_agent: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A guest that opens Watch streams in a loop past its limit gets one warning line,
    then one line with the count once the interval is over (each one at debug)."""
    socket_path = tmp_path / "web-1.sock"
    _agent, servers = start_agent([vnic("web-1", 1, f"unix:{socket_path}",
                                        channel_limits={"watch_streams_per_peer": 1})])
    servers["web-1"].channel.refusals.interval = 2.0
    caplog.set_level(logging.DEBUG, logger="pyoffload.agent.channel")

    async def refused(count: int) -> list[grpc.StatusCode]:
        channel, [held] = await _open_watches(f"unix:{socket_path}", 1)
        try:
            await asyncio.to_thread(_wait_for, lambda: _agent.events.watchers("web-1") == 1, 10)
            codes = []
            for _ in range(count):
                _, [extra] = await _open_watches(f"unix:{socket_path}", 1)
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await asyncio.wait_for(extra.read(), 10)
                codes.append(info.value.code())
            return codes
        finally:
            held.cancel()
            await channel.close(None)

    assert asyncio.run(refused(40)) == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 40

    def said(level: int) -> list[str]:
        return [r.getMessage() for r in caplog.records
                if r.levelno == level and "Watch stream" in r.getMessage()]

    assert len(said(logging.DEBUG)) == 39
    [warning] = said(logging.WARNING)
    assert re.match(r"VNIC web-1: refused a Watch stream from a client of its Unix socket "
                    rf"\(uid 0, pid {os.getpid()}\): 1 open, the limit is 1 per peer", warning), \
        warning
    assert _wait_for(lambda: len(said(logging.WARNING)) == 2, 10)  # the interval ended
    assert re.fullmatch(r"VNIC web-1: Watch streams from unix: 39 more refused in 2 s "
                        r"\(each at debug\)", said(logging.WARNING)[1])


def test_peer_keys() -> None:
    assert peer_key("ipv4:127.0.0.1:40000") == "ipv4:127.0.0.1"
    assert peer_key("ipv6:[::1]:40000") == "ipv6:[::1]"
    assert peer_key("vsock:3:1024") == "vsock:3"
    assert peer_key("unix:") == peer_key("unix:/run/x.sock") == "unix"


# -- sizes --------------------------------------------------------------------------------------

def four_megabytes() -> pb.OffloadRequest:
    """About 4 MB: 67,000 rules in one flow."""
    request = pb.OffloadRequest()
    flow = request.flows.add(id="big")
    flow.config.default_verdict = pb.VERDICT_DENY
    for i in range(67_000):
        rule = flow.rules.add(id=f"rule-{i}", verdict=pb.VERDICT_ALLOW)
        rule.match.protocol = "tcp"
        rule.match.dst_ports.lo = rule.match.dst_ports.hi = i % 65536
        rule.match.src = "10.0.0.0/8"
        rule.match.dst = "192.168.0.0/16"
    assert request.ByteSize() > 4_000_000
    return request


def test_over_quota_requests_are_refused_from_their_counts(
        start_agent: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.sock"
    small = tmp_path / "small.sock"
    start_agent([
        vnic("big", 1, f"unix:{big}", quotas={"rules": 8},
             channel_limits={"max_message_bytes": 16 * 2**20}),
        vnic("small", 2, f"unix:{small}"),  # the limit derived from the default quotas
    ])
    request = four_megabytes()

    def no_validation(*args: Any) -> Any:
        raise AssertionError("an over-quota request reached validation")

    monkeypatch.setattr(channel_module, "from_proto", no_validation)
    error, took = refused_apply(big, request)
    print(f"4 MB request, 67,000 rules over a quota of 8: refused in {took * 1000:.0f} ms")
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert str(error) == ("apply: RESOURCE_EXHAUSTED: VNIC big: the request has 67000 "
                          "rules, the VNIC's quota is 8; nothing was installed")
    assert took < 2.0

    error, took = refused_apply(small, request)
    print(f"4 MB request over the derived size limit: refused in {took * 1000:.0f} ms")
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "apply: the request is larger than the VNIC channel accepts" in str(error)
    assert took < 2.0


def refused_apply(socket_path: Path, request: pb.OffloadRequest) -> tuple[GuestShimError, float]:
    """The refusal of ``request`` on the channel at ``socket_path``, and how long it took."""
    with Channel(f"unix:{socket_path}", timeout=30) as guest:
        started = time.monotonic()
        with pytest.raises(GuestShimError) as info:
            guest.apply(request)
        return info.value, time.monotonic() - started


def test_stopping_with_a_call_in_flight(start_agent: Any, tmp_path: Path) -> None:
    """A server stopped while a Watch is open ends it, and can be stopped twice."""
    socket_path = tmp_path / "web-1.sock"
    agent, servers = start_agent([vnic("web-1", 1, f"unix:{socket_path}")])
    done = threading.Event()

    def watch() -> None:
        with Channel(f"unix:{socket_path}") as guest:
            try:
                for _event in guest.watch():
                    pass
            except GuestShimError:
                pass
        done.set()

    threading.Thread(target=watch, daemon=True).start()
    assert _wait_for(lambda: agent.events.watchers("web-1") == 1, 10)
    servers["web-1"].stop(None)
    servers["web-1"].stop(None)
    assert done.wait(10)
    assert not socket_path.exists()


def test_an_answer_to_a_guest_is_bounded() -> None:
    """gRPC sends the message in a header, which a client refuses past 16 KiB (escaped:
    up to 3 bytes a byte): the agent's answers stop at 4,000 bytes, saying so."""
    assert channel_module.bounded("short") == "short"
    cut = channel_module.bounded("é" * 10_000)  # 2 bytes each in UTF-8, 6 as sent
    sent = urllib.parse.quote(cut, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~")
    assert len(sent) <= channel_module.MAX_DETAILS_BYTES, len(sent)
    assert cut.endswith(f"… ({10_000 - cut.count('é')} more characters not shown)")
    ascii_cut = channel_module.bounded("x" * 10_000)
    assert 3_800 < len(ascii_cut) <= channel_module.MAX_DETAILS_BYTES


def test_a_fault_inside_the_agent_is_answered_and_said_once(
        start_agent: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception the agent did not expect (a bug) is answered INTERNAL and logged with
    its traceback once a minute: grpc logged a 27-line traceback per call, so a guest
    repeating the call flooded the host's log (1,351 lines in 0.6 s in a trial)."""
    socket_path = tmp_path / "web-1.sock"
    agent, _servers = start_agent([vnic("web-1", 1, f"unix:{socket_path}")])
    caplog.set_level(logging.DEBUG, logger="pyoffload.agent.channel")

    def fails(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(agent, "withdraw", fails)
    codes = []
    with Channel(f"unix:{socket_path}") as guest:
        for _ in range(20):
            with pytest.raises(GuestShimError) as info:
                guest.withdraw(all_flows=True)
            codes.append((info.value.code, str(info.value)))
    assert codes == [(grpc.StatusCode.INTERNAL, "withdraw: INTERNAL: VNIC web-1: the agent "
                      "failed (RuntimeError); its log on the host says more")] * 20
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "VNIC web-1: _withdraw failed inside the agent: RuntimeError('a bug') (said once "
        "per 60 s for this client)"]
    assert warnings[0].exc_info is not None  # with its traceback


def test_connections_to_one_channel_are_limited(
        start_agent: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A guest that opens thousands of idle connections used up the agent's file
    descriptors, and the other VNICs' channels stopped answering. Beyond
    ``channel_limits.connections`` a connection is closed as soon as it is accepted."""
    web, db = tmp_path / "web-1.sock", tmp_path / "db-1.sock"
    start_agent([vnic("web-1", 1, f"unix:{web}", channel_limits={"connections": 10}),
                 vnic("db-1", 2, f"unix:{db}")])
    caplog.set_level(logging.INFO, logger="pyoffload.embedded")
    before = len(os.listdir("/proc/self/fd"))
    flood = []
    try:
        for _ in range(300):
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(str(web))
            flood.append(sock)
        time.sleep(1.0)  # the front accepts them all: 10 kept, the rest closed
        closed = 0
        for sock in flood:
            sock.settimeout(0.01)
            with contextlib.suppress(TimeoutError, OSError):  # open: nothing to read
                closed += sock.recv(1) == b""
        held = len(os.listdir("/proc/self/fd")) - before - len(flood)
        print(f"\n300 connections to one channel: {closed} closed at once, the agent holds "
              f"{held} more descriptors")
        assert closed == 290
        assert held <= 10 * 3 + 10  # a relayed connection: the guest's, the relay's, grpc's
        with Channel(f"unix:{db}") as other:  # another VNIC's channel answers
            assert other.get().generation == 0
        said = [r.getMessage() for r in caplog.records if "closed at once" in r.getMessage()]
        assert said and said[0].startswith("VNIC web-1's channel: 1 connection(s) closed at "
                                           "once: 10 are open, the limit"), said
    finally:
        for sock in flood:
            sock.close()
    with Channel(f"unix:{web}") as guest:  # once they are gone, the guest is served again
        assert _wait_for(lambda: _answers(guest), 10)


def _answers(guest: Channel) -> bool:
    try:
        guest.get()
    except GuestShimError:
        return False
    return True
