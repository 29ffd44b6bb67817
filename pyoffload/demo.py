"""The demo: a guest and an uplink network namespace joined through the VNIC
pipeline, the agent serving the guest's channel, the guest's rule set applied
from inside the guest namespace with the guest shim, real kernel TCP, UDP and
ICMP traffic between the namespaces, and what was allowed, denied and counted.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TextIO

import attrs

from pyoffload.agent import Agent, AgentError
from pyoffload.agent.admin import flows_document
from pyoffload.agent.channel import serve_channel
from pyoffload.agent.config import parse_config
from pyoffload.examples import example_path
from pyoffload.pipeline.artifacts import Artifacts
from pyoffload.playground.topology import Topology, require_root
from pyoffload.playground.traffic import EchoServer, echo_exchange, netns_cmd, ping
from pyoffload.render import render_flows
from pyoffload.targets import start_target

GUEST_IP = "10.77.0.1"
UPLINK_IP = "10.77.0.2"
GUEST_PORT = 1
UPLINK_PORT = 2
VNIC = "demo-vm"
RULES = "demo.yaml"
"""The example rule file the guest applies (installed with pyoffload)."""


@attrs.frozen(kw_only=True)
class Check:
    """One traffic check and its outcome."""

    label: str
    expect_ok: bool
    ok: bool
    detail: str

    @property
    def as_expected(self) -> bool:
        return self.ok == self.expect_ok


def run_checks(guest_ns: str, uplink_ns: str) -> list[Check]:
    checks: list[Check] = []

    def exchange(label: str, ns: str, proto: str, addr: str, port: int, expect: bool) -> None:
        result = echo_exchange(ns, proto, addr, port, timeout=5.0 if expect else 2.0)
        detail = result.reply if result.ok else "no answer"
        checks.append(Check(label=label, expect_ok=expect, ok=result.ok, detail=detail))

    with EchoServer(uplink_ns, "tcp", UPLINK_IP, 8080), \
            EchoServer(uplink_ns, "tcp", UPLINK_IP, 9090), \
            EchoServer(uplink_ns, "udp", UPLINK_IP, 5353), \
            EchoServer(guest_ns, "tcp", GUEST_IP, 2222):
        exchange("guest -> uplink TCP 8080 (rule web: allow-track)",
                 guest_ns, "tcp", UPLINK_IP, 8080, True)
        exchange("guest -> uplink TCP 9090 (rule blocked-port: deny)",
                 guest_ns, "tcp", UPLINK_IP, 9090, False)
        exchange("guest -> uplink UDP 5353 (rule dns: allow-track)",
                 guest_ns, "udp", UPLINK_IP, 5353, True)
        exchange("uplink -> guest TCP 2222 (unsolicited inbound)",
                 uplink_ns, "tcp", GUEST_IP, 2222, False)
    ok = ping(guest_ns, UPLINK_IP)
    checks.append(Check(label="guest -> uplink ping (rule ping: allow-track)",
                        expect_ok=True, ok=ok, detail="replies" if ok else "no reply"))
    return checks


def guest_shim(guest_ns: str, channel: str, *args: str) -> str:
    """Run the guest shim's CLI inside the guest namespace, as a guest would."""
    shim = Path(sys.executable).with_name("guest-shim")
    result = subprocess.run(
        netns_cmd(guest_ns, str(shim), "--channel", channel, *args),
        capture_output=True, text=True, timeout=60,
    )
    if result.returncode != 0:
        raise RuntimeError(f"guest-shim {' '.join(args)} failed: "
                           f"{(result.stderr or result.stdout).strip()}")
    return result.stdout.rstrip()


def run_demo(target: str = "embedded", out: TextIO | None = None) -> int:
    """Build the topology, start target and agent, apply from the guest, send traffic."""
    out = out or sys.stdout

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    require_root("the demo")
    artifacts = Artifacts.packaged()
    rules = example_path(RULES)
    with Topology() as topo, tempfile.TemporaryDirectory(prefix="pyoffload-demo-") as tmp:
        guest_ns, uplink_ns = topo.add_guest_and_uplink(
            f"{GUEST_IP}/24", f"{UPLINK_IP}/24", guest_port=GUEST_PORT, uplink_port=UPLINK_PORT)
        ports = {p: pair.switch_end for p, pair in topo.pairs.items()}
        channel = f"unix:{tmp}/{VNIC}.sock"
        config = parse_config({
            "target": {"kind": "remote", "address": "unused"},
            "vnics": [{"name": VNIC, "id": 1, "guest_port": GUEST_PORT,
                       "uplink_port": UPLINK_PORT, "default_policy": "deny",
                       "channel": channel}],
        })
        with start_target(target, ports, output=Path(tmp) / "target.log") as running:
            say(f"pyoffload demo: {running.kind} target, P4Runtime at {running.grpc_address}")
            say(f"  VNIC {VNIC}: guest namespace {GUEST_IP} <-> uplink namespace {UPLINK_IP}")
            agent = Agent(config, running.grpc_address, device_id=running.device_id,
                          thrift_address=running.thrift_address, artifacts=artifacts).start()
            server = serve_channel(agent, VNIC, config.vnic(VNIC).channel)  # type: ignore[arg-type]
            try:
                say(f"  agent serving the guest channel on {channel}")
                say(f"\n  [guest] guest-shim apply {rules}")
                say(_indent(guest_shim(guest_ns, channel, "apply", str(rules)), 4))
                checks = run_checks(guest_ns, uplink_ns)
                say("")
                for check in checks:
                    verdict = "allowed" if check.ok else "blocked"
                    mark = "ok " if check.as_expected else "UNEXPECTED"
                    say(f"  [{mark}] {check.label:52} {verdict:8} {check.detail}")
                say("\n  [guest] guest-shim stats")
                say(_indent(guest_shim(guest_ns, channel, "stats"), 4))
                say("\n  [host] pyoffload flows")
                try:
                    say(_indent(render_flows(flows_document(agent, VNIC)), 4))
                except AgentError as exc:
                    say(f"    ({exc.message})")
            finally:
                server.stop(None)
                agent.stop()
    failed = [c for c in checks if not c.as_expected]
    say()
    say("demo: all traffic behaved as the rules say" if not failed
        else f"demo: {len(failed)} check(s) did not behave as the rules say")
    return 0 if not failed else 1


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.splitlines())
