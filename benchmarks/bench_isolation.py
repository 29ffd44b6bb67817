"""Benchmark guests' isolation in the agent: a neighbour's flood, and undecodable bodies' memory.

``.venv/bin/python -m benchmarks.bench_isolation flood|garbage-memory [--json FILE]`` runs
the embedded target as a process of its own and the agent in another (a ``python -c``
child serving every VNIC's channel, as ``pyoffload up`` does, with its journal on disk):
two VNICs, ``victim`` and ``neighbour``, each with a Unix-socket channel, quotas of 64
flows and 2,048 rules. Every guest is a process of its own, none of them the agent's, so
no client shares the agent's interpreter lock.

* ``flood``: the victim applies a single-rule request (two variants alternating, so every
  apply writes) ``--applies`` times at ``--rate`` a second, under its own rate limit, and
  times each from the guest shim to the acknowledgement; four phases: alone; while the
  neighbour (``--neighbours`` processes, each calling back to back) applies 1,000-rule
  requests (two variants alternating); while it sends ~4 MB requests of 60,000 rules that
  its quota refuses from their counts; while it sends bodies that do not decode. Per phase
  the victim's p50/p99/max and the neighbour's calls while the victim applied, by answer
  (done, refused for its rate, refused by its quota, refused as undecodable, other). At
  the end the victim's Get must return the generation its last apply was told. Goal: the
  victim's p99 at most 50 ms in every phase.
* ``garbage-memory``: the agent's resident memory (VmRSS) every ``--interval`` s while
  ``--clients`` processes send undecodable bodies to one channel back to back for
  ``--seconds`` (default 1,800: the issue's thirty minutes), in a fresh agent per variant:
  ``default`` (the channel's default rate limit: most calls refused before decoding) and
  ``unlimited`` (``channel_limits`` of 1,000,000 calls a second: every body decoded and
  refused as undecodable); memory before, at the end and after a pause, and the growth per
  call (least squares over the samples from the first on). Goal: the end within 10% of
  before.

Figures, not assertions. Needs no root; every process started here is stopped by PID,
every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack, suppress
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

import grpc
from guest_shim.address import parse_address
from guest_shim.client import Channel
from guest_shim.errors import GuestShimError
from guest_shim.service import method_path

from benchmarks.bench_agent import big_request, percentile
from benchmarks.bench_service import (
    ChildProcess,
    Measurement,
    goal,
    host_config,
    measure_each,
    poll,
)
from guest_shim import offload_pb2 as pb
from pyoffload.targets import RunningTarget, start_target

WHAT = ("flood", "garbage-memory")
VICTIM, NEIGHBOUR = "victim", "neighbour"
QUOTAS = {"flows": 64, "rules": 2048}
"""Both VNICs' quotas: room for the neighbour's 1,000-rule applies."""
FLOOD_RULES = 1000
OVER_QUOTA_RULES, OVER_QUOTA_BYTES = 60_000, 4_000_000
"""The over-quota request: this many rules, padded to about this size (under the
channel's receive limit, which the quotas above set at ~4.3 MB)."""
UNLIMITED = {"requests_per_second": 1_000_000, "request_burst": 1_000_000,
             "bytes_per_second": 2**31 - 1}
"""``channel_limits`` under which every call reaches decoding."""
GOAL_P99_MS, GOAL_RSS = 50.0, 0.10
CALL_TIMEOUT_S = 30.0
PHASES = (("alone", None), ("1,000-rule applies", "apply"),
          ("~4 MB over-quota requests", "over-quota"), ("undecodable bodies", "garbage"))


def rss_bytes(pid: int) -> int:
    """The resident memory of process ``pid`` (``VmRSS`` of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def isolation_config(workdir: Path, limits: dict[str, Any] | None = None) -> dict[str, Any]:
    """The victim (VNIC 1) and the neighbour (VNIC 2), each with a Unix-socket channel in
    ``workdir``; ``limits``: the neighbour's ``channel_limits`` (default: the defaults)."""
    def vnic(name: str, number: int) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": name, "id": number, "guest_port": 2 * number - 1,
            "uplink_port": 2 * number, "channel": f"unix:{workdir}/{name}.sock",
            "quotas": QUOTAS}
        if name == NEIGHBOUR and limits is not None:
            data["channel_limits"] = limits
        return data

    return host_config([vnic(VICTIM, 1), vnic(NEIGHBOUR, 2)],
                       {"path": str(workdir / f"isolation-{time.monotonic_ns()}.db")})


