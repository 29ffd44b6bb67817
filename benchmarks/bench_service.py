"""Benchmark the agent as a host service: restarts, checkpoints and the journal.

``sudo .venv/bin/python -m benchmarks.bench_service [restart|target-restart|checkpoint|
journal|all] [--json FILE]`` prints, against the embedded target (its own process):

* ``restart``: an agent restarted on a live target, 10 VNICs x 1,000 rules,
  journal on disk; the time from constructing the new agent (opening its
  journal included) to ``start()`` returning, i.e. the target adopted and
  reconciled, over several rounds; the updates the new agent wrote (every
  Write of the process counted by entity kind; the managed entities, read back
  before and after by a plain Read that is no controller, compared); and the
  frames of 50 established connections, sent at ~2,000 pps from the uplink
  towards the guest through the whole restart, against those that reached the
  guest's veth (kernel ``rx_packets``). Two variants: ``agent.stop()`` and a
  new agent in this process; ``kill -9`` of a ``python -c`` child running the
  agent and a new child (its imports done beforehand) starting one.
  Goals: at most 1 s, no write when nothing drifted, no packet lost.
* ``target-restart``: 100,000 connections opened by real frames through the
  ``large`` pipeline (bench_handover's frames and pacing), checkpointed every
  0.5 s; the target is killed (SIGKILL) and a new one started on the same ports
  and address; the time from starting it to the agent reconnected (rules and
  connections restored, with a timeline of the agent's steps), then one reply
  per connection from the uplink and the share that reaches the guest, and
  replies of 1,000 connections never opened (none may pass); twice by default
  (``--target-rounds``). Goal: at most 5 s.
* ``checkpoint``: delivered pps with the checkpointer running (its default
  interval, 1 s) and stopped, 10,000 tracked connections, target on CPU 0 and
  sender on CPU 1 as in bench_wire (the agent on CPU 1 too), 6 rounds of each
  alternating; medians and the median of the per-round ratios. Goal: at most 5%
  apart. Other load on the machine shows in the spread of the rounds: the load
  average at the start of each measurement is printed with it.
* ``journal``: single-rule updates of a 10-rule set through the guest channel,
  as bench_agent measures them, with and without a journal, alternating halves;
  p50/p99. Goal: p99 at most 20 ms with the journal.

Figures, not assertions. Needs root (veth pairs); traffic only on the veths made
here; every process started here is stopped by PID, every wait is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import queue
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

import grpc
from finsy import P4Schema
from finsy.proto import p4r, p4r_grpc
from guest_shim.client import Channel

from benchmarks.bench_agent import percentile, single_rule_updates
from benchmarks.bench_handover import RULES, Frames, deliver, wait_delivered
from benchmarks.bench_sender import write_frames
from benchmarks.bench_wire import median_ratio, rx_packets
from pyoffload.agent import Agent
from pyoffload.agent.channel import serve_channel
from pyoffload.agent.checkpoint import Checkpointer
from pyoffload.agent.config import HostConfig, parse_config
from pyoffload.agent.connections import Learned
from pyoffload.agent.handover import ExportedConnection
from pyoffload.agent.installer import canonical_value, comparable
from pyoffload.agent.journal import Journal
from pyoffload.agent.session import read_managed
from pyoffload.p4runtime import P4RuntimeClient
from pyoffload.p4runtime.client import MAX_MESSAGE
from pyoffload.pipeline.artifacts import Artifacts
from pyoffload.playground.topology import Topology, require_root
from pyoffload.rules import load_data
from pyoffload.targets import RunningTarget, pin_process, start_target

REPO = Path(__file__).resolve().parent.parent
WHAT = ("restart", "target-restart", "checkpoint", "journal")
TARGET_CPU, SENDER_CPU = 0, 1
BACKOFF = (0.05, 0.5)
"""The agents' reconnect backoff here (first retry, longest wait), as in the tests."""
VNICS, RULES_PER_VNIC = 10, 1000
FLOWING, FLOW_PPS = 50, 2000.0
"""Established connections of VNIC 1 whose frames flow through a restart, and their pace."""
MARGIN_S = 0.3
"""Frames flow this long before the old agent goes and after the new one is ready."""
GOAL_RESTART_S, GOAL_TARGET_RESTART_S, GOAL_APART, GOAL_P99_MS = 1.0, 5.0, 0.05, 20.0


def goal(met: bool) -> str:
    return "goal met" if met else "goal NOT met"


def stats(values: Sequence[float]) -> dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "rounds": [round(v, 4) for v in values]}


