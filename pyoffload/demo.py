"""The demo: a guest and an uplink network namespace joined through a VNIC
pipeline running the stateful firewall, real kernel traffic between them, and
what the pipeline allowed, denied and counted.

Today the rules are installed directly through P4Runtime by name; when the
agent and the guest shim exist, the same rule set travels from the guest
namespace through the guest channel instead.
"""

from __future__ import annotations

import ipaddress
import sys
import tempfile
from pathlib import Path
from typing import TextIO

import attrs
from finsy import P4CounterEntry, P4Schema, P4TableAction, P4TableEntry, P4TableMatch
from finsy.proto import p4r

from bmv2_env.targets import start_target
from bmv2_env.topology import Topology, require_root, run_ip
from bmv2_env.traffic import EchoServer, echo_exchange, ping
from pyoffload.p4artifacts import check_fresh, load_constants
from pyoffload.p4runtime import P4RuntimeClient, UpdateType

GUEST_IP = "10.77.0.1"
UPLINK_IP = "10.77.0.2"
VNIC_ID = 1
GUEST_PORT = 1
UPLINK_PORT = 2


def _ternary(value: int, mask: int) -> str:
    return f"{value}/&{mask}"


def _ipv4_host(address: str) -> str:
    return _ternary(int(ipaddress.IPv4Address(address)), 0xFFFFFFFF)


@attrs.frozen(kw_only=True)
class DemoRule:
    """One service rule of the demo's outbound flow."""

    name: str
    verdict: str
    protocol: int
    dst_port: int | None = None
    priority: int = 10


DEMO_RULES = (
    DemoRule(name="web", verdict="acl_allow_track", protocol=6, dst_port=8080, priority=30),
    DemoRule(name="blocked-port", verdict="acl_deny", protocol=6, dst_port=9090, priority=20),
    DemoRule(name="dns", verdict="acl_allow_track", protocol=17, dst_port=5353, priority=20),
    DemoRule(name="ping", verdict="acl_allow_track", protocol=1, priority=10),
)


def demo_entities(const: dict[str, int]) -> list[P4TableEntry]:
    """The VNIC, its two flows (outbound: tracked; inbound: deny) and the rules."""
    entries = [
        P4TableEntry(
            "vnic.port_map",
            match=P4TableMatch(port=port),
            action=P4TableAction(
                "vnic.set_vnic", vnic_id=VNIC_ID, direction=direction, peer_port=peer,
                default_policy=const["POLICY_DENY"],
            ),
        )
        for port, direction, peer in (
            (GUEST_PORT, const["DIR_FROM_GUEST"], UPLINK_PORT),
            (UPLINK_PORT, const["DIR_TO_GUEST"], GUEST_PORT),
        )
    ]
    services = const["SVC_CONNTRACK"] | const["SVC_COUNT"]
    for flow_id, direction in ((1, const["DIR_FROM_GUEST"]), (2, const["DIR_TO_GUEST"])):
        entries.append(
            P4TableEntry(
                "vnic.flow_classifier",
                match=P4TableMatch(vnic_id=VNIC_ID, direction=_ternary(direction, 1)),
                action=P4TableAction("vnic.set_flow", flow_id=flow_id),
                priority=10,
            )
        )
        entries.append(
            P4TableEntry(
                "vnic.flow_config",
                match=P4TableMatch(vnic_id=VNIC_ID, flow_id=flow_id),
                action=P4TableAction(
                    "vnic.set_flow_config", services=services, ct_profile=0,
                    default_verdict=const["VERDICT_DENY"], meter_index=0,
                    counter_index=flow_id, mirror_session=0,
                ),
            )
        )
    for rule in DEMO_RULES:
        entries.append(acl_entry(rule))
    return entries