def channel_address(config: dict[str, Any], vnic: str) -> str:
    return next(str(v["channel"]) for v in config["vnics"] if v["name"] == vnic)


# -- the agent, in a process of its own ----------------------------------------------------


def _serve_agent() -> None:
    """The agent's process (``python -c``): an agent with its journal and every VNIC's
    channel, as ``pyoffload up`` runs them; says "ready" with its PID, then answers
    "refused" (calls each channel's rate limit refused) until "stop" or end of input."""
    from pyoffload.agent import Agent
    from pyoffload.agent.channel import serve_all
    from pyoffload.agent.config import parse_config
    from pyoffload.agent.journal import Journal
    from pyoffload.agent.tuning import tune_agent_process

    spec = json.loads(sys.argv[1])
    config = parse_config(spec["config"])
    tune_agent_process()  # as `pyoffload up` does
    with ExitStack() as stack:
        journal = stack.enter_context(Journal.open(config.state.path))
        agent = Agent(config, spec["address"], device_id=spec["device_id"],
                      journal=journal).start()
        stack.callback(agent.stop)
        servers = serve_all(agent)
        for server in servers.values():
            stack.callback(server.stop, None)
        print(json.dumps({"ready": True, "pid": os.getpid()}), flush=True)
        for line in sys.stdin:
            if line.strip() != "refused":
                break
            print(json.dumps({name: s.channel.rate.refused for name, s in servers.items()}),
                  flush=True)


class AgentProcess(ChildProcess):
    """A ``python -c`` process running the agent and its channels (``_serve_agent``)."""

    def __init__(self, stack: ExitStack, config: dict[str, Any], target: RunningTarget,
                 log: Path) -> None:
        super().__init__(stack, "benchmarks.bench_isolation._serve_agent", config, target,
                         log)
        stack.callback(self.stop)
        self._next(120)

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def refused(self) -> dict[str, int]:
        """Calls each channel's rate limit refused, as the agent counts them."""
        assert self.process.stdin is not None
        self.process.stdin.write("refused\n")
        self.process.stdin.flush()
        return cast(dict[str, int], self._next(30))

    def stop(self) -> None:
        """Ask it to stop; SIGKILL by PID when it has not within 30 s."""
        if self.process.poll() is None:
            assert self.process.stdin is not None
            try:
                self.process.stdin.write("stop\n")
                self.process.stdin.close()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(timeout=30)


# -- the neighbour: calls back to back from processes of their own ------------------------


