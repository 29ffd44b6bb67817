"""Compile one VNIC's offload request into P4Runtime entities, by name.

The output is deterministic (same request and pool state, same entities in
the same order) and ordered for installation: what an entry refers to comes
before it (timeouts, meters, selector members and groups, then the rules,
then the flow's configuration) and the flow classifier comes last, so no
packet is classified into a flow whose rules are not there yet. Deletion is
the reverse order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping

import attrs
from finsy import (
    P4ActionProfileGroup,
    P4ActionProfileMember,
    P4IndirectAction,
    P4Member,
    P4MeterConfig,
    P4MeterEntry,
    P4TableAction,
    P4TableEntry,
    P4TableMatch,
)
from finsy.p4entity import P4Entity
from finsy.p4schema import P4MatchType, P4Schema

from pyoffload.compiler.matches import (
    covers,
    flow_fields,
    range_to_prefixes,
    rule_fields,
    ternary,
)
from pyoffload.compiler.resources import Numbers
from pyoffload.pipeline import names
from pyoffload.rules import (
    TIMEOUT_STATES,
    Dnat,
    Flow,
    LoadBalance,
    OffloadRequest,
    RateLimit,
    Rule,
    Snat,
    Verdict,
)

TOP_PRIORITY = 1_000_000
"""Priority of the first flow / rule; later ones count down (higher wins)."""


@attrs.frozen(kw_only=True)
class VnicTarget:
    """The VNIC a request is compiled for."""

    name: str
    """The VNIC's name (channels and rule files use it)."""
    vnic_id: int
    """Its id in the pipeline (every key carries it), 1..65535."""


@attrs.frozen(kw_only=True)
class CompiledRequest:
    """The entities of one request, in installation order, and what was noticed."""

    entities: tuple[P4Entity, ...]
    """Table entries, selector members/groups and meter configs, install order."""
    warnings: tuple[str, ...]
    """Rules that can never match (shadowed by an earlier rule of the flow)."""
    usage: Mapping[str, int]
    """Entries this request needs, per table."""
    flow_ids: Mapping[str, int]
    """The pipeline flow id of each flow of the request."""
    flow_counters: Mapping[str, int]
    """Flow id -> its slot of ``vnic.flow_counter`` (flows with the count service)."""
    acl_entries: Mapping[tuple[str, str], tuple[P4TableEntry, ...]]
    """(flow id, rule id) -> the rule's ``vnic.acl`` entries (their direct counters are the
    rule's counter; more than one when port ranges were expanded into prefixes)."""
    owners: frozenset[Hashable]
    """Every pool number this request holds (the agent frees the others of the VNIC)."""
    profiles: Mapping[str, int]
    """Flow id -> its conntrack timeout profile (0: the built-in timeouts)."""


def meter_config(rate: RateLimit) -> P4MeterConfig:
    return P4MeterConfig(cir=rate.cir, cburst=rate.cbs, pir=rate.pir, pburst=rate.pbs)


