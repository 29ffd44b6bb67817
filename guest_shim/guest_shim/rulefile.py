"""Rule files: YAML or JSON text -> the ``OffloadRequest`` of the channel.

A rule file is the guest's whole desired rule set for its VNIC. Parsing is
strict because a firewall rule that silently means something else is worse
than none: unknown fields are refused (naming the closest known one),
duplicate keys and duplicate flow or rule ids are refused, and every value is
checked by the same functions the agent uses (``guest_shim.syntax``). Every
error names the file, the flow and rule (by id, or by position when the id is
the problem) and the field. The format is documented in the README.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from guest_shim import names, syntax
from guest_shim import offload_pb2 as pb
from guest_shim.errors import RuleFileError

T = TypeVar("T")

_TOP = ("vnic", "generation", "flows")
_FLOW = ("id", "match", "config", "rules")
_FLOW_MATCH = ("direction", "protocol", "src", "dst", "src_ports", "dst_ports")
_RULE_MATCH = (*_FLOW_MATCH, "ct_state", "tcp_flags")
_CONFIG = ("services", "default_verdict", "timeouts", "rate_limit", "mirror_session")
_TIMEOUTS = tuple(pb.Timeouts.DESCRIPTOR.fields_by_name)
_RATE_LIMIT = ("cir", "cbs", "pir", "pbs")
_ACTIONS = ("verdict", "snat", "dnat", "load_balance")
_RULE = ("id", "match", *_ACTIONS, "rate_limit")
_SNAT = ("address", "ports")
_DNAT = ("address", "port")
_LB = ("vip", "port", "protocol", "backends")
_BACKEND = ("address", "port", "weight")
MAX_TIMEOUT_S = (2**48 - 1) // 1_000_000  # ct_expires is 48 bits of microseconds
MAX_RATE = 2**63 - 1


class _Where:
    """Where in the file a value sits: file, flow, rule, dotted field path."""

    def __init__(
        self, source: str | None, flow: str | None = None, rule: str | None = None, field: str = ""
    ) -> None:
        self.source = source
        self.flow = flow
        self.rule = rule
        self.field = field

    def at(self, name: str | int) -> _Where:
        part = f"[{name}]" if isinstance(name, int) else name
        field = f"{self.field}{part}" if isinstance(name, int) or not self.field else (
            f"{self.field}.{part}"
        )
        return _Where(self.source, self.flow, self.rule, field)

    def in_flow(self, label: str) -> _Where:
        return _Where(self.source, label, None, "")

    def in_rule(self, label: str) -> _Where:
        return _Where(self.source, self.flow, label, "")

    def error(self, reason: str) -> RuleFileError:
        return RuleFileError(
            reason, source=self.source, flow=self.flow, rule=self.rule, field=self.field or None
        )


# ------------------------------------------------------------------ entry points


def parse_file(path: str | Path) -> pb.OffloadRequest:
    """Read a rule file (``.json`` as JSON, anything else as YAML)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleFileError(f"cannot read: {exc.strerror or exc}", source=str(path)) from None
    except UnicodeDecodeError:
        raise RuleFileError("is not UTF-8 text", source=str(path)) from None
    fmt = "json" if path.suffix.lower() == ".json" else "yaml"
    return parse_text(text, fmt=fmt, source=str(path))


def parse_text(text: str, *, fmt: str = "yaml", source: str | None = None) -> pb.OffloadRequest:
    """Parse rule-file text in ``fmt`` ("yaml" or "json")."""
    if fmt == "json":
        data = _load_json(text, source)
    elif fmt == "yaml":
        data = _load_yaml(text, source)
    else:
        raise ValueError(f"unknown rule file format {fmt!r} (yaml or json)")
    return parse_data(data, source=source)


def parse_data(data: object, *, source: str | None = None) -> pb.OffloadRequest:
    """Turn already-loaded data (dicts, lists, scalars) into an offload request."""
    where = _Where(source)
    top = _mapping(data, where, _TOP)
    request = pb.OffloadRequest()
    if "vnic" in top:
        request.vnic = _string(top["vnic"], where.at("vnic"))
    if "generation" in top:
        request.generation = _integer(top["generation"], where.at("generation"), 0, 2**64 - 1)
    flows = _sequence(top.get("flows", []), where.at("flows"))
    seen: dict[str, int] = {}
    for index, item in enumerate(flows, start=1):
        flow = _flow(item, where, index)
        if flow.id in seen:
            raise where.in_flow(flow.id).at("id").error(
                f"duplicate flow id (flow #{seen[flow.id]} has it too)"
            )
        seen[flow.id] = index
        request.flows.append(flow)
    return request


