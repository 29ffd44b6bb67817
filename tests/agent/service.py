"""Helpers for the tests of the agent as a host service (restart, faults, reconciliation).

A guest and an uplink namespace joined through the embedded target (its own
process), ``pyoffload up`` run as a subprocess against it, long-lived TCP
connections between the namespaces that count their echoes, and read-backs of
the target that need no arbitration (a plain ``Read`` on a gRPC channel, so
the reader never takes primary from the agent). ``expected_from_journal``
compiles the journal's desired state independently of the running agent.

Everything started here is stopped by PID and everything created removed by the
``ExitStack`` it was entered in; every wait polls with a deadline.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

import attrs
import grpc
import pytest
import yaml
from finsy import P4Schema, P4TableAction, P4TableEntry, P4TableMatch
from finsy.p4entity import P4Entity
from finsy.proto import p4r, p4r_grpc

from guest_shim import offload_pb2 as pb
from pyoffload.agent.admin import query
from pyoffload.agent.config import HostConfig
from pyoffload.agent.installer import comparable, configured
from pyoffload.agent.journal import Journal
from pyoffload.agent.session import MANAGED_TABLES
from pyoffload.compiler import ResourcePool, VnicTarget, compile_request
from pyoffload.compiler.compile import ternary_port_fields
from pyoffload.p4runtime import P4RuntimeClient
from pyoffload.p4runtime.client import MAX_MESSAGE
from pyoffload.p4runtime.encoder import EntityEncoder
from pyoffload.pipeline import names
from pyoffload.pipeline.artifacts import Artifacts, load_constants
from pyoffload.pipeline.constants import Policy
from pyoffload.pipeline.entries import port_map_entries
from pyoffload.playground.topology import Topology
from pyoffload.playground.traffic import netns_cmd
from pyoffload.rules import Verdict, from_proto
from pyoffload.targets import RunningTarget, start_target

T = TypeVar("T")

NETNS = (pytest.mark.netns,
         pytest.mark.skipif(os.geteuid() != 0,
                            reason="needs root: network namespaces and veth pairs"))
"""Marks of a test that builds namespaces (``pytestmark = [*NETNS]``)."""

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GUEST_IP, UPLINK_IP = "10.79.0.1", "10.79.0.2"
ECHO_PORT = 7000
VNIC, VNIC_ID = "vm-1", 3

BASE_FLOWS: list[dict[str, Any]] = [
    {"id": "outbound", "match": {"direction": "from-guest", "protocol": "tcp"},
     "config": {"services": ["conntrack", "count"], "default_verdict": "deny"},
     "rules": [{"id": "echo", "match": {"dst_ports": ECHO_PORT, "ct_state": "new"},
                "verdict": "allow-track"}]},
    {"id": "inbound", "match": {"direction": "to-guest"},
     "config": {"services": ["conntrack"], "default_verdict": "deny"}},
]
"""A stateful firewall like ``stateful-web-server.yaml``, turned round: the guest may
open TCP connections to the echo port, tracked, so their replies come back; nothing
the uplink starts reaches the guest."""


def rules_document(bulk: int = 0) -> dict[str, Any]:
    """The base flows, plus a flow ``bulk`` of ``bulk`` one-port UDP rules (rule i on port
    10000 + i, so a smaller bulk request is a prefix of a larger one: same entries)."""
    flows = [dict(flow) for flow in BASE_FLOWS]
    if bulk:
        flows.append({
            "id": "bulk", "match": {"direction": "from-guest", "protocol": "udp"},
            "config": {"services": [], "default_verdict": "deny"},
            "rules": [{"id": f"r{i}", "match": {"dst_ports": 10000 + i}, "verdict": "allow"}
                      for i in range(bulk)],
        })
    return {"generation": 0, "flows": flows}


def eventually(check: Callable[[], bool], seconds: float) -> bool:
    """``check()`` until it holds, for at most ``seconds``; whether it held."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def poll(check: Callable[[], T | None], timeout: float, what: str,
         interval: float = 0.05) -> T:
    """``check()`` until it returns something true (returned), for at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g} s for {what}; it did not happen")
        time.sleep(interval)


# -- reading the target back ---------------------------------------------------------


@functools.cache
def schema() -> P4Schema:
    artifacts = Artifacts.packaged()
    return P4Schema(artifacts.p4info, artifacts.bmv2_json)


def _value(entity: p4r.Entity) -> bytes:
    """An entity's bytes in a canonical form: no counter data (``comparable``), and the
    match fields of a table entry in field id order (P4Runtime does not order them)."""
    entity = comparable(entity)
    if entity.WhichOneof("entity") == "table_entry":
        fields = sorted(entity.table_entry.match, key=lambda m: m.field_id)
        if [m.field_id for m in fields] != [m.field_id for m in entity.table_entry.match]:
            canonical = p4r.Entity()
            canonical.CopyFrom(entity)
            del canonical.table_entry.match[:]
            canonical.table_entry.match.extend(fields)
            entity = canonical
    return entity.SerializeToString(deterministic=True)


def read_back(address: str, device_id: int = 1) -> frozenset[bytes]:
    """What the target holds of what the agent manages (``session.read_managed``'s
    queries), each entity serialized without counter data: read with no stream and no
    election id, so the reader is no controller at all."""
    s = schema()
    profile = s.action_profiles[names.LB_SELECTOR].id
    queries = [p4r.Entity(table_entry=p4r.TableEntry(table_id=s.tables[t].id))
               for t in MANAGED_TABLES]
    queries += [
        p4r.Entity(action_profile_member=p4r.ActionProfileMember(action_profile_id=profile)),
        p4r.Entity(action_profile_group=p4r.ActionProfileGroup(action_profile_id=profile)),
        p4r.Entity(meter_entry=p4r.MeterEntry(meter_id=s.meters[names.FLOW_METER].id)),
    ]
    options = [("grpc.max_receive_message_length", MAX_MESSAGE)]
    with grpc.insecure_channel(address, options=options) as channel:
        stub = p4r_grpc.P4RuntimeStub(channel)
        try:
            found = [entity for reply in stub.Read(
                p4r.ReadRequest(device_id=device_id, entities=queries), timeout=60)
                for entity in reply.entities]
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise
            return frozenset()  # a restarted target the agent gave no pipeline yet: empty
    return frozenset(_value(e) for e in found if configured(e))


def table_counts(entities: Iterable[bytes]) -> dict[str, int]:
    """Entries per managed table (and other entities by kind) in a read-back."""
    by_id = {schema().tables[t].id: t for t in MANAGED_TABLES}
    counts: Counter[str] = Counter()
    for data in entities:
        entity = p4r.Entity.FromString(data)
        kind = entity.WhichOneof("entity") or "?"
        counts[by_id.get(entity.table_entry.table_id, "?") if kind == "table_entry"
               else kind] += 1
    return dict(counts)


def describe_difference(expected: frozenset[bytes], actual: frozenset[bytes]) -> str:
    """Missing and orphan entities, counted per table (for an assertion message)."""
    return (f"missing on the target: {table_counts(expected - actual)}; "
            f"orphans on the target: {table_counts(actual - expected)}")


def encode_all(entities: Iterable[P4Entity]) -> frozenset[bytes]:
    encoder = EntityEncoder(schema())
    return frozenset(_value(encoder.encode(e)) for e in entities)


ORPHAN_VNIC = 999
"""A VNIC id the host configuration does not have: entries with it are nobody's."""


