"""Readable text for the CLI: the installed rules, counters, events.

Plain aligned columns, so the output reads well in a terminal and still
greps; no colour, no dependency.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from guest_shim import names, syntax
from guest_shim import offload_pb2 as pb


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, the last one left ragged."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _ports(field: str, message: pb.FlowMatch | pb.RuleMatch) -> str:
    if not message.HasField(field):
        return ""
    ports: pb.PortRange = getattr(message, field)
    span = str(ports.lo) if ports.lo == ports.hi else f"{ports.lo}-{ports.hi}"
    return f"{field.removesuffix('_ports')}:{span}"


def describe_match(match: pb.FlowMatch | pb.RuleMatch) -> str:
    """``to-guest tcp src=10.0.0.0/8 dst:80`` (only what is not "any")."""
    parts = []
    if match.direction not in (pb.DIRECTION_UNSPECIFIED, pb.DIRECTION_BOTH):
        parts.append(names.name_of(names.DIRECTIONS, match.direction))
    if isinstance(match, pb.RuleMatch) and match.ct_state != pb.CT_STATE_ANY:
        parts.append(f"ct={names.name_of(names.CT_STATES, match.ct_state)}")
    if match.protocol:
        parts.append(match.protocol)
    if match.src:
        parts.append(f"src={match.src}")
    if match.dst:
        parts.append(f"dst={match.dst}")
    parts.extend(p for p in (_ports("src_ports", match), _ports("dst_ports", match)) if p)
    if isinstance(match, pb.RuleMatch) and match.HasField("tcp_flags"):
        flags = syntax.format_tcp_flags(match.tcp_flags.value, match.tcp_flags.mask)
        parts.append(f"flags={flags}")
    return " ".join(parts) or "any"


def describe_action(rule: pb.Rule) -> str:
    """``allow-track``, ``snat 203.0.113.7:20000-29999``, ``lb 10.0.0.10:80/tcp -> ...``."""
    action = rule.WhichOneof("action")
    if action == "verdict":
        text = names.name_of(names.VERDICTS, rule.verdict)
    elif action == "snat":
        text = f"snat {rule.snat.address}:{rule.snat.ports.lo}-{rule.snat.ports.hi}"
    elif action == "dnat":
        text = f"dnat {rule.dnat.address}:{rule.dnat.port or 'keep'}"
    elif action == "load_balance":
        lb = rule.load_balance
        backends = ", ".join(f"{b.address}:{b.port}*{b.weight or 1}" for b in lb.backends)
        text = f"lb {lb.vip}:{lb.port}/{lb.protocol} -> {backends}"
    else:
        text = "(no action)"
    if rule.HasField("rate_limit"):
        text += f" limit {rule.rate_limit.cir}B/s"
    return text


def format_request(request: pb.OffloadRequest) -> str:
    """What ``guest-shim show`` prints."""
    head = f"vnic {request.vnic or '(this channel)'}, generation {request.generation}, "
    head += f"{len(request.flows)} flow(s)"
    rows = []
    for flow in request.flows:
        services = ",".join(names.name_of(names.SERVICES, s) for s in flow.config.services)
        default = names.name_of(names.VERDICTS, flow.config.default_verdict)
        rows.append(
            [flow.id, "", describe_match(flow.match), f"default {default} [{services or '-'}]"]
        )
        for rule in flow.rules:
            rows.append(["", rule.id, describe_match(rule.match), describe_action(rule)])
    if not rows:
        return head
    return head + "\n" + table(["FLOW", "RULE", "MATCH", "ACTION"], rows)


def format_apply(reply: pb.ApplyReply) -> str:
    """What ``guest-shim apply`` prints: the generation, and any rule not installed."""
    failed = [r for r in reply.results if not r.installed]
    lines = [f"generation {reply.generation} applied ({len(reply.results)} result(s))"]
    for result in failed:
        where = f'flow "{result.flow_id}"'
        if result.rule_id:
            where += f', rule "{result.rule_id}"'
        lines.append(f"not installed: {where}: {result.error}")
    return "\n".join(lines)


def format_stats(reply: pb.StatsReply) -> str:
    """What ``guest-shim stats`` prints: counters, then connections and quotas."""
    rows = []
    for flow in reply.flows:
        rows.append([flow.flow_id, "", *_counter(flow, "counter")])
        for rule in flow.rules:
            rows.append(["", rule.rule_id, str(rule.counter.packets), str(rule.counter.bytes)])
    lines = [f"generation {reply.generation}, {reply.tracked_connections} tracked connection(s)"]
    if rows:
        lines.append(table(["FLOW", "RULE", "PACKETS", "BYTES"], rows))
    if reply.quotas:
        quota_rows = [[q.name, str(q.used), str(q.limit)] for q in reply.quotas]
        lines.append(table(["QUOTA", "USED", "LIMIT"], quota_rows))
    return "\n".join(lines)


def _counter(flow: pb.FlowStats, field: str) -> list[str]:
    if not flow.HasField(field):
        return ["-", "-"]
    return [str(flow.counter.packets), str(flow.counter.bytes)]


def format_event(event: pb.Event) -> str:
    """One line per event: time, kind, where, message."""
    when = ""
    if event.time_unix_ns:
        stamp = datetime.datetime.fromtimestamp(event.time_unix_ns / 1e9, tz=datetime.UTC)
        when = stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ") + " "
    parts = [names.name_of(names.EVENT_KINDS, event.kind)]
    if event.generation:
        parts.append(f"generation={event.generation}")
    if event.flow_id:
        parts.append(f'flow="{event.flow_id}"')
    if event.rule_id:
        parts.append(f'rule="{event.rule_id}"')
    if event.quota:
        parts.append(f"quota={event.quota}")
    if event.message:
        parts.append(f"- {event.message}")
    return when + " ".join(parts)
