"""Who can reach the embedded target's P4Runtime: a Unix socket with owner and mode,
TLS with client certificates on TCP, unauthenticated TCP only on loopback.

An unprivileged user is created for the test (and removed afterwards); a
process that drops to it tries to read, write and open a stream.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import grpc
import pytest
from finsy.proto import p4i, p4r, p4r_grpc

from pyoffload.embedded.p4runtime.codec import encode_uint
from pyoffload.embedded.p4runtime.server import (
    P4RuntimeServer,
    ServerError,
    SocketAccess,
    TlsConfig,
    listen_policy,
)
from pyoffload.embedded.p4runtime.testing import (
    DEVICE_ID,
    Client,
    Names,
    action,
    insert,
    running_target,
)
from pyoffload.embedded.switch import Switch
from tests.pki import make_pki

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="creates a user and drops to it")

PROBE = r'''
import json, os, sys
import grpc, grpc._channel, grpc._common, grpc._interceptor, grpc._utilities
from finsy.proto import p4r, p4r_grpc
import google.protobuf.any_pb2, encodings.idna
uid, gid, address, ca = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
ca_pem = open(ca, "rb").read() if ca else None
os.setgroups([gid]); os.setgid(gid); os.setuid(uid)
if ca_pem:
    channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=ca_pem))
else:
    channel = grpc.insecure_channel(address)
stub = p4r_grpc.P4RuntimeStub(channel)
election = p4r.Uint128(high=1 << 40)
arbitration = p4r.StreamMessageRequest(arbitration=p4r.MasterArbitrationUpdate(
    device_id=1, election_id=election))
calls = {
    "capabilities": lambda: stub.Capabilities(p4r.CapabilitiesRequest(), timeout=3),
    "read": lambda: list(stub.Read(p4r.ReadRequest(device_id=1, entities=[
        p4r.Entity(table_entry=p4r.TableEntry())]), timeout=3)),
    "write": lambda: stub.Write(p4r.WriteRequest(device_id=1, election_id=p4r.Uint128(low=1)),
                                timeout=3),
    "stream": lambda: next(iter(stub.StreamChannel(iter([arbitration]), timeout=3))),
}
out = {}
for name, call in calls.items():
    try:
        call()
        out[name] = "OK"
    except grpc.RpcError as exc:
        out[name] = exc.code().name
print(json.dumps(out), flush=True)
channel.close()
os._exit(0)  # (grpc can hang at interpreter exit while it retries a failed handshake)
'''


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int


@pytest.fixture
def unprivileged() -> Iterator[User]:
    """A fresh system user with its own group, deleted afterwards."""
    name = f"pyo-t{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                    "--shell", "/usr/sbin/nologin", name], check=True, capture_output=True)
    try:
        out = subprocess.run(["id", "-u", name], check=True, capture_output=True, text=True)
        uid = int(out.stdout)
        out = subprocess.run(["id", "-g", name], check=True, capture_output=True, text=True)
        yield User(name, uid, int(out.stdout))
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)
        subprocess.run(["groupdel", name], check=False, capture_output=True)


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory any user may traverse (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="pyoffload-sec-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_probe(script: str, user: User, address: str, ca: Path | None = None
              ) -> dict[str, str]:
    """Run a probe ``script`` as ``user`` (it drops to the uid and gid it is given) against
    ``address``; the JSON answer it prints."""
    result = subprocess.run(
        [sys.executable, "-c", script, str(user.uid), str(user.gid), address, str(ca or "")],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    answer: dict[str, str] = json.loads(result.stdout)
    return answer


def probe(user: User, address: str, ca: Path | None = None) -> dict[str, str]:
    """What `user` gets for Capabilities, Read, Write and StreamChannel on `address`."""
    return run_probe(PROBE, user, address, ca)


@pytest.fixture
def pki(public_dir: Path) -> Path:
    """A test CA with a server and a client certificate, and a rogue CA with a client."""
    return make_pki(public_dir, {"server": ("ca", "IP:127.0.0.1,DNS:localhost"),
                                 "agent": ("ca", "DNS:agent"), "other": ("ca", "DNS:other"),
                                 "rogue": ("rogue-ca", "DNS:agent")})


def client_credentials(pki: Path, name: str | None) -> grpc.ChannelCredentials:
    ca = (pki / "ca.crt").read_bytes()
    if name is None:
        return grpc.ssl_channel_credentials(root_certificates=ca)
    return grpc.ssl_channel_credentials(root_certificates=ca,
                                        private_key=(pki / f"{name}.key").read_bytes(),
                                        certificate_chain=(pki / f"{name}.crt").read_bytes())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- the policy ---------------------------------------------------------------------------

def test_listen_policy() -> None:
    tls = TlsConfig(cert=b"c", key=b"k", ca=b"a", client_auth=True)
    assert listen_policy("unix:/run/x.sock", None, False) is None
    assert listen_policy("10.0.0.1:9559", tls, False) is None
    warning = listen_policy("127.0.0.1:9559", None, False)
    assert warning is not None and "UNAUTHENTICATED" in warning
    assert listen_policy("[::1]:9559", None, False) is not None
    for address in ("0.0.0.0:9559", "10.0.0.1:9559"):
        with pytest.raises(ServerError, match="--grpc-insecure-tcp"):
            listen_policy(address, None, False)
        with pytest.raises(ServerError, match="--grpc-insecure-tcp"):  # no client certs
            listen_policy(address, TlsConfig(cert=b"c", key=b"k"), False)
        assert "UNAUTHENTICATED" in str(listen_policy(address, None, True))
    with pytest.raises(ServerError, match="abstract"):
        listen_policy("unix-abstract:p4rt", None, False)
    with pytest.raises(ServerError, match="absolute"):
        listen_policy("unix:p4rt.sock", None, False)
    with pytest.raises(ServerError, match="TLS is for TCP"):
        listen_policy("unix:/run/x.sock", tls, False)


# -- Unix socket ---------------------------------------------------------------------------

@needs_root
def test_unix_socket_is_root_only_by_default(unprivileged: User, public_dir: Path,
                                             srv_program: tuple[p4i.P4Info, bytes]) -> None:
    path = public_dir / "run" / "p4rt.sock"
    address = f"unix:{path}"
    with running_target(*srv_program, address=address) as t:
        info = path.stat()
        assert stat.S_ISSOCK(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == 0
        t.client.write(insert(_l2(t.names, 0x0A0000000002)))  # root, the agent, works
        assert set(probe(unprivileged, address).values()) == {"UNAVAILABLE"}
        assert len(t.client.read(p4r.Entity(table_entry=p4r.TableEntry()))) == 1
        assert len(t.server.arbiter.primaries(DEVICE_ID)) == 1
    assert not path.exists()  # removed when the server stops


@needs_root
def test_unix_socket_group_mode_lets_the_group_in(unprivileged: User, public_dir: Path) -> None:
    path = public_dir / "p4rt.sock"
    switch = Switch(cpu_port=64)
    server = P4RuntimeServer(switch, device_id=DEVICE_ID, address=f"unix:{path}",
                             socket_access=SocketAccess(mode=0o660, gid=unprivileged.gid))
    server.start()
    try:
        info = path.stat()
        assert stat.S_IMODE(info.st_mode) == 0o660 and info.st_gid == unprivileged.gid
        answer = probe(unprivileged, f"unix:{path}")
        assert answer["capabilities"] == "OK"
        assert answer["write"] == "PERMISSION_DENIED"  # no primary stream of its own
    finally:
        server.stop(grace=0)
        switch.stop()


# -- TLS -------------------------------------------------------------------------------

def _l2(names: Names, mac: int) -> p4r.Entity:
    return p4r.Entity(table_entry=p4r.TableEntry(
        table_id=names.id("l2"),
        match=[p4r.FieldMatch(field_id=names.field("l2", "hdr.ethernet.dstAddr"),
                              exact=p4r.FieldMatch.Exact(value=encode_uint(mac)))],
        action=p4r.TableAction(action=action(names.id("forward"), 2))))


@needs_root
def test_tls_with_client_certificates(pki: Path, unprivileged: User,
                                      srv_program: tuple[p4i.P4Info, bytes]) -> None:
    tls = TlsConfig.from_files(cert=pki / "server.crt", key=pki / "server.key",
                               ca=pki / "ca.crt", client_auth=True)
    switch = Switch(cpu_port=64)
    address = f"127.0.0.1:{free_port()}"
    server = P4RuntimeServer(switch, device_id=DEVICE_ID, address=address, tls=tls)
    assert server.warning is None
    server.start()
    agent = None
    try:
        agent = Client(address, 1, credentials=client_credentials(pki, "agent"))
        assert agent.arbitrate().status.code == 0
        agent.set_pipeline(*srv_program)
        names = Names(srv_program[0])
        agent.write(insert(_l2(names, 0x0A0000000002)))
        # without a certificate, or with one from another CA: nothing at all
        assert set(probe(unprivileged, address, pki / "ca.crt").values()) == {"UNAVAILABLE"}
        rogue = grpc.ssl_channel_credentials(
            root_certificates=(pki / "ca.crt").read_bytes(),
            private_key=(pki / "rogue.key").read_bytes(),
            certificate_chain=(pki / "rogue.crt").read_bytes())
        with grpc.secure_channel(address, rogue) as channel:
            stub = p4r_grpc.P4RuntimeStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                stub.Capabilities(p4r.CapabilitiesRequest(), timeout=3)
            assert cast(grpc.Call, info.value).code() == grpc.StatusCode.UNAVAILABLE
        assert len(agent.read(p4r.Entity(table_entry=p4r.TableEntry()))) == 1
    finally:
        if agent is not None:
            agent.close()
        server.stop(grace=0)
        switch.stop()


@needs_root
def test_tls_write_bound_to_the_primary_identity(pki: Path,
                                                 srv_program: tuple[p4i.P4Info, bytes]) -> None:
    tls = TlsConfig.from_files(cert=pki / "server.crt", key=pki / "server.key",
                               ca=pki / "ca.crt", client_auth=True)
    switch = Switch(cpu_port=64)
    address = f"127.0.0.1:{free_port()}"
    server = P4RuntimeServer(switch, device_id=DEVICE_ID, address=address, tls=tls)
    server.start()
    agent = Client(address, 1, credentials=client_credentials(pki, "agent"))
    other = Client(address, None, credentials=client_credentials(pki, "other"),
                   own_connection=True)
    try:
        assert agent.arbitrate().status.code == 0
        agent.set_pipeline(*srv_program)
        other.election_id = 1  # a certified client borrowing the agent's election id
        with pytest.raises(grpc.RpcError) as info:
            other.write(insert(_l2(Names(srv_program[0]), 0x0A0000000003)))
        call = info.value
        assert isinstance(call, grpc.Call)
        assert call.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "as agent" in (call.details() or "")
    finally:
        other.close()
        agent.close()
        server.stop(grace=0)
        switch.stop()


# -- the command line ------------------------------------------------------------------------

@needs_root
def test_target_process_defaults_to_a_root_only_socket(public_dir: Path) -> None:
    path = public_dir / "p4rt.sock"
    refused = subprocess.run(
        [sys.executable, "-m", "pyoffload.embedded", "--no-p4", "--", "--grpc-server-addr",
         f"0.0.0.0:{free_port()}"], capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 1 and "--grpc-insecure-tcp" in refused.stderr
    process = subprocess.Popen(
        [sys.executable, "-m", "pyoffload.embedded", "--no-p4", "--device-id", "1", "--",
         "--grpc-server-addr", f"unix:{path}"], stderr=subprocess.PIPE, text=True)
    try:
        with grpc.insecure_channel(f"unix:{path}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "WARNING" not in err


def test_a_second_server_does_not_take_over_a_live_socket(public_dir: Path) -> None:
    path = public_dir / "p4rt.sock"
    switch = Switch()
    first = P4RuntimeServer(switch, address=f"unix:{path}")
    first.start()
    try:
        inode = path.stat().st_ino
        with pytest.raises(ServerError, match="another server listens there"):
            P4RuntimeServer(Switch(), address=f"unix:{path}")
        assert path.stat().st_ino == inode
    finally:
        first.stop(grace=0)
        switch.stop()
    dead = public_dir / ".p4rt-dead"  # what a server killed with SIGKILL leaves
    dead.mkdir(mode=0o700)
    (dead / "grpc.sock").touch()
    stale = socket.socket(socket.AF_UNIX)  # the socket file of a dead server: replaced
    stale.bind(str(path))
    stale.close()
    second = P4RuntimeServer(Switch(), address=f"unix:{path}")
    assert not dead.exists()
    second.stop(grace=0)
    assert sorted(public_dir.iterdir()) == []  # nothing left behind


def test_unix_socket_connections_are_told_apart(public_dir: Path,
                                               srv_program: tuple[p4i.P4Info, bytes]) -> None:
    """Through the relay each connection is a peer of its own: a second local client
    cannot write with the primary's election id."""
    address = f"unix:{public_dir / 'p4rt.sock'}"
    with running_target(*srv_program, address=address) as t:
        other = Client(address, None, own_connection=True)
        try:
            other.election_id = 1  # the primary's
            with pytest.raises(grpc.RpcError) as info:
                other.write(insert(_l2(t.names, 0x0A0000000003)))
            call = cast(grpc.Call, info.value)
            assert call.code() == grpc.StatusCode.PERMISSION_DENIED
            assert f"-uid{os.geteuid()}-pid{os.getpid()}" in (call.details() or "")
        finally:
            other.close()
        t.client.write(insert(_l2(t.names, 0x0A0000000002)))
        assert len(t.client.read(p4r.Entity(table_entry=p4r.TableEntry()))) == 1