def acl_entry(rule: DemoRule) -> P4TableEntry:
    match = P4TableMatch(vnic_id=VNIC_ID, flow_id=1, protocol=_ternary(rule.protocol, 0xFF))
    if rule.dst_port is not None:
        match["dst_port"] = f"{rule.dst_port}...{rule.dst_port}"
    return P4TableEntry(
        "vnic.acl", match=match, action=P4TableAction(f"vnic.{rule.verdict}"),
        priority=rule.priority,
    )


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
        result = echo_exchange(ns, proto, addr, port, timeout=2.0 if not expect else 5.0)
        detail = result.reply if result.ok else "no answer"
        checks.append(Check(label=label, expect_ok=expect, ok=result.ok, detail=detail))

    with EchoServer(uplink_ns, "tcp", UPLINK_IP, 8080), \
            EchoServer(uplink_ns, "tcp", UPLINK_IP, 9090), \
            EchoServer(uplink_ns, "udp", UPLINK_IP, 5353), \
            EchoServer(guest_ns, "tcp", GUEST_IP, 2222):
        exchange("guest -> uplink TCP 8080 (rule web: allow-and-track)",
                 guest_ns, "tcp", UPLINK_IP, 8080, True)
        exchange("guest -> uplink TCP 9090 (rule blocked-port: deny)",
                 guest_ns, "tcp", UPLINK_IP, 9090, False)
        exchange("guest -> uplink UDP 5353 (rule dns: allow-and-track)",
                 guest_ns, "udp", UPLINK_IP, 5353, True)
        exchange("uplink -> guest TCP 2222 (unsolicited inbound)",
                 uplink_ns, "tcp", GUEST_IP, 2222, False)
    ok = ping(guest_ns, UPLINK_IP)
    checks.append(Check(label="guest -> uplink ping (rule ping: allow-and-track)",
                        expect_ok=True, ok=ok, detail="replies" if ok else "no reply"))
    return checks


def read_counters(client: P4RuntimeClient, schema: P4Schema) -> dict[str, tuple[int, int]]:
    """Per-rule packets/bytes and drops by reason, read back from the target."""
    const = load_constants()
    result: dict[str, tuple[int, int]] = {}
    for rule in DEMO_RULES:
        entry = acl_entry(rule).encode_entry(schema)
        reply = client.read(
            [p4r.Entity(direct_counter_entry=p4r.DirectCounterEntry(table_entry=entry))]
        )
        data = reply[0].direct_counter_entry.data if reply else None
        result[f"rule {rule.name}"] = (data.packet_count, data.byte_count) if data else (0, 0)
    reasons = {v: k for k, v in const.items() if k.startswith("DROP_") and k != "DROP_REASONS"}
    for entity in client.read([P4CounterEntry("vnic.drop_counter").encode(schema)]):
        counter = entity.counter_entry
        if counter.data.packet_count:
            reason = reasons.get(counter.index.index, str(counter.index.index))
            result[f"dropped: {reason}"] = (counter.data.packet_count, counter.data.byte_count)
    return result


def run_demo(target: str = "auto", out: TextIO | None = None) -> int:
    """Build the topology, start the target, install the rules, send traffic, report."""
    out = out or sys.stdout

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    require_root("the demo")
    artifacts = check_fresh()
    const = load_constants()
    with Topology() as topo, tempfile.TemporaryDirectory(prefix="pyoffload-demo-") as tmp:
        guest_ns = topo.add_namespace("guest")
        uplink_ns = topo.add_namespace("uplink")
        topo.add_veth(GUEST_PORT, test_netns=guest_ns, mtu=1500)
        topo.add_veth(UPLINK_PORT, test_netns=uplink_ns, mtu=1500)
        run_ip("addr", "add", f"{GUEST_IP}/24", "dev", topo.pairs[GUEST_PORT].test_end,
               netns=guest_ns)
        run_ip("addr", "add", f"{UPLINK_IP}/24", "dev", topo.pairs[UPLINK_PORT].test_end,
               netns=uplink_ns)
        ports = {p: pair.switch_end for p, pair in topo.pairs.items()}
        with start_target(target, ports, output=Path(tmp) / "target.log") as running:
            say(f"pyoffload demo: {running.kind} target, P4Runtime at {running.grpc_address}")
            say(f"  VNIC {VNIC_ID}: guest namespace {GUEST_IP} <-> uplink namespace {UPLINK_IP}")
            with P4RuntimeClient(running.grpc_address, device_id=running.device_id) as client:
                schema = client.set_pipeline(artifacts.p4info, artifacts.bmv2_json)
                entries = demo_entities(const)
                client.write_entities(UpdateType.INSERT, [e.encode(schema) for e in entries])
                say(f"  installed {len(entries)} entries: 2 flows, {len(DEMO_RULES)} rules, "
                    "default deny, connection tracking on")
                checks = run_checks(guest_ns, uplink_ns)
                say("")
                for check in checks:
                    verdict = "allowed" if check.ok else "blocked"
                    mark = "ok " if check.as_expected else "UNEXPECTED"
                    say(f"  [{mark}] {check.label:55} {verdict:8} {check.detail}")
                say("")
                say("  counters read back from the pipeline (packets, bytes):")
                for name, (packets, nbytes) in read_counters(client, schema).items():
                    say(f"    {name:32} {packets:6} {nbytes:8}")
    failed = [c for c in checks if not c.as_expected]
    say("")
    say("demo: all traffic behaved as the rules say" if not failed
        else f"demo: {len(failed)} check(s) did not behave as the rules say")
    return 0 if not failed else 1