@attrs.define
class _Builder:
    target: VnicTarget
    const: Mapping[str, int]
    pool: Numbers
    timeouts: list[P4Entity] = attrs.field(factory=list)
    meters: list[P4Entity] = attrs.field(factory=list)
    members: list[P4Entity] = attrs.field(factory=list)
    groups: list[P4Entity] = attrs.field(factory=list)
    vips: list[P4Entity] = attrs.field(factory=list)
    nat: list[P4Entity] = attrs.field(factory=list)
    acl: list[P4Entity] = attrs.field(factory=list)
    configs: list[P4Entity] = attrs.field(factory=list)
    classifier: list[P4Entity] = attrs.field(factory=list)
    warnings: list[str] = attrs.field(factory=list)
    flow_ids: dict[str, int] = attrs.field(factory=dict)
    flow_counters: dict[str, int] = attrs.field(factory=dict)
    acl_entries: dict[tuple[str, str], tuple[P4TableEntry, ...]] = attrs.field(factory=dict)
    owners: set[Hashable] = attrs.field(factory=set)
    profiles: dict[str, int] = attrs.field(factory=dict)
    ternary_ports: Mapping[str, frozenset[str]] = attrs.field(factory=dict)

    def expand(self, table: str, match: P4TableMatch) -> list[P4TableMatch]:
        """``match``, or its ternary expansion where ``table`` matches ports ternary."""
        matches = [match]
        if table not in self.ternary_ports:
            return matches
        for field in sorted(self.ternary_ports[table]):
            value = match.get(field)
            if not isinstance(value, tuple):
                continue
            prefixes = range_to_prefixes(value[0], value[1], 16)
            matches = [P4TableMatch({**m, field: p}) for m in matches for p in prefixes]
        return matches

    def owner(self, *parts: str | int) -> tuple[str | int, ...]:
        key = (self.target.name, *parts)
        self.owners.add(key)
        return key

    def add_flow(self, index: int, flow: Flow) -> None:
        vnic_id = self.target.vnic_id
        flow_id = self.pool.flows.take(self.owner(flow.id))
        self.flow_ids[flow.id] = flow_id
        config = flow.config

        profile = 0
        if config.timeouts.items():
            profile = self.pool.ct_profiles.take(self.owner(flow.id))
            for field, seconds in config.timeouts.items():
                for state in TIMEOUT_STATES[field]:
                    self.timeouts.append(P4TableEntry(
                        names.CT_TIMEOUT,
                        match=P4TableMatch(profile=profile, state=self.const[state]),
                        action=P4TableAction(names.CT_SET_TIMEOUT, timeout_us=seconds * 1_000_000),
                    ))
        self.profiles[flow.id] = profile
        meter_index = 0
        if config.rate_limit is not None:
            meter_index = self.pool.meters.take(self.owner(flow.id))
            self.meters.append(P4MeterEntry(
                names.FLOW_METER, index=meter_index, config=meter_config(config.rate_limit)
            ))
        counter_index = 0
        if any(s.value == "count" for s in config.services):
            counter_index = self.pool.counters.take(self.owner(flow.id))
            self.flow_counters[flow.id] = counter_index
        services = 0
        for service in config.services:
            services |= self.const[service.constant]

        self.configs.append(P4TableEntry(
            names.FLOW_CONFIG,
            match=P4TableMatch(vnic_id=vnic_id, flow_id=flow_id),
            action=P4TableAction(
                names.SET_FLOW_CONFIG,
                services=services,
                ct_profile=profile,
                default_verdict=self.const[config.default_verdict.constant],
                meter_index=meter_index,
                counter_index=counter_index,
                mirror_session=config.mirror_session or 0,
            ),
        ))
        classify = P4TableMatch(vnic_id=vnic_id, **flow_fields(flow.match, self.const))
        self.classifier.extend(
            P4TableEntry(
                names.FLOW_CLASSIFIER,
                match=m,
                action=P4TableAction(names.SET_FLOW, flow_id=flow_id),
                priority=TOP_PRIORITY - index,
            )
            for m in self.expand(names.FLOW_CLASSIFIER, classify)
        )
        self.add_rules(flow, flow_id)

    def add_rules(self, flow: Flow, flow_id: int) -> None:
        shadows = {"verdict": _ShadowIndex(), "nat": _ShadowIndex()}
        for index, rule in enumerate(flow.rules):
            if not isinstance(rule.action, LoadBalance):
                kind = "nat" if isinstance(rule.action, Snat | Dnat) else "verdict"
                earlier = shadows[kind].covering(rule)
                if earlier is not None:
                    self.warnings.append(
                        f'flow "{flow.id}": rule "{rule.id}" is never reached: '
                        f'rule "{earlier.id}" before it matches all its packets'
                    )
                shadows[kind].add(rule)
            self.add_rule(flow, flow_id, index, rule)

    def add_rule(self, flow: Flow, flow_id: int, index: int, rule: Rule) -> None:
        vnic_id = self.target.vnic_id
        fields = rule_fields(rule.match, self.const)
        match = P4TableMatch(vnic_id=vnic_id, flow_id=flow_id, **fields)
        priority = TOP_PRIORITY - index
        action = rule.action
        if isinstance(action, Verdict):
            entries = tuple(
                P4TableEntry(
                    names.ACL,
                    match=m,
                    action=P4TableAction(names.ACL_ACTIONS[action]),
                    priority=priority,
                    meter_config=meter_config(rule.rate_limit) if rule.rate_limit else None,
                )
                for m in self.expand(names.ACL, match)
            )
            self.acl.extend(entries)
            self.acl_entries[(flow.id, rule.id)] = entries
        elif isinstance(action, Snat | Dnat):
            if isinstance(action, Snat):
                nat_action = P4TableAction(
                    names.NAT_SNAT, addr=int(action.address),
                    port_min=action.ports.lo, port_max=action.ports.hi,
                )
            else:
                nat_action = P4TableAction(names.NAT_DNAT, addr=int(action.address),
                                           port=action.port or 0)
            self.nat.extend(
                P4TableEntry(names.NAT, match=m, action=nat_action, priority=priority)
                for m in self.expand(names.NAT, _nat_match(match))
            )
        else:
            self.add_vip(flow, rule, action)

    def add_vip(self, flow: Flow, rule: Rule, lb: LoadBalance) -> None:
        group_id = self.pool.lb_groups.take(self.owner(flow.id, rule.id))
        members: list[P4Member] = []
        for b_index, backend in enumerate(lb.backends):
            # Weights as repeated members: every target supports that.
            for copy in range(backend.weight):
                member_id = self.pool.lb_members.take(self.owner(flow.id, rule.id, b_index, copy))
                self.members.append(P4ActionProfileMember(
                    names.LB_SELECTOR,
                    member_id=member_id,
                    action=P4TableAction(names.LB_SET_BACKEND, addr=int(backend.address),
                                         port=backend.port),
                ))
                members.append(P4Member(member_id, weight=1))
        self.groups.append(P4ActionProfileGroup(
            names.LB_SELECTOR, group_id=group_id, members=members
        ))
        self.vips.append(P4TableEntry(
            names.LB_VIP,
            match=P4TableMatch(vnic_id=self.target.vnic_id, vip=int(lb.vip),
                               protocol=lb.protocol, port=lb.port),
            action=P4IndirectAction(group_id=group_id),
        ))

    def result(self) -> CompiledRequest:
        ordered = [*self.timeouts, *self.meters, *self.members, *self.groups, *self.vips,
                   *self.nat, *self.acl, *self.configs, *self.classifier]
        usage: Counter[str] = Counter()
        for entity in ordered:
            if isinstance(entity, P4TableEntry):
                usage[str(entity.table_id)] += 1
        usage[names.LB_SELECTOR] = len(self.members) + len(self.groups)
        return CompiledRequest(
            entities=tuple(ordered),
            warnings=tuple(self.warnings),
            usage=dict(usage),
            flow_ids=dict(self.flow_ids),
            flow_counters=dict(self.flow_counters),
            acl_entries=dict(self.acl_entries),
            owners=frozenset(self.owners),
            profiles=dict(self.profiles),
        )