def acl_entry(port: int, verdict: Verdict = Verdict.DENY, vnic: int = ORPHAN_VNIC
              ) -> p4r.Entity:
    """An ACL entry (one per port: distinct keys) of VNIC id ``vnic``, by default of no
    configured VNIC, encoded."""
    entry = P4TableEntry(names.ACL, match=P4TableMatch(vnic_id=vnic, flow_id=1,
                                                       dst_port=(port, port)),
                         action=P4TableAction(names.ACL_ACTIONS[verdict]), priority=1)
    return EntityEncoder(schema()).encode(entry)


def vnic_acl(client: P4RuntimeClient) -> list[p4r.Entity]:
    """The configured VNIC's ACL entries, as the target holds them (read by ``client``)."""
    table = schema().tables[names.ACL]
    field = table.match_fields["vnic_id"].id
    ours = VNIC_ID.to_bytes(2, "big").lstrip(b"\0")
    query = p4r.Entity(table_entry=p4r.TableEntry(table_id=table.id))
    return [e for e in client.read([query])
            if any(m.field_id == field and m.exact.value == ours for m in e.table_entry.match)]


@attrs.frozen(kw_only=True)
class JournalView:
    """A state file's desired state, compiled here, independently of any agent."""

    generations: dict[str, int]
    rules: dict[str, int]
    """Rules of the generation in force, per VNIC."""
    entities: frozenset[bytes]
    """Everything the target must hold: every VNIC's compiled rules and its port map."""