# ---------------------------------------------------------------------- loaders


class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses duplicate keys (the last would silently win)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {syntax.quote(key)}", mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
    return result


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def _load_yaml(text: str, source: str | None) -> object:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise RuleFileError(f"{at}invalid YAML: {problem}", source=source) from None
    except yaml.YAMLError as exc:
        raise RuleFileError(f"invalid YAML: {exc}", source=source) from None


def _load_json(text: str, source: str | None) -> object:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in items:
            if key in result:
                raise ValueError(f"duplicate key {syntax.quote(key)}")
            result[key] = value
        return result

    try:
        return json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise RuleFileError(
            f"line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}", source=source
        ) from None
    except ValueError as exc:
        raise RuleFileError(f"invalid JSON: {exc}", source=source) from None


# -------------------------------------------------------------- generic values


def _mapping(value: object, where: _Where, known: Sequence[str]) -> Mapping[str, Any]:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise where.error(f"must be a mapping with {', '.join(known)}, not {_kind(value)}")
    for key in value:
        if not isinstance(key, str) or key not in known:
            hint = difflib.get_close_matches(str(key), known, n=1)
            suggestion = f' (did you mean "{hint[0]}"?)' if hint else ""
            raise where.at(str(key)).error(
                f"unknown field{suggestion}; known: {', '.join(known)}"
            )
    return value


def _sequence(value: object, where: _Where) -> Sequence[Any]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise where.error(f"must be a list, not {_kind(value)}")
    return value


def _string(value: object, where: _Where) -> str:
    if not isinstance(value, str):
        raise where.error(f"must be text, not {_kind(value)}")
    return value