@attrs.define
class _ShadowIndex:
    """Earlier rules of a flow, indexed so that finding one that covers a new
    rule is not quadratic: a rule for a single destination port can only be
    covered by rules for that port or by rules for a range of ports (or any).
    Rules are kept with their position (the earliest covering one is named)."""

    by_port: dict[int, list[tuple[int, Rule]]] = attrs.field(factory=dict)
    wide: list[tuple[int, Rule]] = attrs.field(factory=list)
    count: int = 0

    def covering(self, rule: Rule) -> Rule | None:
        ports = rule.match.dst_ports
        candidates = self.wide
        if ports is not None and ports.lo == ports.hi and ports.lo in self.by_port:
            candidates = candidates + self.by_port[ports.lo]
        found = [(order, r) for order, r in candidates if covers(r.match, rule.match)]
        return min(found, key=lambda item: item[0])[1] if found else None

    def add(self, rule: Rule) -> None:
        ports = rule.match.dst_ports
        if ports is not None and ports.lo == ports.hi:
            self.by_port.setdefault(ports.lo, []).append((self.count, rule))
        else:
            self.wide.append((self.count, rule))
        self.count += 1


def _nat_match(match: P4TableMatch) -> P4TableMatch:
    """NAT rules have no conntrack-state or TCP-flag key."""
    return P4TableMatch({k: v for k, v in match.items() if k not in ("ct_state", "tcp_flags")})


def compile_request(
    request: OffloadRequest,
    target: VnicTarget,
    const: Mapping[str, int],
    pool: Numbers,
    *,
    ternary_ports: Mapping[str, frozenset[str]] | None = None,
) -> CompiledRequest:
    """The entities that make ``target`` do what ``request`` asks.

    Numbers (flow ids, meter and counter slots, timeout profiles, selector
    members and groups) are taken from ``pool``; take them through a
    ``Reservation`` when the result may be thrown away. ``ternary_ports``
    names, per table, the port fields the target matches ternary instead of by
    range (see ``ternary_port_fields``): their ranges are expanded into
    prefixes, one entry each.
    """
    builder = _Builder(target=target, const=const, pool=pool,
                       ternary_ports=ternary_ports or {})
    for index, flow in enumerate(request.flows):
        builder.add_flow(index, flow)
    return builder.result()


__all__ = ["CompiledRequest", "VnicTarget", "compile_request", "ternary", "ternary_port_fields"]


def ternary_port_fields(schema: P4Schema) -> dict[str, frozenset[str]]:
    """Per table, the port fields this pipeline matches ternary (no range support)."""
    result: dict[str, frozenset[str]] = {}
    for table in (names.FLOW_CLASSIFIER, names.ACL, names.NAT):
        fields = schema.tables[table].match_fields
        ternary_fields = frozenset(
            f.name for f in fields
            if f.name in ("src_port", "dst_port") and f.match_type == P4MatchType.TERNARY
        )
        if ternary_fields:
            result[table] = ternary_fields
    return result