def expected_from_journal(config: HostConfig) -> JournalView:
    """Read ``config``'s state file and compile each VNIC's journaled request with the
    resource numbers journaled with it (as a restarted agent must), plus the port maps."""
    with Journal.open(config.state.path) as journal:
        records = journal.load()
    artifacts = Artifacts.packaged()
    s = schema()
    meters = {m.preamble.name: int(m.size) for m in s.p4info.meters}
    counters = {c.preamble.name: int(c.size) for c in s.p4info.counters}
    pool = ResourcePool.sized(meters=meters[names.FLOW_METER],
                              counters=counters[names.FLOW_COUNTER])
    for held in records.values():
        pool.hold(json.loads(held.resources))
    const = load_constants(artifacts)
    ternary = ternary_port_fields(s)
    entities: list[P4Entity] = []
    generations: dict[str, int] = {}
    rules: dict[str, int] = {}
    for vnic in config.vnics:
        record = records.get(vnic.name)
        generations[vnic.name] = record.generation if record else 0
        rules[vnic.name] = 0
        if record is not None:
            request = from_proto(pb.OffloadRequest.FromString(record.request))
            rules[vnic.name] = sum(len(flow.rules) for flow in request.flows)
            compiled = compile_request(request, VnicTarget(name=vnic.name, vnic_id=vnic.id),
                                       const, pool, ternary_ports=ternary)
            entities.extend(compiled.entities)
        entities.extend(port_map_entries(
            vnic_id=vnic.id, guest_port=vnic.guest_port, uplink_port=vnic.uplink_port,
            policy=Policy[vnic.default_policy.upper()]))
    return JournalView(generations=generations, rules=rules, entities=encode_all(entities))


# -- the host: namespaces, target, configuration ---------------------------------------


@attrs.define(kw_only=True)
class Lab:
    """A guest and an uplink namespace through the embedded target (ports 1 and 2)."""

    tmp: Path
    guest: str
    uplink: str
    target: RunningTarget
    ports: dict[int, str] = attrs.field(factory=dict)
    restarts: int = 0

    def restart_target(self) -> None:
        """``kill -9`` the target and start a new one on the same ports and address (it
        comes back empty: no pipeline, no tables, no connections)."""
        self.target.process.kill()
        self.target.process.wait()
        self.restarts += 1
        self.target = start_target(
            "embedded", self.ports, output=self.tmp / f"target-{self.restarts}.log",
            grpc_address=self.target.grpc_address)


def open_lab(stack: ExitStack, tmp: Path) -> Lab:
    """Namespaces and target, removed and stopped with ``stack``."""
    topo = stack.enter_context(Topology())
    guest, uplink = topo.add_guest_and_uplink(f"{GUEST_IP}/24", f"{UPLINK_IP}/24")
    ports = {port: pair.switch_end for port, pair in topo.pairs.items()}
    target = start_target("embedded", ports, output=tmp / "target.log")
    lab = Lab(tmp=tmp, guest=guest, uplink=uplink, target=target, ports=ports)
    stack.callback(lambda: lab.target.stop())  # the one running at the end
    return lab


def write_host_config(tmp: Path, target: RunningTarget, *, reconcile_interval: float,
                      rules_quota: int = 1024, name: str = "host.yaml",
                      checkpoint_interval: float = 1.0) -> Path:
    """A host configuration for ``pyoffload up`` against ``target``: one VNIC, its channel
    and the state file in the test's directory ``tmp`` (never the default path)."""
    path = tmp / name
    path.write_text(yaml.safe_dump({
        "target": {"kind": "remote", "address": target.grpc_address, "device_id": 1},
        "vnics": [{"name": VNIC, "id": VNIC_ID, "guest_port": 1, "uplink_port": 2,
                   "default_policy": "deny", "channel": channel_of(tmp),
                   "quotas": {"rules": rules_quota, "flows": 64}}],
        "state": {"path": str(tmp / "state.db"), "reconcile_interval": reconcile_interval,
                  "checkpoint_interval": checkpoint_interval},
    }))
    return path


