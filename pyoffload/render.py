"""Readable text for the admin documents (``pyoffload status`` and ``flows``)."""

from __future__ import annotations

import time
from typing import Any


def _counter(value: list[int] | None) -> str:
    return "-" if value is None else f"{value[0]} pkts {value[1]} B"


def _ago(when: float) -> str:
    return f"{max(0.0, time.time() - when):.1f} s ago"


def _checkpoint(checkpoint: dict[str, Any] | None) -> str:
    if checkpoint is None:
        return "no connection checkpoint (no state file)"
    if checkpoint["age_s"] is None:
        return "no connection checkpoint yet"
    return (f"{checkpoint['connections']} connection(s) checkpointed "
            f"{checkpoint['age_s']:.1f} s ago")


def render_status(doc: dict[str, Any]) -> str:
    """The status document as a readable report."""
    t = doc["target"]
    reconciled = (f"reconciled {_ago(t['last_reconcile'])}" if t["last_reconcile"]
                  else "never reconciled")
    state = f"connected ({t['role']})" if t["connected"] else "NOT CONNECTED"
    lines = [f"target {t['address']}: {state}, {reconciled}, {t['drift_repairs']} drift repair(s), "
             f"reconnected {t['reconnects']} time(s)"
             + (f", last error: {t['last_error']}" if t["last_error"] else "")]
    for v in doc["vnics"]:
        lines.append("")
        lines.append(f"VNIC {v['name']} (id {v['id']}, ports {v['ports'][0]}<->{v['ports'][1]}, "
                     f"policy {v['policy']}, channel {v['channel'] or '-'}): "
                     f"generation {v['generation']} in force, {len(v['flows'])} flow(s), "
                     f"{v['drift_repairs']} drift repair(s), {_checkpoint(v.get('checkpoint'))}"
                     + (f" [{v['error']}]" if v["error"] else ""))
        for f in v["flows"]:
            lines.append(f"  flow {f['id']:20} {','.join(f['services']) or '-':24} "
                         f"default {f['default']:12} {_counter(f['counter'])}")
            for r in f["rules"]:
                lines.append(f"    rule {r['id']:18} {r['action']:40} {_counter(r['counter'])}")
    lines.append("")
    occupancy = doc.get("occupancy")
    if occupancy is None:
        lines.append("table occupancy: unknown (the target is not connected)")
    else:
        lines.append("table occupancy:")
        for table, (used, size) in occupancy.items():
            lines.append(f"  {table:24} {used:7} / {size}")
    drops = doc.get("drops")
    if drops:
        lines.append("")
        lines.append("dropped by the pipeline: " + (", ".join(
            f"{reason.lower()} {count}" for reason, count in drops.items() if count) or "none"))
    for name in doc.get("connection_quota_reached", []):
        lines.append(f"VNIC {name}: at its tracked-connection quota, new connections refused")
    return "\n".join(lines)


def render_flows(doc: dict[str, Any]) -> str:
    """Tracked connections, one per line, like ``conntrack -L``."""
    lines = []
    for c in doc["connections"]:
        nat = "".join(f" {label}={value}" for label, value in
                      (("snat", c["translated_src"]), ("dnat", c["translated_dst"])) if value)
        lines.append(f"{c['protocol']:6} {c['state']:18} {c['expires_in_s']:>9.1f}s "
                     f"src={c['src']} sport={c['sport']} dst={c['dst']} dport={c['dport']}"
                     f"{nat} vnic={c['vnic']} flow={c['flow']}")
    lines.append(f"{len(doc['connections'])} tracked connection(s)")
    return "\n".join(lines)