def _integer(value: object, where: _Where, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error(f"{syntax.quote(value)} is not an integer")
    if not low <= value <= high:
        raise where.error(f"{value} is out of range ({low}-{high})")
    return value


def _word(value: object, where: _Where, table: Mapping[str, T]) -> T:
    if not isinstance(value, str) or value.lower() not in table:
        hint = difflib.get_close_matches(str(value).lower(), list(table), n=1)
        suggestion = f' (did you mean "{hint[0]}"?)' if hint else ""
        raise where.error(
            f"{syntax.quote(value)} is not one of {', '.join(table)}{suggestion}"
        )
    return table[value.lower()]


def _checked(where: _Where, check: Callable[[], T]) -> T:
    """Run a ``syntax`` check, turning its ValueError into an error at ``where``."""
    try:
        return check()
    except ValueError as exc:
        raise where.error(str(exc)) from None


def _scalar_text(value: object, where: _Where, what: str) -> str | int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise where.error(f"{syntax.quote(value)} is not {what}")
    return value


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"{type(value).__name__} {syntax.quote(value)}"


# ---------------------------------------------------------------- the objects


def _flow(item: object, parent: _Where, index: int) -> pb.Flow:
    where = parent.in_flow(f"#{index}")
    data = _mapping(item, where, _FLOW)
    if "id" not in data:
        raise where.at("id").error("is missing (every flow needs an id)")
    flow_id = _checked(where.at("id"), lambda: syntax.check_id(_string(data["id"], where.at("id"))))
    where = parent.in_flow(flow_id)
    flow = pb.Flow(id=flow_id)
    flow.match.CopyFrom(_flow_match(data.get("match"), where.at("match")))
    if "config" not in data:
        raise where.at("config").error("is missing (a flow needs at least default_verdict)")
    flow.config.CopyFrom(_config(data["config"], where.at("config")))
    seen: dict[str, int] = {}
    for position, rule_item in enumerate(_sequence(data.get("rules"), where.at("rules")), 1):
        rule = _rule(rule_item, where, position)
        if rule.id in seen:
            raise where.in_rule(rule.id).at("id").error(
                f"duplicate rule id (rule #{seen[rule.id]} of this flow has it too)"
            )
        seen[rule.id] = position
        flow.rules.append(rule)
    return flow


def _flow_match(item: object, where: _Where) -> pb.FlowMatch:
    data = _mapping(item, where, _FLOW_MATCH)
    match = pb.FlowMatch()
    if "direction" in data:
        match.direction = _word(data["direction"], where.at("direction"), names.DIRECTIONS)
    _fill_l34(match, data, where)
    return match


def _fill_l34(match: pb.FlowMatch | pb.RuleMatch, data: Mapping[str, Any], where: _Where) -> None:
    """The fields flow and rule matches share: protocol, addresses, ports."""
    if "protocol" in data:
        at = where.at("protocol")
        number = _checked(
            at, lambda: syntax.parse_protocol(_scalar_text(data["protocol"], at, "a protocol"))
        )
        match.protocol = syntax.format_protocol(number)
    families = {}
    for side in ("src", "dst"):
        if side in data:
            at = where.at(side)
            text = _string(data[side], at)
            network = _checked(at, lambda text=text: syntax.parse_prefix(text))  # type: ignore[misc]
            setattr(match, side, syntax.format_prefix(network))
            if network is not None:
                families[side] = network.version
    if len(set(families.values())) > 1:
        raise where.at("dst").error(
            f"is IPv{families['dst']} but src is IPv{families['src']} (one family per match)"
        )
    for side in ("src_ports", "dst_ports"):
        if side in data:
            at = where.at(side)
            raw = _scalar_text(data[side], at, "a port or range of ports")
            ports = _checked(at, lambda raw=raw: syntax.parse_port_range(raw))  # type: ignore[misc]
            if ports is not None:
                getattr(match, side).CopyFrom(pb.PortRange(lo=ports[0], hi=ports[1]))


def _config(item: object, where: _Where) -> pb.FlowConfig:
    data = _mapping(item, where, _CONFIG)
    config = pb.FlowConfig()
    services = _sequence(data.get("services"), where.at("services"))
    seen = set()
    for index, word in enumerate(services):
        service = _word(word, where.at("services").at(index), names.SERVICES)
        if service in seen:
            raise where.at("services").at(index).error(f"{syntax.quote(word)} is listed twice")
        seen.add(service)
        config.services.append(service)
    if "default_verdict" not in data:
        raise where.at("default_verdict").error(
            f"is missing (one of {', '.join(names.VERDICTS)})"
        )
    config.default_verdict = _word(
        data["default_verdict"], where.at("default_verdict"), names.VERDICTS
    )
    if "timeouts" in data:
        at = where.at("timeouts")
        timeouts = _mapping(data["timeouts"], at, _TIMEOUTS)
        for state, seconds in timeouts.items():
            setattr(config.timeouts, state, _integer(seconds, at.at(state), 1, MAX_TIMEOUT_S))
    if "rate_limit" in data:
        config.rate_limit.CopyFrom(_rate_limit(data["rate_limit"], where.at("rate_limit")))
    if "mirror_session" in data:
        config.mirror_session = _integer(
            data["mirror_session"], where.at("mirror_session"), 1, 2**32 - 1
        )
    return config


def _rate_limit(item: object, where: _Where) -> pb.RateLimit:
    """cir/cbs required; pir/pbs default to them (a single-rate limit)."""
    data = _mapping(item, where, _RATE_LIMIT)
    for required in ("cir", "cbs"):
        if required not in data:
            raise where.at(required).error("is missing (bytes/s and bytes)")
    cir = _integer(data["cir"], where.at("cir"), 1, MAX_RATE)
    cbs = _integer(data["cbs"], where.at("cbs"), 1, MAX_RATE)
    pir = _integer(data.get("pir", cir), where.at("pir"), 1, MAX_RATE)
    pbs = _integer(data.get("pbs", cbs), where.at("pbs"), 1, MAX_RATE)
    if pir < cir:
        raise where.at("pir").error(f"{pir} is below cir {cir} (the peak rate must be >= cir)")
    return pb.RateLimit(cir=cir, cbs=cbs, pir=pir, pbs=pbs)


def _rule(item: object, flow: _Where, index: int) -> pb.Rule:
    where = flow.in_rule(f"#{index}")
    data = _mapping(item, where, _RULE)
    if "id" not in data:
        raise where.at("id").error("is missing (every rule needs an id)")
    rule_id = _checked(where.at("id"), lambda: syntax.check_id(_string(data["id"], where.at("id"))))
    where = flow.in_rule(rule_id)
    rule = pb.Rule(id=rule_id)
    rule.match.CopyFrom(_rule_match(data.get("match"), where.at("match")))
    actions = [name for name in _ACTIONS if name in data]
    if len(actions) != 1:
        have = f"has {', '.join(actions)}" if actions else "has none"
        raise where.error(f"needs exactly one action of {', '.join(_ACTIONS)} ({have})")
    action = actions[0]
    at = where.at(action)
    if action == "verdict":
        rule.verdict = _word(data["verdict"], at, names.VERDICTS)
    elif action == "snat":
        rule.snat.CopyFrom(_snat(data["snat"], at))
    elif action == "dnat":
        rule.dnat.CopyFrom(_dnat(data["dnat"], at))
    else:
        rule.load_balance.CopyFrom(_load_balance(data["load_balance"], at))
    if "rate_limit" in data:
        rule.rate_limit.CopyFrom(_rate_limit(data["rate_limit"], where.at("rate_limit")))
    return rule


def _rule_match(item: object, where: _Where) -> pb.RuleMatch:
    data = _mapping(item, where, _RULE_MATCH)
    match = pb.RuleMatch()
    if "direction" in data:
        match.direction = _word(data["direction"], where.at("direction"), names.DIRECTIONS)
    if "ct_state" in data:
        match.ct_state = _word(data["ct_state"], where.at("ct_state"), names.CT_STATES)
    _fill_l34(match, data, where)
    if "tcp_flags" in data:
        at = where.at("tcp_flags")
        raw = data["tcp_flags"]
        if not isinstance(raw, str | Mapping):
            raise at.error(f'{syntax.quote(raw)} is not TCP flags (e.g. "syn,!ack")')
        value, mask = _checked(at, lambda: syntax.parse_tcp_flags(raw))
        match.tcp_flags.CopyFrom(pb.TcpFlags(value=value, mask=mask))
    return match


def _address(data: Mapping[str, Any], key: str, where: _Where) -> str:
    at = where.at(key)
    if key not in data:
        raise at.error("is missing (an IPv4 address)")
    text = _string(data[key], at)
    return str(_checked(at, lambda: syntax.parse_ipv4_address(text)))


def _port(data: Mapping[str, Any], key: str, where: _Where, *, allow_zero: bool = False) -> int:
    at = where.at(key)
    if key not in data:
        raise at.error("is missing (a port)")
    value = data[key]
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, str) and value == "keep" and allow_zero:
        return 0
    return _checked(at, lambda: syntax.check_port(value, allow_zero=False))