def poll(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """``check()`` until true or ``timeout`` s passed; whether it became true."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


@contextlib.contextmanager
def pinned(cpu: int) -> Iterator[None]:
    """Every thread of this process on ``cpu`` (threads started meanwhile inherit it);
    the affinity it had before afterwards."""
    before = os.sched_getaffinity(0)
    pin_process(os.getpid(), cpu)
    try:
        yield
    finally:
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(ProcessLookupError, OSError):
                os.sched_setaffinity(int(tid), before)


# -- reading the target, counting writes ------------------------------------------------


class PlainReader:
    """Reads over a bare gRPC channel: no stream, no election id, so no controller at all
    (it never takes primary from an agent); enough of a client for ``read_managed``."""

    def __init__(self, address: str, device_id: int) -> None:
        self.address, self.device_id = address, device_id

    def read(self, entities: Iterable[p4r.Entity]) -> list[p4r.Entity]:
        options = [("grpc.max_receive_message_length", MAX_MESSAGE)]
        with grpc.insecure_channel(self.address, options=options) as channel:
            stub = p4r_grpc.P4RuntimeStub(channel)
            request = p4r.ReadRequest(device_id=self.device_id, entities=list(entities))
            return [e for reply in stub.Read(request, timeout=120) for e in reply.entities]


def managed_snapshot(target: RunningTarget, schema: P4Schema) -> frozenset[bytes]:
    """What the target holds of what agents manage (``read_managed``), each entity in the
    installer's canonical form (no counter data, match fields ordered)."""
    reader = cast(P4RuntimeClient, PlainReader(target.grpc_address, target.device_id))
    return frozenset(canonical_value(comparable(e)) for e in read_managed(reader, schema))


class UpdateCounter:
    """While active, counts the Write RPCs every P4RuntimeClient of this process sends
    (all of them go through its ``_send``; refused ones count too) and their updates, by
    entity kind."""

    NOT_MANAGED = frozenset({"digest_entry"})
    """Kinds that are no rule or port map: the digest configuration a (re)connecting agent
    sends so that the target reports new connections to it."""

    def __init__(self) -> None:
        self.by_kind: Counter[str] = Counter()
        self.rpcs = 0
        self._saved: Any = None

    def __enter__(self) -> UpdateCounter:
        self._saved = original = P4RuntimeClient._send

        def counted(client: P4RuntimeClient, request: p4r.WriteRequest) -> Callable[[], None]:
            self.rpcs += 1
            for update in request.updates:
                self.by_kind[update.entity.WhichOneof("entity") or "?"] += 1
            return original(client, request)

        P4RuntimeClient._send = counted  # type: ignore[method-assign, assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        P4RuntimeClient._send = self._saved  # type: ignore[method-assign]

    @staticmethod
    def managed(by_kind: dict[str, int]) -> int:
        return sum(n for kind, n in by_kind.items() if kind not in UpdateCounter.NOT_MANAGED)


Calls = list[tuple[float, float, bool]]
"""(start, end, returned normally) of calls, in ``time.monotonic()`` seconds."""


@contextlib.contextmanager
def call_times(owner: object, name: str, into: Calls) -> Iterator[None]:
    """While active, every call of ``owner.name`` (a class's method: every instance's) is
    timed into ``into``."""
    original = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0, ok = time.monotonic(), False
        try:
            value = original(*args, **kwargs)
            ok = True
            return value
        finally:
            into.append((t0, time.monotonic(), ok))

    setattr(owner, name, timed)
    try:
        yield
    finally:
        if isinstance(owner, type):
            setattr(owner, name, original)
        else:
            delattr(owner, name)


# -- traffic ------------------------------------------------------------------------------


def _paced_sender(conn: Connection, ifname: str, frames: list[bytes], pps: float) -> None:
    """The paced sender's process: "ready" once its socket is bound; on "run", ``frames``
    round-robin out of ``ifname`` at ``pps`` ("sending" after the first) until "stop",
    then (sent, refused by the socket); "exit" ends it."""
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as sock:
        sock.bind((ifname, 0))
        conn.send("ready")
        while conn.recv() == "run":
            sent = refused = n = 0
            start = time.monotonic()
            while n == 0 or not conn.poll():
                ahead = start + n / pps - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
                try:
                    sock.send(frames[n % len(frames)])
                    sent += 1
                except OSError:
                    refused += 1
                if n == 0:
                    conn.send("sending")
                n += 1
            conn.recv()
            conn.send((sent, refused))


class PacedSender:
    """Frames at a steady pace from a process of its own (this one's work, an agent
    starting say, never slows it); started and stopped on demand, counting what it sent."""

    def __init__(self, stack: ExitStack, ifname: str, frames: list[bytes], pps: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_paced_sender, daemon=True,
                                        args=(child, ifname, frames, pps))
        self._process.start()
        stack.callback(self.close)
        if not self._conn.poll(60) or self._conn.recv() != "ready":
            raise RuntimeError("the paced sender did not start within 60 s")

    def run(self) -> None:
        """Start sending; returns once the first frame is out."""
        self._conn.send("run")
        if not self._conn.poll(30) or self._conn.recv() != "sending":
            raise RuntimeError("the paced sender did not start sending within 30 s")

    def stop(self) -> int:
        """Frames sent since ``run`` (a frame the socket refused is not counted)."""
        self._conn.send("stop")
        if not self._conn.poll(30):
            raise RuntimeError("the paced sender did not answer within 30 s")
        sent, _refused = self._conn.recv()
        return int(sent)

    def close(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(OSError):
                self._conn.send("exit")
            self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=10)


def establish(guest_if: str, uplink_if: str, frames: Frames, count: int, pps: float,
              known: Callable[[], int]) -> tuple[float, int]:
    """Open connections 0..count-1 of ``frames`` by real packets (SYN from the guest,
    SYN-ACK from the uplink, ACK from the guest, in blocks of 5,000, each step paced by
    bench_handover's ``deliver``); (seconds until ``known()`` stopped growing, final ACKs
    that came through)."""
    t0 = time.monotonic()
    acked = 0
    for start in range(0, count, 5_000):
        ids = range(start, min(count, start + 5_000))
        for out_if, in_if, flags, reply in ((guest_if, uplink_if, "S", False),
                                            (uplink_if, guest_if, "SA", True),
                                            (guest_if, uplink_if, "A", False)):
            came = deliver(out_if, in_if, [frames.frame(i, flags, reply=reply) for i in ids],
                           pps)
        acked += came
    last, deadline = -1, time.monotonic() + 60
    while known() != last and time.monotonic() < deadline:
        last = known()
        time.sleep(0.5)  # digests come in lists at most 10 ms late; stop when none come
    return time.monotonic() - t0, acked


def veths(stack: ExitStack, *ports: int) -> tuple[Topology, dict[int, str]]:
    topo = stack.enter_context(Topology())
    for port in ports:
        topo.add_veth(port)
    return topo, {p: pair.switch_end for p, pair in topo.pairs.items()}


def host_config(vnics: list[dict[str, Any]], state: dict[str, Any]) -> dict[str, Any]:
    return {"target": {"kind": "remote", "address": "unused"}, "vnics": vnics, "state": state}


# -- 1. agent restart ---------------------------------------------------------------------


def bulk_rules(rules: int) -> dict[str, Any]:
    """A flow of ``rules`` one-port UDP allow rules (rule i on port 10000 + i)."""
    return {"id": "bulk", "match": {"direction": "from-guest", "protocol": "udp"},
            "config": {"services": [], "default_verdict": "deny"},
            "rules": [{"id": f"r{i}", "match": {"dst_ports": 10_000 + i}, "verdict": "allow"}
                      for i in range(rules)]}


def restart_config(workdir: Path) -> dict[str, Any]:
    """10 VNICs on ports 1..20 (only 1 and 2, VNIC 1's, have veths), default intervals."""
    return host_config(
        [{"name": f"vm-{i}", "id": i, "guest_port": 2 * i - 1, "uplink_port": 2 * i,
          "quotas": {"rules": 2 * RULES_PER_VNIC}} for i in range(1, VNICS + 1)],
        {"path": str(workdir / "restart-state.db")})


def _child_agent() -> None:
    """The agent of the ``kill -9`` variant, in a ``python -c`` child: imports done, it
    says so, waits for "go", then constructs and starts an agent (timed, its writes
    counted) and reports; it then serves until killed (or "stop")."""
    spec = json.loads(sys.argv[1])
    config = parse_config(spec["config"])
    print(json.dumps({"imported": True}), flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    with UpdateCounter() as counter:
        t0 = time.perf_counter()
        journal = Journal.open(config.state.path)
        agent = Agent(config, spec["address"], device_id=spec["device_id"], journal=journal,
                      backoff=BACKOFF)
        t1 = time.perf_counter()
        agent.start()
        t2 = time.perf_counter()
    print(json.dumps({"seconds": t2 - t0, "construct_s": t1 - t0,
                      "updates": dict(counter.by_kind), "write_rpcs": counter.rpcs,
                      "relearned": len(agent.slow_path.connections.known())}), flush=True)
    sys.stdin.readline()
    agent.stop()
    journal.close()


class ChildProcess:
    """A ``python -c`` process that runs ``function`` of this repository's benchmarks
    with an agent's spec (its configuration and target) and answers in JSON lines."""

    def __init__(self, stack: ExitStack, function: str, config: dict[str, Any],
                 target: RunningTarget, log: Path) -> None:
        spec = json.dumps({"config": config, "address": target.grpc_address,
                           "device_id": target.device_id})
        module, _, name = function.rpartition(".")
        code = f"from {module} import {name}; {name}()"
        self.log = log
        with log.open("ab") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-c", code, spec], cwd=str(REPO), stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=err, text=True)
        self.pid = self.process.pid
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put("")

    def _next(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"the agent process said nothing within {timeout:g} s "
                               f"(log {self.log})") from None
        if not line:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the agent process exited:\n{tail}")
        return cast(dict[str, Any], json.loads(line))


class ChildAgent(ChildProcess):
    """A ``python -c`` process that will run an agent (``_child_agent``)."""

    def __init__(self, stack: ExitStack, config: dict[str, Any], target: RunningTarget,
                 log: Path) -> None:
        super().__init__(stack, "benchmarks.bench_service._child_agent", config, target, log)
        stack.callback(self.kill)

    def wait_imported(self) -> None:
        self._next(60)

    def go(self) -> dict[str, Any]:
        """Start the agent; what it reported once ``start()`` returned."""
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        return self._next(120)

    def kill(self) -> None:
        """``kill -9``, by PID."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


def _window(sender: PacedSender, guest_if: str, action: Callable[[], dict[str, Any]]
            ) -> dict[str, Any]:
    """``action`` with frames of established connections flowing through it (from
    ``MARGIN_S`` before to ``MARGIN_S`` after); what it returned, with frames sent and
    received on the guest's veth (counted once everything in flight has arrived)."""
    rx0 = rx_packets(guest_if)
    sender.run()
    time.sleep(MARGIN_S)  # frames flowing before the agent goes: a window, not a wait
    result = action()
    time.sleep(MARGIN_S)
    sent = sender.stop()
    received = wait_delivered(guest_if, rx0, sent, timeout=10, quiet=0.5)
    return {**result, "sent": sent, "received": received, "lost": sent - received}


def run_restart(result: dict[str, Any], workdir: Path, rounds: int, kill_rounds: int
                ) -> dict[str, Any]:
    """Fills ``result`` as it goes (a failure leaves what was measured) and returns it."""
    require_root("the restart benchmark (veth pairs)")
    data = restart_config(workdir)
    config = parse_config(data)
    result.update(vnics=VNICS, rules_per_vnic=RULES_PER_VNIC, flowing_connections=FLOWING,
                  flow_pps=FLOW_PPS, stop=[], kill=[])
    with ExitStack() as stack:
        topo, ports = veths(stack, 1, 2)
        guest_if, uplink_if = topo.pairs[1].test_end, topo.pairs[2].test_end
        target = stack.enter_context(start_target("embedded", ports,
                                                  output=workdir / "restart-target.log"))
        journal = Journal.open(config.state.path)
        agent = Agent(config, target.grpc_address, device_id=target.device_id,
                      journal=journal, backoff=BACKOFF).start()
        current: list[tuple[Agent, Journal]] = [(agent, journal)]

        def leave() -> None:
            for old, old_journal in current:
                old.stop()
                old_journal.close()
            current.clear()

        stack.callback(leave)
        t0 = time.perf_counter()
        for vnic in config.vnics:
            flows: list[Any] = [bulk_rules(RULES_PER_VNIC)]
            if vnic.id == 1:  # a stateful firewall for the connections that flow
                flows = [*cast(list[Any], RULES["flows"]), *flows]
            agent.apply(vnic.name, load_data({"flows": flows}))
        result["apply_all_s"] = round(time.perf_counter() - t0, 3)
        frames = Frames(FLOWING)
        _setup, acked = establish(guest_if, uplink_if, frames, FLOWING, FLOW_PPS,
                                  lambda: len(current[0][0].slow_path.connections.known()))
        result["established"] = acked
        checkpoints = agent.checkpoints
        assert checkpoints is not None
        result["checkpointed"] = poll(
            lambda: checkpoints.status("vm-1").connections >= FLOWING, 30)
        flowing = [frames.frame(i, "A", reply=True) for i in range(FLOWING)]
        sender = PacedSender(stack, uplink_if, flowing, FLOW_PPS)
        result["baseline"] = _window(sender, guest_if, lambda: {})
        entities = managed_snapshot(target, agent.schema)
        result["entities_on_target"] = len(entities)

        def in_process() -> dict[str, Any]:
            leave()
            with UpdateCounter() as counter:
                t0 = time.perf_counter()
                journal = Journal.open(config.state.path)
                agent = Agent(config, target.grpc_address, device_id=target.device_id,
                              journal=journal, backoff=BACKOFF)
                t1 = time.perf_counter()
                agent.start()
                t2 = time.perf_counter()
            current.append((agent, journal))
            return {"seconds": t2 - t0, "construct_s": t1 - t0,
                    "updates": dict(counter.by_kind), "write_rpcs": counter.rpcs,
                    "relearned": len(agent.slow_path.connections.known())}

        stopped = result["stop"]
        for _ in range(rounds):
            before = managed_snapshot(target, agent.schema)
            outcome = _window(sender, guest_if, in_process)
            after = managed_snapshot(target, agent.schema)
            stopped.append({**outcome, "entities_before": len(before),
                            "entities_after": len(after), "same_entities": before == after})

        # kill -9: agents in child processes; each round kills the running one and has a
        # fresh child (its imports done beforehand) start the next, timed inside it.
        leave()
        child = ChildAgent(stack, data, target, workdir / "restart-child.log")
        child.wait_imported()
        child.go()
        killed = result["kill"]
        for _ in range(kill_rounds):
            following = ChildAgent(stack, data, target, workdir / "restart-child.log")
            following.wait_imported()
            before = managed_snapshot(target, agent.schema)

            def kill_and_start(old: ChildAgent = child, new: ChildAgent = following
                               ) -> dict[str, Any]:
                t0 = time.perf_counter()
                old.kill()
                reported = new.go()
                return {**reported, "kill_to_ready_s": time.perf_counter() - t0}

            outcome = _window(sender, guest_if, kill_and_start)
            after = managed_snapshot(target, agent.schema)
            killed.append({**outcome, "entities_before": len(before),
                           "entities_after": len(after), "same_entities": before == after})
            child = following
        child.kill()
    for variant in ("stop", "kill"):
        runs = result[variant]
        if runs:
            result[f"{variant}_seconds"] = stats([r["seconds"] for r in runs])
    return result


def report_restart(r: dict[str, Any]) -> list[str]:
    lines = [f"agent restart on a live embedded target: {r['vnics']} VNICs x "
             f"{r['rules_per_vnic']:,} rules ({r['entities_on_target']:,} managed entities "
             f"on the target; applied in {r['apply_all_s']:.2f} s), journal on disk; "
             f"{r['established']} of {FLOWING} connections established on VNIC 1, their "
             f"frames at {FLOW_PPS:,.0f} pps from the uplink towards the guest",
             f"  baseline window without a restart: {r['baseline']['received']} of "
             f"{r['baseline']['sent']} frames received"]
    names = {"stop": "agent.stop(), new Agent in this process",
             "kill": "kill -9 of a python -c child agent, a new child starts one"}
    for variant in ("stop", "kill"):
        runs = r[variant]
        if not runs:
            continue
        s = r[f"{variant}_seconds"]
        managed = [UpdateCounter.managed(x["updates"]) for x in runs]
        other = [sum(x["updates"].values()) - m for x, m in zip(runs, managed, strict=True)]
        lost = [x["lost"] for x in runs]
        same = all(x["same_entities"] for x in runs)
        lines += [
            f"  {names[variant]}, {len(runs)} rounds:",
            f"    construction to start() returning (adopted, reconciled): median "
            f"{s['median']:.3f} s, max {s['max']:.3f} s (rounds {s['rounds']}); "
            f"construction alone median "
            f"{statistics.median(x['construct_s'] for x in runs):.3f} s"
            f"  [<= {GOAL_RESTART_S:g} s: {goal(s['median'] <= GOAL_RESTART_S)} by the "
            f"median, {goal(s['max'] <= GOAL_RESTART_S)} by every round]",
            f"    updates written to rules/port maps/meters/profiles on start: {managed}; "
            f"other updates (digest configuration): {other}, in "
            f"{[x['write_rpcs'] for x in runs]} Write RPCs; managed entities read back "
            f"before and after {'identical' if same else 'DIFFERENT'} in every round"
            f"  [zero writes: {goal(not any(managed))}]",
            f"    frames of established connections through the restart window: sent "
            f"{[x['sent'] for x in runs]}, received {[x['received'] for x in runs]}, lost "
            f"{lost}  [none lost: {goal(not any(lost))}]",
            f"    connections relearned from the checkpoint by the new agent: "
            f"{[x['relearned'] for x in runs]}",
        ]
        if variant == "kill":
            lines.append(f"    kill -9 to the new agent ready, seen from outside: median "
                         f"{statistics.median(x['kill_to_ready_s'] for x in runs):.3f} s")
    return lines


# -- 2. target restart --------------------------------------------------------------------


def run_target_restart(result: dict[str, Any], workdir: Path, connections: int, pps: float,
                       rounds: int) -> dict[str, Any]:
    """Fills ``result`` as it goes (a failure leaves what was measured) and returns it."""
    require_root("the target-restart benchmark (veth pairs)")
    artifacts = Artifacts.packaged("large")
    config = parse_config(host_config(
        [{"name": "app", "id": 3, "guest_port": 1, "uplink_port": 2,
          "quotas": {"tracked_connections": 2**31 - 1}}],
        {"path": str(workdir / "target-restart-state.db"), "checkpoint_interval": 0.5}))
    result.update(connections=connections, pps=pps, pipeline="large",
                  checkpoint_interval_s=0.5, rounds=[])
    with ExitStack() as stack:
        topo, ports = veths(stack, 1, 2)
        guest_if, uplink_if = topo.pairs[1].test_end, topo.pairs[2].test_end
        target = stack.enter_context(start_target("embedded", ports,
                                                  output=workdir / "tr-target-0.log"))
        journal = stack.enter_context(Journal.open(config.state.path))
        agent = Agent(config, target.grpc_address, device_id=target.device_id,
                      journal=journal, artifacts=artifacts, backoff=BACKOFF).start()
        stack.callback(agent.stop)
        agent.apply("app", load_data(RULES))
        frames = Frames(connections)
        setup_s, acked = establish(guest_if, uplink_if, frames, connections, pps,
                                   lambda: len(agent.slow_path.connections.known()))
        learned = len(agent.slow_path.connections.known())
        result.update(setup_s=round(setup_s, 1), acks_delivered=acked, learned=learned)
        replies = [frames.frame(i, "A", reply=True) for i in range(connections)]
        strangers = Frames(1000, server_port=8081)  # connections never opened
        unsolicited = [strangers.frame(i, "A", reply=True) for i in range(1000)]
        for n in range(1, rounds + 1):
            one: dict[str, Any] = {}
            result["rounds"].append(one)
            target = _restart_target(one, stack, workdir / f"tr-target-{n}.log", agent,
                                     target, ports, learned, n)
            if "error" in one:
                break
            # Control: replies of 1,000 connections never opened are dropped as
            # unsolicited, so what passes below passes as tracked.
            one["control_sent"] = len(unsolicited)
            one["control_delivered"] = deliver(uplink_if, guest_if, unsolicited, pps)
            one["delivered"] = deliver(uplink_if, guest_if, replies, pps)
        done = [r["restored_s"] for r in result["rounds"] if "error" not in r]
        if done:
            result["restored_s"] = stats(done)
    return result


def _restart_target(one: dict[str, Any], stack: ExitStack, log: Path, agent: Agent,
                    target: RunningTarget, ports: dict[int, str], learned: int,
                    reconnects: int) -> RunningTarget:
    """Once the checkpoint holds every connection: kill ``target``, start a new one on its
    ports and address and wait until ``agent`` reconnected (its ``reconnects``-th time);
    the new target. Figures into ``one``."""
    checkpoints = agent.checkpoints
    assert checkpoints is not None
    since, waited = time.time(), time.monotonic()
    held = poll(lambda: checkpoints.status("app").connections >= learned
                and (checkpoints.status("app").taken or 0) > since, 300, 0.1)
    one["checkpoint_wait_s"] = round(time.monotonic() - waited, 2)
    one["checkpointed"] = checkpoints.status("app").connections
    if not held:
        one["error"] = (f"the checkpoint never held all {learned} connections "
                        f"({checkpoints.last_error or 'no error reported'})")
        return target
    # Where the time goes: the agent's connection attempts, its pipeline push and its
    # import of the checkpoint, timed from here (nothing in them changes).
    opens: Calls = []
    pushes: Calls = []
    imports: Calls = []
    with ExitStack() as timing:
        timing.enter_context(call_times(P4RuntimeClient, "open", opens))
        timing.enter_context(call_times(P4RuntimeClient, "ensure_pipeline", pushes))
        timing.enter_context(call_times(agent.conns, "restore", imports))
        target.process.kill()  # SIGKILL, by PID
        target.process.wait(timeout=30)
        started = time.monotonic()
        target = stack.enter_context(start_target(
            "embedded", ports, output=log, grpc_address=target.grpc_address))
        serving = time.monotonic() - started
        back = poll(lambda: agent.target_status().reconnects >= reconnects
                    and agent.target_status().connected, 300, 0.01)
        restored = time.monotonic() - started

    def phase(calls: Calls) -> list[float] | None:
        done = [c for c in calls if c[2]]
        return [round(done[-1][0] - started, 3), round(done[-1][1] - started, 3)] \
            if done else None

    one.update(serving_s=round(serving, 3), restored_s=round(restored, 3),
               known_after=len(agent.slow_path.connections.known()),
               connect_attempts=len(opens),
               phases_s={"connected": phase(opens), "pipeline_push": phase(pushes),
                         "connections_import": phase(imports)})
    if not back:
        one["error"] = f"the agent did not reconnect: {agent.target_status()}"
    return target


def phases(p: dict[str, list[float] | None], serving: float, restored: float) -> str:
    parts = [f"start_target returned {serving:.2f} (its readiness poll has 0.5 s steps)"]
    for name, label in (("connected", "agent connected"), ("pipeline_push", "pipeline pushed"),
                        ("connections_import", "checkpoint imported")):
        span = p.get(name)
        if span:
            parts.append(f"{label} {span[0]:.2f}-{span[1]:.2f}")
    parts.append(f"reconnect complete {restored:.2f}")
    return ", ".join(parts)


def report_target_restart(r: dict[str, Any]) -> list[str]:
    lines = [f"target restart (SIGKILL, new process on the same ports and address), "
             f"{r['pipeline']} pipeline, checkpoint every {r['checkpoint_interval_s']} s:",
             f"  setup: {r['connections']:,} connections opened by real frames in "
             f"{r['setup_s']} s at {r['pps']:,.0f} pps ({r['acks_delivered']:,} final ACKs "
             f"through), {r['learned']:,} learned by the agent"]
    for n, one in enumerate(r["rounds"], start=1):
        lines.append(f"  restart {n}: the checkpoint held {one['checkpointed']:,} connections "
                     f"{one['checkpoint_wait_s']} s after the wait for it began")
        if "restored_s" in one:
            lines += [
                f"    new target process started to the agent reconnected, rules and "
                f"connections restored: {one['restored_s']:.2f} s  [<= "
                f"{GOAL_TARGET_RESTART_S:g} s: {goal(one['restored_s'] <= GOAL_TARGET_RESTART_S)}]",
                f"    timeline from the new target's start (s): "
                f"{phases(one['phases_s'], one['serving_s'], one['restored_s'])}; "
                f"{one['connect_attempts']} connection attempts by the agent"]
        if "error" in one:
            lines.append(f"    FAILED: {one['error']}")
            continue
        share = one["delivered"] / r["connections"]
        lines += [
            f"    afterwards one reply per connection from the uplink: {one['delivered']:,} "
            f"of {r['connections']:,} reached the guest ({share:.2%} restored); the agent "
            f"knows {one['known_after']:,}",
            f"    control: {one['control_delivered']} of {one['control_sent']} replies of "
            f"connections never opened passed"]
    if "restored_s" in r:
        s = r["restored_s"]
        lines.append(f"  restored: median {s['median']:.2f} s, max {s['max']:.2f} s over "
                     f"{len(s['rounds'])} restarts  [<= {GOAL_TARGET_RESTART_S:g} s: "
                     f"{goal(s['median'] <= GOAL_TARGET_RESTART_S)} by the median]")
    return lines


# -- 3. checkpoint cost ------------------------------------------------------------------


class TimedExport:
    """``Agent.export_state`` timed: how often a checkpoint ran and how long each took."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent
        self.durations: list[float] = []

    def __call__(self, vnic: str, learned: Sequence[Learned]) -> list[ExportedConnection]:
        t0 = time.perf_counter()
        try:
            return [c for chunk in self._agent.export_chunks(vnic, learned=learned)
                    for c in chunk]
        finally:
            self.durations.append(time.perf_counter() - t0)


def measure_pps(send_if: str, recv_if: str, frames_file: Path, warmup: float,
                window: float) -> tuple[float, float]:
    """(delivered, offered) frames per second over ``window`` at saturation: the sender
    (bench_sender, its own process) on ``SENDER_CPU``, delivered frames from the kernel's
    counter of ``recv_if``."""
    seconds = warmup + window + 0.5
    sender = subprocess.Popen(
        ["taskset", "-c", str(SENDER_CPU), sys.executable, "-m", "benchmarks.bench_sender",
         send_if, str(frames_file), str(seconds)],
        stdout=subprocess.PIPE, text=True, cwd=str(REPO))
    try:
        time.sleep(warmup)  # a measurement window, not a readiness wait
        first, t0 = rx_packets(recv_if), time.monotonic()
        time.sleep(window)
        last, t1 = rx_packets(recv_if), time.monotonic()
        out, _ = sender.communicate(timeout=seconds + 30)
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
    sent = int(out.split()[0]) if out.split() else 0
    return (last - first) / (t1 - t0), sent / seconds


def run_checkpoint(result: dict[str, Any], workdir: Path, connections: int, rounds: int,
                   warmup: float, window: float, pps: float) -> dict[str, Any]:
    """Fills ``result`` as it goes (a failure leaves what was measured) and returns it."""
    require_root("the checkpoint benchmark (veth pairs)")
    if (os.cpu_count() or 1) < 2:
        return {"skipped": "needs two CPUs (target and sender on their own cores)"}
    config = parse_config(host_config(
        [{"name": "app", "id": 3, "guest_port": 1, "uplink_port": 2,
          "quotas": {"tracked_connections": 2**31 - 1}}],
        {"path": str(workdir / "checkpoint-state.db")}))
    interval = config.state.checkpoint_interval
    result.update(connections=connections, interval_s=interval, rounds=rounds,
                  window_s=window, frame_bytes=64)
    with ExitStack() as stack, pinned(SENDER_CPU):
        topo, ports = veths(stack, 1, 2)
        guest_if, uplink_if = topo.pairs[1].test_end, topo.pairs[2].test_end
        target = stack.enter_context(start_target("embedded", ports,
                                                  output=workdir / "checkpoint-target.log"))
        pin_process(target.process.pid, TARGET_CPU)
        journal = stack.enter_context(Journal.open(config.state.path))
        agent = Agent(config, target.grpc_address, device_id=target.device_id,
                      journal=journal, backoff=BACKOFF).start()
        stack.callback(agent.stop)
        agent.apply("app", load_data(RULES))
        frames = Frames(connections, seed=11)
        setup_s, acked = establish(guest_if, uplink_if, frames, connections, pps,
                                   lambda: len(agent.slow_path.connections.known()))
        result.update(setup_s=round(setup_s, 1), acks_delivered=acked,
                      learned=len(agent.slow_path.connections.known()))
        assert agent.checkpoints is not None
        agent.checkpoints.stop()  # the rounds start and stop their own
        takes = []
        for _ in range(3):
            t0 = time.perf_counter()
            saved = agent.checkpoints.take()
            takes.append(time.perf_counter() - t0)
        result.update(checkpoint_take_s=stats(takes), checkpoint_connections=saved)
        frames_file = workdir / "checkpoint-frames.bin"
        write_frames(frames_file, [frames.frame(i, "A", reply=True) for i in range(connections)])
        on: list[float] = []
        off: list[float] = []
        offered: dict[str, list[float]] = {"on": [], "off": []}
        taken: list[list[float]] = []
        for _ in range(rounds):
            export = TimedExport(agent)
            checkpointer = Checkpointer(journal, interval, agent.vnic_names, agent.learned,
                                        export)
            checkpointer.start()
            try:
                delivered, sent = measure_pps(uplink_if, guest_if, frames_file, warmup, window)
            finally:
                checkpointer.stop()
            on.append(delivered)
            offered["on"].append(sent)
            taken.append([round(d, 3) for d in export.durations])
            delivered, sent = measure_pps(uplink_if, guest_if, frames_file, warmup, window)
            off.append(delivered)
            offered["off"].append(sent)
        result.update(
            pps_on=[round(v, 1) for v in on], pps_off=[round(v, 1) for v in off],
            offered_pps={k: [round(v, 1) for v in vs] for k, vs in offered.items()},
            median_on=round(statistics.median(on), 1),
            median_off=round(statistics.median(off), 1),
            median_ratio_on_off=median_ratio(on, off),
            checkpoints_in_on_rounds=taken)
    return result


def report_checkpoint(r: dict[str, Any]) -> list[str]:
    if "skipped" in r:
        return [f"checkpoint cost skipped: {r['skipped']}"]
    ratio = r["median_ratio_on_off"]
    per_round = [len(t) for t in r["checkpoints_in_on_rounds"]]
    durations = [d for t in r["checkpoints_in_on_rounds"] for d in t]
    return [
        f"checkpointing's cost on the data path: {r['learned']:,} tracked connections "
        f"(opened in {r['setup_s']} s), replies of all of them at saturation "
        f"({r['frame_bytes']}-byte frames), target on CPU {TARGET_CPU}, sender and agent on "
        f"CPU {SENDER_CPU}, {r['rounds']} rounds x {r['window_s']} s, on and off alternating",
        f"  one checkpoint of {r['checkpoint_connections']:,} connections, taken alone: "
        f"median {r['checkpoint_take_s']['median']:.3f} s (rounds "
        f"{r['checkpoint_take_s']['rounds']})",
        f"  checkpointer on (every {r['interval_s']:g} s): median {r['median_on']:,.0f} pps "
        f"(rounds {r['pps_on']}); checkpoints per round {per_round}, each "
        f"{statistics.median(durations) if durations else 0:.3f} s median",
        f"  checkpointer off: median {r['median_off']:,.0f} pps (rounds {r['pps_off']})",
        f"  offered by the sender: on {r['offered_pps']['on']}, off {r['offered_pps']['off']}",
        f"  median per-round ratio on/off: {ratio:.4f} ({(ratio - 1) * 100:+.1f}%)  "
        f"[<= {GOAL_APART:.0%} apart: {goal(abs(ratio - 1) <= GOAL_APART)}]",
    ]


# -- 4. journal ---------------------------------------------------------------------------


def run_journal(workdir: Path, updates: int) -> dict[str, Any]:
    channel = f"unix:{workdir}/journal-bench.sock"
    config = parse_config(host_config(
        [{"name": "bench", "id": 1, "guest_port": 1, "uplink_port": 2, "channel": channel,
          "quotas": {"flows": 100, "rules": 20000}}],
        {"path": str(workdir / "journal-state.db")}))
    pin = (os.cpu_count() or 1) >= 2
    latencies: dict[str, list[float]] = {"without": [], "with": []}
    with ExitStack() as stack:
        target = stack.enter_context(start_target("embedded", {},
                                                  output=workdir / "journal-target.log"))
        if pin:
            pin_process(target.process.pid, TARGET_CPU)
            stack.enter_context(pinned(SENDER_CPU))
        halves = [updates // 2, updates - updates // 2]
        for count in halves:  # without, with, without, with
            for mode in ("without", "with"):
                latencies[mode] += _single_rule_updates(config, channel, target,
                                                        mode == "with", count)
    result: dict[str, Any] = {"updates": updates, "rule_set": 10, "pinned": pin,
                              "journal_path": str(config.state.path)}
    for mode, values in latencies.items():
        result[f"{mode}_journal_ms"] = {
            "p50": percentile(values, 0.5), "p99": percentile(values, 0.99),
            "max": max(values), "updates": len(values)}
    result["latencies_ms"] = {k: [round(v, 3) for v in vs] for k, vs in latencies.items()}
    return result


def _single_rule_updates(config: HostConfig, channel: str, target: RunningTarget,
                         journaled: bool, count: int) -> list[float]:
    """bench_agent's single-rule updates of a 10-rule set, through the guest channel,
    by an agent with or without the state file; milliseconds each."""
    journal = Journal.open(config.state.path) if journaled else None
    agent = Agent(config, target.grpc_address, device_id=target.device_id, journal=journal,
                  reconnect=False).start()
    address = config.vnic("bench").channel
    assert address is not None
    server = serve_channel(agent, "bench", address)
    latencies: list[float] = []
    try:
        with Channel(channel) as guest:
            latencies = single_rule_updates(guest, count)
            guest.withdraw(all_flows=True)
    finally:
        server.stop(None)
        agent.stop()
        if journal is not None:
            journal.close()
    return latencies


def report_journal(r: dict[str, Any]) -> list[str]:
    w, wo = r["with_journal_ms"], r["without_journal_ms"]
    return [
        f"single-rule update of a 10-rule set, guest shim to acknowledged, {r['updates']:,} "
        f"each, with and without the journal in alternating halves"
        f"{' (target on CPU 0, agent on CPU 1)' if r['pinned'] else ''}:",
        f"  with the journal (SQLite, synchronous=FULL, state file {r['journal_path']}): "
        f"p50 {w['p50']:.1f} ms, p99 {w['p99']:.1f} ms, max {w['max']:.1f} ms  "
        f"[p99 <= {GOAL_P99_MS:g} ms: {goal(w['p99'] <= GOAL_P99_MS)}]",
        f"  without: p50 {wo['p50']:.1f} ms, p99 {wo['p99']:.1f} ms, max {wo['max']:.1f} ms",
    ]


# -- command line --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_service",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="?", default="all", choices=(*WHAT, "all"))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--rounds", type=int, default=5,
                        help="restart: rounds of each variant (default 5)")
    parser.add_argument("--connections", type=int, default=100_000,
                        help="target-restart: connections (default 100,000)")
    parser.add_argument("--target-rounds", type=int, default=2,
                        help="target-restart: restarts of the target (default 2)")
    parser.add_argument("--tracked", type=int, default=10_000,
                        help="checkpoint: tracked connections (default 10,000)")
    parser.add_argument("--pps", type=float, default=15_000,
                        help="pace of the frames that open and check connections")
    parser.add_argument("--window", type=float, default=5.0,
                        help="checkpoint: seconds per round (default 5)")
    parser.add_argument("--ab-rounds", type=int, default=6,
                        help="checkpoint: on/off round pairs (default 6)")
    parser.add_argument("--updates", type=int, default=1000,
                        help="journal: single-rule updates per mode (default 1,000)")
    args = parser.parse_args(argv)
    chosen = WHAT if args.what == "all" else (args.what,)

    def job(what: str) -> Measurement:
        def run(result: dict[str, Any], workdir: Path) -> list[str]:
            if what == "restart":
                run_restart(result, workdir, args.rounds, args.rounds)
                return report_restart(result)
            if what == "target-restart":
                run_target_restart(result, workdir, args.connections, args.pps,
                                   args.target_rounds)
                return report_target_restart(result)
            if what == "checkpoint":
                run_checkpoint(result, workdir, args.tracked, args.ab_rounds, 1.0,
                               args.window, args.pps)
                return report_checkpoint(result)
            result.update(run_journal(workdir, args.updates))
            return report_journal(result)
        return run

    return measure_each([(what, job(what)) for what in chosen], "pyoffload-service-",
                        args.json)


Measurement = Callable[[dict[str, Any], Path], list[str]]
"""Fills the figures of one measurement (run in a scratch directory); its report lines."""


def measure_each(jobs: Sequence[tuple[str, Measurement]], prefix: str,
                 json_path: Path | None) -> int:
    """Run each measurement in one scratch directory, print its report, and write all
    figures as JSON; one failing leaves the others' figures. 1 when any failed."""
    figures: dict[str, Any] = {"command": " ".join(sys.argv), "started": time.time(),
                               "cpus": os.cpu_count()}
    failed = False
    with tempfile.TemporaryDirectory(prefix=prefix, dir="/var/tmp") as tmp:
        workdir = Path(tmp)
        for key, measure in jobs:
            began = time.monotonic()
            result: dict[str, Any] = {"load_average_at_start": os.getloadavg()}
            try:
                lines = measure(result, workdir)
            except Exception as exc:  # one measurement failing leaves the others' figures
                failed = True
                result["error"] = f"{type(exc).__name__}: {exc}"
                lines = [f"{key} FAILED (figures so far in the JSON): {result['error']}"]
            result["elapsed_s"] = round(time.monotonic() - began, 1)
            figures[key] = result
            load = ", ".join(f"{x:.1f}" for x in result["load_average_at_start"])
            print("\n".join([*lines, f"  ({key}: {result['elapsed_s']} s; load average at "
                                     f"its start {load} on {os.cpu_count()} CPUs)"]),
                  flush=True)
    if json_path:
        json_path.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {json_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
