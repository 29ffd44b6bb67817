"""What the target reads out for a VNIC: per-rule and per-flow counters, drops.

Read from the target at the moment they are asked for (never cached), against
one snapshot of the VNIC, so the counters always belong to the rules in force.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
from finsy import P4CounterEntry, P4Schema
from finsy.proto import p4r

from pyoffload.compiler import CompiledRequest
from pyoffload.p4runtime import P4RuntimeClient, P4RuntimeError
from pyoffload.p4runtime.entities import EntityKey, entity_key
from pyoffload.pipeline import names
from pyoffload.pipeline.constants import DropReason


@attrs.frozen(kw_only=True)
class RuleCounters:
    flow_id: str
    rule_id: str
    packets: int
    bytes: int


@attrs.frozen(kw_only=True)
class VnicStats:
    generation: int
    rules: tuple[RuleCounters, ...]
    flows: Mapping[str, tuple[int, int]]
    missing: tuple[tuple[str, str], ...] = ()
    """(flow, rule) whose entries the target does not hold now (drift being repaired):
    they have no counters to report, rather than counters of 0."""


def read_stats(client: P4RuntimeClient, schema: P4Schema, generation: int,
               compiled: CompiledRequest | None) -> VnicStats:
    """Per-rule and per-flow packets/bytes of one generation's rules, read now."""
    if compiled is None:
        return VnicStats(generation=generation, rules=(), flows={})
    queries: list[tuple[tuple[str, str], p4r.Entity]] = [
        (key, p4r.Entity(direct_counter_entry=p4r.DirectCounterEntry(
            table_entry=entry.encode_entry(schema))))
        for key, entries in compiled.acl_entries.items() for entry in entries
    ]
    rules: list[RuleCounters] = []
    missing: set[tuple[str, str]] = set()
    if queries:
        try:
            replies = client.read([q for _, q in queries])
        except P4RuntimeError as exc:
            if not exc.not_found:
                raise
            # An entry is missing (another controller, a lost write): read the table's
            # counters whole and tell which rules have none.
            table_id = queries[0][1].direct_counter_entry.table_entry.table_id
            replies = client.read([p4r.Entity(direct_counter_entry=p4r.DirectCounterEntry(
                table_entry=p4r.TableEntry(table_id=table_id)))])
        by_key = {_table_key(r.direct_counter_entry.table_entry): r for r in replies}
        sums: dict[tuple[str, str], tuple[int, int]] = {}
        for key, query in queries:
            reply = by_key.get(_table_key(query.direct_counter_entry.table_entry))
            if reply is None:
                missing.add(key)
                continue
            data = reply.direct_counter_entry.data
            packets, nbytes = sums.get(key, (0, 0))
            sums[key] = (packets + data.packet_count, nbytes + data.byte_count)
        rules = [RuleCounters(flow_id=f, rule_id=r, packets=p, bytes=b)
                 for (f, r), (p, b) in sums.items() if (f, r) not in missing]
    flows: dict[str, tuple[int, int]] = {}
    for flow_id, index in compiled.flow_counters.items():
        found = client.read([P4CounterEntry(names.FLOW_COUNTER, index=index)
                             .encode(schema)])
        if found:  # (an indirect counter cell always exists; none read: nothing to say)
            data = found[0].counter_entry.data
            flows[flow_id] = (data.packet_count, data.byte_count)
    return VnicStats(generation=generation, rules=tuple(rules), flows=flows,
                     missing=tuple(sorted(missing)))


def read_drops(client: P4RuntimeClient, schema: P4Schema) -> dict[str, int]:
    """Packets the pipeline dropped, by reason (the ``DROP_*`` of defines.p4), all VNICs."""
    reasons = {int(reason): reason.name for reason in DropReason}
    counts = dict.fromkeys(reasons.values(), 0)
    for counter in (names.DROP_COUNTER, names.EARLY_DROP_COUNTER):
        for entity in client.read([P4CounterEntry(counter).encode(schema)]):
            entry = entity.counter_entry
            if entry.index.index in reasons:
                counts[reasons[entry.index.index]] += entry.data.packet_count
    return counts


def _table_key(te: p4r.TableEntry) -> EntityKey:
    return entity_key(p4r.Entity(table_entry=te))