def _snat(item: object, where: _Where) -> pb.Snat:
    data = _mapping(item, where, _SNAT)
    snat = pb.Snat(address=_address(data, "address", where))
    at = where.at("ports")
    if "ports" not in data:
        raise at.error('is missing (the source ports to use, e.g. "20000-29999")')
    raw = _scalar_text(data["ports"], at, "a port or range of ports")
    ports = _checked(at, lambda: syntax.parse_port_range(raw))
    if ports is None or ports[0] == 0:
        raise at.error(f"{syntax.quote(raw)} must be ports 1-65535 (e.g. \"20000-29999\")")
    snat.ports.CopyFrom(pb.PortRange(lo=ports[0], hi=ports[1]))
    return snat


def _dnat(item: object, where: _Where) -> pb.Dnat:
    data = _mapping(item, where, _DNAT)
    dnat = pb.Dnat(address=_address(data, "address", where))
    if "port" in data:
        dnat.port = _port(data, "port", where, allow_zero=True)
    return dnat


def _load_balance(item: object, where: _Where) -> pb.LoadBalance:
    data = _mapping(item, where, _LB)
    lb = pb.LoadBalance(vip=_address(data, "vip", where), port=_port(data, "port", where))
    at = where.at("protocol")
    if "protocol" not in data:
        raise at.error("is missing (tcp or udp)")
    raw = _scalar_text(data["protocol"], at, "tcp or udp")
    number = _checked(at, lambda: syntax.parse_protocol(raw))
    if number not in (syntax.PROTOCOLS["tcp"], syntax.PROTOCOLS["udp"]):
        raise at.error(f"{syntax.quote(data['protocol'])} must be tcp or udp")
    lb.protocol = syntax.format_protocol(number)
    backends = _sequence(data.get("backends"), where.at("backends"))
    if not backends:
        raise where.at("backends").error("is empty (a VIP needs at least one backend)")
    seen: dict[tuple[str, int], int] = {}
    for index, raw in enumerate(backends):
        bat = where.at("backends").at(index)
        entry = _mapping(raw, bat, _BACKEND)
        backend = pb.Backend(
            address=_address(entry, "address", bat), port=_port(entry, "port", bat)
        )
        backend.weight = _integer(entry.get("weight", 1), bat.at("weight"), 1, 100)
        key = (backend.address, backend.port)
        if key in seen:
            raise bat.error(
                f"{backend.address}:{backend.port} is listed twice (also backends[{seen[key]}])"
            )
        seen[key] = index
        lb.backends.append(backend)
    return lb