def over_quota_body(rules: int = OVER_QUOTA_RULES, size: int = OVER_QUOTA_BYTES) -> bytes:
    """An Apply body of one flow of ``rules`` rules (each with its own addresses and port),
    the rule ids padded so the body is about ``size`` bytes."""
    def build(pad: int) -> bytes:
        request = pb.OffloadRequest()
        flow = request.flows.add(id="flood")
        flow.match.direction = pb.DIRECTION_FROM_GUEST
        flow.match.protocol = "tcp"
        flow.config.default_verdict = pb.VERDICT_DENY
        for i in range(rules):
            rule = flow.rules.add(id=f"r{i}" + "-" * pad, verdict=pb.VERDICT_ALLOW)
            rule.match.src = f"10.{i >> 8 & 255}.{i & 255}.0/24"
            rule.match.dst = f"192.168.{i >> 8 & 255}.{i & 255}/32"
            rule.match.dst_ports.lo = rule.match.dst_ports.hi = 1 + i % 65000
        return pb.ApplyRequest(request=request).SerializeToString()

    plain = build(0)
    return build(max(0, (size - len(plain)) // rules))


def apply_body(rules: int, salt: int) -> bytes:
    return pb.ApplyRequest(request=big_request(flows=1, rules=rules, salt=salt)
                           ).SerializeToString()


def garbage_bodies(size: int, count: int = 64, seed: int = 7) -> list[bytes]:
    """Bodies of about ``size`` bytes that never decode: field 1 (the request) announced
    one byte longer than the random bytes that follow."""
    rng = random.Random(seed)
    bodies = []
    for _ in range(count):
        payload = rng.randbytes(max(1, size - 4))
        length, varint = len(payload) + 1, bytearray()
        while length >= 0x80:
            varint.append(length & 0x7F | 0x80)
            length >>= 7
        varint.append(length)
        bodies.append(b"\x0a" + bytes(varint) + payload)
    return bodies


def bodies_for(mode: str, garbage_size: int) -> list[bytes]:
    if mode == "apply":
        return [apply_body(FLOOD_RULES, 0), apply_body(FLOOD_RULES, 1)]
    if mode == "over-quota":
        return [over_quota_body()]
    if mode == "garbage":
        return garbage_bodies(garbage_size)
    raise ValueError(f"unknown load {mode!r}")


def answer(counts: Counter[str], exc: grpc.RpcError) -> None:
    """Count a refusal by what it says."""
    code: grpc.StatusCode = exc.code()
    details: str = exc.details() or ""
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "over its rate" in details:
        counts["rate"] += 1
    elif code == grpc.StatusCode.RESOURCE_EXHAUSTED and "quota" in details:
        counts["quota"] += 1
    elif code == grpc.StatusCode.INVALID_ARGUMENT:
        counts["invalid"] += 1
    else:
        counts[f"other {code.name}"] += 1


def _load(conn: Connection, address: str, mode: str, garbage_size: int) -> None:
    """A neighbour's process: builds its bodies, "ready"; on "run" sends them in turn, one
    call after another, to the Apply method as raw bytes ("sending" after the first
    answer), counting answers; "report" is answered with the counts so far, "stop" with
    the counts and the seconds since "run"; "exit" ends it."""
    bodies = bodies_for(mode, garbage_size)
    target = parse_address(address)
    options = [*target.channel_options, ("grpc.max_receive_message_length", 1 << 20)]
    with grpc.insecure_channel(target.grpc_target, options=options) as channel:
        call = channel.unary_unary(method_path("Apply"), request_serializer=None,
                                   response_deserializer=None)
        conn.send({"ready": True, "body_bytes": [len(b) for b in bodies[:2]]})
        while conn.recv() == "run":
            counts: Counter[str] = Counter()
            start, n = time.monotonic(), 0
            while True:
                try:
                    call(bodies[n % len(bodies)], timeout=CALL_TIMEOUT_S)
                    counts["done"] += 1
                except grpc.RpcError as exc:
                    answer(counts, exc)
                n += 1
                if n == 1:
                    conn.send("sending")
                if conn.poll():
                    if conn.recv() == "report":
                        conn.send({"calls": n, **counts})
                        continue
                    break
            conn.send({"calls": n, **counts, "seconds": time.monotonic() - start})


class Load:
    """One neighbour process (``_load``) sending ``mode`` bodies to ``address``."""

    def __init__(self, stack: ExitStack, address: str, mode: str, garbage_size: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_load, daemon=True,
                                        args=(child, address, mode, garbage_size))
        self._process.start()
        stack.callback(self.close)
        if not poll(lambda: self._conn.poll() or not self._process.is_alive(), 120):
            raise RuntimeError(f"the {mode} load did not start within 120 s")
        if not self._conn.poll():
            raise RuntimeError(f"the {mode} load's process exited ({self._process.exitcode})")
        self.body_bytes: list[int] = self._conn.recv()["body_bytes"]

    def run(self) -> None:
        """Start calling; returns once the first call was answered."""
        self._conn.send("run")
        if not self._conn.poll(CALL_TIMEOUT_S + 30) or self._conn.recv() != "sending":
            raise RuntimeError("the load's first call got no answer")

    def _ask(self, what: str) -> dict[str, Any]:
        self._conn.send(what)
        if not self._conn.poll(CALL_TIMEOUT_S + 30):
            raise RuntimeError(f"the load did not answer {what!r}")
        return cast(dict[str, Any], self._conn.recv())

    def report(self) -> dict[str, Any]:
        return self._ask("report")

    def stop(self) -> dict[str, Any]:
        return self._ask("stop")

    def close(self) -> None:
        if self._process.is_alive():
            with suppress(OSError):
                self._conn.send("exit")
            self._process.join(timeout=CALL_TIMEOUT_S + 10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=10)


def since(now: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
    """The counts of ``now`` less those of ``then`` (seconds left out)."""
    return {k: v - then.get(k, 0) for k, v in now.items() if k != "seconds"}


def summed(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The loads' counts added up (seconds: the longest)."""
    total: Counter[str] = Counter()
    for r in reports:
        total.update({k: v for k, v in r.items() if k != "seconds"})
    result: dict[str, Any] = dict(total)
    seconds = [r["seconds"] for r in reports if "seconds" in r]
    if seconds:
        result["seconds"] = round(max(seconds), 2)
    return result



# -- 1. a neighbour's flood against another guest's applies ------------------------------


def single_rule(variant: int) -> pb.OffloadRequest:
    """The victim's whole rule set: one flow of one rule, on port 1 or 2 (``variant``)."""
    return big_request(flows=1, rules=1, salt=variant % 2)


def victim_applies(guest: Channel, count: int, rate: float, first: int
                   ) -> tuple[list[float], Counter[str], tuple[int, int] | None]:
    """``count`` applies of the single-rule variants in turn from ``first``, each started
    1/``rate`` s after the one before (at once after a late one); (milliseconds of those
    acknowledged, refusals by code, (variant, generation) of the last acknowledged)."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    last: tuple[int, int] | None = None
    due = time.monotonic()
    for i in range(first, first + count):
        ahead = due - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)  # pacing, not a readiness wait
        due = time.monotonic() + 1 / rate
        t0 = time.perf_counter()
        try:
            reply = guest.apply(single_rule(i))
        except GuestShimError as exc:
            errors[exc.code.name] += 1
            continue
        latencies.append((time.perf_counter() - t0) * 1000)
        last = (i, reply.generation)
    return latencies, errors, last


def ms(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    return {"count": len(values), "p50": round(percentile(values, 0.5), 2),
            "p99": round(percentile(values, 0.99), 2), "max": round(max(values), 2),
            "mean": round(statistics.fmean(values), 2)}


def run_flood(result: dict[str, Any], workdir: Path, applies: int, rate: float,
              neighbours: int, settle: float, garbage_size: int,
              neighbour_limits: dict[str, Any] | None) -> dict[str, Any]:
    """Fills ``result`` as it goes (a failure leaves what was measured) and returns it."""
    config = isolation_config(workdir, neighbour_limits)
    address = channel_address(config, NEIGHBOUR)
    result.update(applies=applies, rate=rate, neighbours=neighbours, settle_s=settle,
                  quotas=QUOTAS, neighbour_limits=neighbour_limits or "default",
                  phases=[])
    with ExitStack() as stack:
        target = stack.enter_context(start_target("embedded", {},
                                                  output=workdir / "flood-target.log"))
        agent = AgentProcess(stack, config, target, workdir / "flood-agent.log")
        result["agent_pid"] = agent.pid
        victim = stack.enter_context(Channel(channel_address(config, VICTIM)))
        last = (0, victim.apply(single_rule(0)).generation)
        variant = 1
        for name, mode in PHASES:
            phase: dict[str, Any] = {"phase": name, "load": mode}
            result["phases"].append(phase)
            with ExitStack() as phase_stack:
                loads = [Load(phase_stack, address, mode, garbage_size)
                         for _ in range(neighbours)] if mode else []
                if loads:
                    phase["neighbour_body_bytes"] = loads[0].body_bytes
                for load in loads:
                    load.run()
                if loads:
                    time.sleep(settle)  # the flood in full swing first: a window, not a wait
                refused, before = agent.refused(), summed([load.report() for load in loads])
                t0 = time.monotonic()
                latencies, errors, acked = victim_applies(victim, applies, rate, variant)
                seconds = time.monotonic() - t0
                phase["victim_seconds"] = round(seconds, 2)
                after, total = agent.refused(), summed([load.stop() for load in loads])
                phase["neighbour"] = {**since(total, before), "seconds": round(seconds, 2)}
                phase["neighbour_with_settle"] = total
            variant += applies
            last = acked or last
            phase.update(
                victim_ms=ms(latencies), victim_errors=dict(errors),
                rate_refused_by_agent=since(after, refused),
                agent_rss=agent.rss(), goal_met=bool(latencies) and not errors
                and percentile(latencies, 0.99) <= GOAL_P99_MS,
                latencies_ms=[round(v, 3) for v in latencies])
        installed = victim.get()
        port = installed.flows[0].rules[0].match.dst_ports.lo if installed.flows else None
        result["correctness"] = {
            "last_acknowledged_generation": last[1], "get_generation": installed.generation,
            "expected_port": single_rule(last[0]).flows[0].rules[0].match.dst_ports.lo,
            "get_port": port}
    c = result["correctness"]
    c["same"] = (c["last_acknowledged_generation"] == c["get_generation"]
                 and c["expected_port"] == c["get_port"])
    return result


def neighbour_line(n: dict[str, Any]) -> str:
    seconds = n.get("seconds") or 1.0
    other = {k: v for k, v in n.items() if k.startswith("other ")}
    calls = n.get("calls", 0)
    return (f"{calls:,} calls in {seconds:.1f} s ({calls / seconds:,.0f}/s): "
            f"{n.get('done', 0):,} done, {n.get('rate', 0):,} refused for its rate, "
            f"{n.get('quota', 0):,} refused by its quota, {n.get('invalid', 0):,} refused as "
            f"undecodable, other {other or 'none'}")


def report_flood(r: dict[str, Any]) -> list[str]:
    limits = r["neighbour_limits"]
    lines = [
        f"guest isolation: the victim's single-rule applies, guest shim to acknowledged, "
        f"{r['applies']} per phase at {r['rate']:g}/s, while the neighbour "
        f"({r['neighbours']} process(es) calling back to back, channel limits {limits}) "
        f"floods; agent (journal on) and embedded target in processes of their own, "
        f"quotas {r['quotas']}"]
    for p in r["phases"]:
        v = p["victim_ms"]
        head = f"  {p['phase']}: "
        if v["count"]:
            head += (f"victim p50 {v['p50']:.1f} ms, p99 {v['p99']:.1f} ms, max {v['max']:.1f} "
                     f"ms ({v['count']} acknowledged")
        else:
            head += "victim: no apply acknowledged ("
        head += (f", refused {p['victim_errors'] or 'none'})  [p99 <= {GOAL_P99_MS:g} ms: "
                 f"{goal(p['goal_met'])}]")
        lines.append(head)
        if p["load"]:
            sizes = ", ".join(f"{b:,}" for b in p["neighbour_body_bytes"])
            lines.append(f"    neighbour ({sizes}-byte bodies): {neighbour_line(p['neighbour'])}")
        lines.append(f"    agent RSS afterwards {p['agent_rss'] / 2**20:.1f} MiB; calls the "
                     f"rate limits refused, as the agent counts them: "
                     f"{p['rate_refused_by_agent']}")
    if "correctness" in r:
        c = r["correctness"]
        lines.append(
            f"  correctness: the victim's Get returned generation {c['get_generation']} "
            f"(port {c['get_port']}); its last acknowledged apply was told generation "
            f"{c['last_acknowledged_generation']} (port {c['expected_port']}): "
            f"{'the same' if c['same'] else 'DIFFERENT'}")
    return lines


# -- 2. undecodable bodies and the agent's memory ---------------------------------------


def run_garbage(result: dict[str, Any], workdir: Path, variant: str, seconds: float,
                interval: float, clients: int, garbage_size: int, pause: float
                ) -> dict[str, Any]:
    """One variant (``default`` or ``unlimited`` channel limits) in a fresh agent; fills
    ``result`` as it goes and returns it."""
    config = isolation_config(workdir, UNLIMITED if variant == "unlimited" else None)
    address = channel_address(config, NEIGHBOUR)
    samples: list[dict[str, Any]] = []
    result.update(variant=variant, limits=UNLIMITED if variant == "unlimited" else "default",
                  seconds=seconds, interval_s=interval, clients=clients,
                  body_bytes=garbage_size, samples=samples)
    with ExitStack() as stack:
        target = stack.enter_context(start_target(
            "embedded", {}, output=workdir / f"garbage-{variant}-target.log"))
        agent = AgentProcess(stack, config, target, workdir / f"garbage-{variant}-agent.log")
        loads = [Load(stack, address, "garbage", garbage_size) for _ in range(clients)]
        with Channel(channel_address(config, VICTIM)) as guest:  # the agent has done work
            guest.apply(single_rule(0))
        before = agent.rss()
        samples.append({"t": 0.0, "rss": before, "calls": 0})
        t0 = time.monotonic()
        for load in loads:
            load.run()
        end, due = t0 + seconds, t0 + interval
        while True:
            wait = min(due, end) - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # the sampling interval
            now = time.monotonic()
            sample = {"t": round(now - t0, 1), "rss": agent.rss(),
                      **summed([load.report() for load in loads])}
            samples.append(sample)
            print(f"    [{variant}] {sample['t']:7.1f} s  RSS {sample['rss'] / 2**20:7.1f} MiB"
                  f"  {sample['calls']:>10,} calls  {sample.get('invalid', 0):>10,} decoded",
                  flush=True)
            if now >= end:
                break
            due += interval
        final = summed([load.stop() for load in loads])
        final_rss = agent.rss()
        alive = agent.process.poll() is None
        time.sleep(pause)  # idle: what the agent gives back
        result.update(final=final, rss_before=before, rss_end=final_rss,
                      rss_after_pause=agent.rss(), pause_s=pause, agent_alive=alive,
                      rate_refused_by_agent=agent.refused()[NEIGHBOUR])
    result.update(growth(samples, before, final_rss))
    return result


def growth(samples: list[dict[str, Any]], before: int, end: int) -> dict[str, Any]:
    """Memory growth: end against before, and bytes per call and per decoded body by
    least squares over the samples taken under load (the first one, once warm, on)."""
    figures: dict[str, Any] = {"rss_growth": end - before,
                               "rss_growth_share": (end - before) / before,
                               "goal_met": abs(end - before) / before <= GOAL_RSS}
    loaded = samples[1:]
    for key in ("calls", "invalid"):
        xs = [float(s.get(key, 0)) for s in loaded]
        ys = [float(s["rss"]) for s in loaded]
        slope = None
        if len(set(xs)) >= 2:
            slope = round(statistics.linear_regression(xs, ys).slope, 2)
        figures[f"bytes_per_{'call' if key == 'calls' else 'decoded'}"] = slope
    return figures


def report_garbage(r: dict[str, Any]) -> list[str]:
    f = r["final"]
    seconds = f.get("seconds") or r["seconds"]
    mib = 2**20
    lines = [
        f"undecodable bodies ({r['body_bytes']:,} bytes) to one channel, {r['clients']} "
        f"client process(es) back to back for {seconds:.0f} s, channel limits {r['limits']}:",
        f"  {f.get('calls', 0):,} calls ({f.get('calls', 0) / seconds:,.0f}/s): "
        f"{f.get('invalid', 0):,} decoded and refused as undecodable "
        f"({f.get('invalid', 0) / seconds:,.1f}/s), {f.get('rate', 0):,} refused for the rate "
        f"before decoding ({f.get('rate', 0) / seconds:,.1f}/s; the agent counted "
        f"{r['rate_refused_by_agent']:,}), other "
        f"{ {k: v for k, v in f.items() if k.startswith('other ')} or 'none'}",
        "      t (s)   RSS (MiB)        calls      decoded",
    ]
    lines += [f"    {s['t']:7.1f}   {s['rss'] / mib:9.1f}   {s.get('calls', 0):>10,}   "
              f"{s.get('invalid', 0):>10,}" for s in r["samples"]]
    per_call, per_decoded = r["bytes_per_call"], r["bytes_per_decoded"]
    lines += [
        f"  RSS before {r['rss_before'] / mib:.1f} MiB, at the end {r['rss_end'] / mib:.1f} "
        f"MiB ({r['rss_growth_share']:+.1%}), after {r['pause_s']:g} s idle "
        f"{r['rss_after_pause'] / mib:.1f} MiB  [within {GOAL_RSS:.0%}: "
        f"{goal(r['goal_met'])}]",
        f"  growth under load (least squares from the first sample on): "
        f"{'n/a' if per_call is None else f'{per_call:,.2f}'} bytes per call, "
        f"{'n/a' if per_decoded is None else f'{per_decoded:,.2f}'} bytes per decoded body",
    ]
    return lines


# -- command line --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_isolation",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=WHAT)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--applies", type=int, default=300,
                        help="flood: the victim's applies per phase (default 300)")
    parser.add_argument("--rate", type=float, default=20.0,
                        help="flood: the victim's applies a second (default 20)")
    parser.add_argument("--neighbours", type=int, default=1,
                        help="flood: neighbour processes per phase (default 1)")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="flood: seconds the flood runs before the victim starts")
    parser.add_argument("--neighbour-limits", choices=("default", "unlimited"),
                        default="default", help="flood: the neighbour's channel limits")
    parser.add_argument("--seconds", type=float, default=1800.0,
                        help="garbage-memory: seconds per variant (default 1,800)")
    parser.add_argument("--interval", type=float, default=10.0,
                        help="garbage-memory: seconds between RSS samples (default 10)")
    parser.add_argument("--clients", type=int, default=2,
                        help="garbage-memory: client processes (default 2)")
    parser.add_argument("--variant", choices=("default", "unlimited", "both"), default="both",
                        help="garbage-memory: the channel's rate limit (default both)")
    parser.add_argument("--pause", type=float, default=10.0,
                        help="garbage-memory: idle seconds before the last RSS reading")
    parser.add_argument("--garbage-bytes", type=int, default=1024,
                        help="size of an undecodable body (default 1,024)")
    args = parser.parse_args(argv)
    limits = UNLIMITED if args.neighbour_limits == "unlimited" else None

    def flood(result: dict[str, Any], workdir: Path) -> list[str]:
        run_flood(result, workdir, args.applies, args.rate, args.neighbours, args.settle,
                  args.garbage_bytes, limits)
        return report_flood(result)

    def garbage(variant: str) -> Measurement:
        def run(result: dict[str, Any], workdir: Path) -> list[str]:
            run_garbage(result, workdir, variant, args.seconds, args.interval, args.clients,
                        args.garbage_bytes, args.pause)
            return report_garbage(result)
        return run

    variants = ("default", "unlimited") if args.variant == "both" else (args.variant,)
    jobs = [("flood", flood)] if args.what == "flood" else [
        (f"garbage-memory-{v}", garbage(v)) for v in variants]
    return measure_each(jobs, "pyoffload-isolation-", args.json)


if __name__ == "__main__":
    sys.exit(main())