def channel_of(tmp: Path) -> str:
    """The VNIC's guest channel (a Unix socket in the test's directory)."""
    return f"unix:{tmp}/{VNIC}.sock"


# -- pyoffload up ---------------------------------------------------------------------


class Up:
    """``pyoffload up CONFIG`` as a subprocess (each start logs to a file of its own)."""

    def __init__(self, config: Path, admin: str) -> None:
        self.config = config
        self.admin = admin
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log = config.parent / "up-0.log"

    def start(self, timeout: float = 60.0, extra: Sequence[str] = ()) -> float:
        """Start it (``extra``: more options) and wait until its admin endpoint answers;
        seconds that took."""
        assert self.process is None or self.process.poll() is not None
        self.starts += 1
        self.log = self.config.parent / f"up-{self.starts}.log"
        began = time.monotonic()
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [str(BIN / "pyoffload"), "up", str(self.config), "--admin", self.admin,
                 *extra],
                stdout=out, stderr=subprocess.STDOUT, cwd=self.config.parent)
        poll(self._ready, timeout, f"`pyoffload up` to serve its admin endpoint ({self.log})")
        return time.monotonic() - began

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"`pyoffload up` exited with {self.process.returncode}:\n"
                                 f"{self.output()[-3000:]}")
        try:
            self.status(timeout=2)
        except grpc.RpcError:
            return False
        return True

    def status(self, timeout: float = 10.0) -> dict[str, Any]:
        return query("Status", address=self.admin, timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """``kill -9``, by PID."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self) -> int:
        """SIGTERM, by PID; the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


def start_up(stack: ExitStack, config: Path) -> Up:
    """An ``Up`` for ``config`` (admin socket beside it), killed with ``stack`` if running."""
    up = Up(config, f"unix:{config.parent}/admin.sock")
    stack.callback(up.close)
    return up


def guest_shim(lab: Lab, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The guest shim's command line, run in the guest namespace."""
    return subprocess.run(
        netns_cmd(lab.guest, str(BIN / "guest-shim"), "--timeout", str(timeout),
                  "--channel", channel_of(lab.tmp), *args),
        capture_output=True, text=True, timeout=timeout + 30)


# -- long-lived TCP connections -------------------------------------------------------

_SERVER = r"""
import selectors, socket, sys, time
addr, port, lifetime = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
sel = selectors.DefaultSelector()
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((addr, port))
listener.listen(64)
listener.setblocking(False)
sel.register(listener, selectors.EVENT_READ)
print("ready", flush=True)
end = time.monotonic() + lifetime
while time.monotonic() < end:
    for key, _ in sel.select(timeout=0.5):
        if key.fileobj is listener:
            conn, _peer = listener.accept()
            conn.setblocking(True)
            conn.settimeout(5)
            sel.register(conn, selectors.EVENT_READ)
            continue
        conn = key.fileobj
        try:
            data = conn.recv(65536)
            if data:
                conn.sendall(data)
        except OSError:
            data = b""
        if not data:
            sel.unregister(conn)
            conn.close()
"""

_CLIENT = r"""
import json, select, socket, sys, time
addr, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
period, lifetime = float(sys.argv[4]), float(sys.argv[5])
SIZE = 16
socks = [socket.create_connection((addr, port), timeout=10) for _ in range(count)]
for s in socks:
    s.setblocking(False)
start = time.monotonic()
replies = [0] * count
dead = [""] * count
buf = [b""] * count
sent = [None] * count
last = [start] * count
gap = [0.0] * count
seq = 0
report = 0.0
print(json.dumps({"connected": count}), flush=True)
while time.monotonic() - start < lifetime:
    now = time.monotonic()
    for i, s in enumerate(socks):
        if not dead[i] and sent[i] is None and now - last[i] >= period:
            seq += 1
            try:
                s.send(b"%015d\n" % seq)
                sent[i] = now
            except OSError as exc:
                dead[i] = repr(exc)
    live = [s for i, s in enumerate(socks) if not dead[i]]
    readable = select.select(live, [], [], 0.01)[0] if live else []
    now = time.monotonic()
    for s in readable:
        i = socks.index(s)
        try:
            data = s.recv(4096)
        except OSError as exc:
            dead[i] = repr(exc)
            continue
        if not data:
            dead[i] = "closed by the peer"
            continue
        buf[i] += data
        while len(buf[i]) >= SIZE:
            buf[i] = buf[i][SIZE:]
            replies[i] += 1
            gap[i] = max(gap[i], now - last[i])
            last[i] = now
            sent[i] = None
    if now >= report:
        waiting = max([now - t for t in sent if t is not None] or [0.0])
        print(json.dumps({"replies": replies, "dead": dead, "max_gap_ms": round(
            1000 * max(gap)), "waiting_ms": round(1000 * waiting)}), flush=True)
        report = now + 0.1
"""


@attrs.frozen(kw_only=True)
class Tally:
    """What the connections reported last."""

    replies: tuple[int, ...]
    dead: tuple[str, ...]
    max_gap_ms: int
    """Longest time between two echoes on one connection so far."""
    waiting_ms: int
    """Longest wait of a message now outstanding."""

    @property
    def lost(self) -> int:
        return sum(1 for reason in self.dead if reason)


_REPORT = 'client: {"replies"'


class Connections:
    """``count`` TCP connections from the guest to an echo server in the uplink, each
    sending a 16-byte message every ``period`` s and counting the echoes."""

    def __init__(self, lab: Lab, count: int = 5, period: float = 0.05,
                 lifetime: float = 900.0) -> None:
        self.lab, self.count, self.period, self.lifetime = lab, count, period, lifetime
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self.server: subprocess.Popen[str] | None = None
        self.client: subprocess.Popen[str] | None = None

    def start(self, stack: ExitStack, timeout: float = 30.0) -> Connections:
        stack.callback(self.stop)
        self.server = self._spawn(self.lab.uplink, _SERVER, UPLINK_IP, str(ECHO_PORT),
                                  str(self.lifetime), tag="server")
        self._wait_line(lambda line: line == "server: ready", timeout, "the echo server")
        self.client = self._spawn(self.lab.guest, _CLIENT, UPLINK_IP, str(ECHO_PORT),
                                  str(self.count), str(self.period), str(self.lifetime),
                                  tag="client")
        self._wait_line(lambda line: line.startswith("client: {\"connected\""), timeout,
                        "the client's connections")
        return self

    def _spawn(self, netns: str, script: str, *args: str, tag: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(netns_cmd(netns, sys.executable, "-c", script, *args),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, args=(process, tag), daemon=True).start()
        return process

    def _read(self, process: subprocess.Popen[str], tag: str) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with self._cond:
                self._lines.append(f"{tag}: {line.strip()}")
                del self._lines[:-200]
                self._cond.notify_all()

    def _wait_line(self, match: Callable[[str], bool], timeout: float, what: str) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: any(map(match, self._lines)), timeout=timeout):
                raise AssertionError(f"{what} did not start within {timeout:g} s: "
                                     f"{self._lines[-5:]}")

    def tally(self, timeout: float = 10.0) -> Tally:
        """The client's last report (it reports every 0.1 s; the first may take a moment)."""
        def reports() -> list[str]:
            return [line for line in self._lines if line.startswith(_REPORT)]

        with self._cond:
            if not self._cond.wait_for(reports, timeout=timeout):
                raise AssertionError(f"the connections reported nothing: {self._lines[-5:]}")
            doc = json.loads(reports()[-1].removeprefix("client: "))
        return Tally(replies=tuple(doc["replies"]), dead=tuple(doc["dead"]),
                     max_gap_ms=doc["max_gap_ms"], waiting_ms=doc["waiting_ms"])

    def wait_passing(self, more: int = 3, timeout: float = 20.0) -> Tally:
        """Wait until every connection got ``more`` echoes beyond what it had now; a
        connection that died fails at once."""
        before = self.tally()

        def passed() -> Tally | None:
            now = self.tally()
            assert now.lost == 0, f"connections lost: {now.dead}"
            if all(b + more <= n for b, n in zip(before.replies, now.replies, strict=True)):
                return now
            return None

        return poll(passed, timeout, f"{more} more echoes on each of {self.count} connections")

    def stop(self) -> None:
        for process in (self.client, self.server):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=30)


def summary(values: Sequence[float]) -> str:
    """min / median / max of some figures, for printing."""
    ordered = sorted(values)
    if not ordered:
        return "none"
    return (f"min {ordered[0]:.2f}, median {ordered[len(ordered) // 2]:.2f}, "
            f"max {ordered[-1]:.2f} (n={len(ordered)})")
