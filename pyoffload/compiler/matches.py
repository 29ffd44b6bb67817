"""Match fields of rules and flows as P4Runtime values, and rule coverage.

Addresses sit in the pipeline's 128-bit address fields (IPv4 in the low 32
bits); a wildcard is simply left out of the entry, as P4Runtime asks for
don't-care ternary and range fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyoffload.rules import CtState, Direction, FlowMatch, PortRange, RuleMatch
from pyoffload.rules.values import IPNetwork

ADDRESS_BITS = 128
FULL_PORTS = PortRange(lo=0, hi=65535)


def prefix_ternary(network: IPNetwork) -> tuple[int, int]:
    """(value, mask) of a prefix in a 128-bit address field."""
    return int(network.network_address), int(network.netmask)


def ternary(value: int, width: int) -> tuple[int, int]:
    return value, (1 << width) - 1


def l34_fields(match: FlowMatch | RuleMatch, const: Mapping[str, int]) -> dict[str, Any]:
    """The direction, address, protocol and port fields common to flows and rules."""
    fields: dict[str, Any] = {}
    if match.direction is not Direction.BOTH:
        constant = match.direction.constant
        assert constant is not None
        fields["direction"] = ternary(const[constant], 1)
    if match.src is not None:
        fields["src_addr"] = prefix_ternary(match.src)
    if match.dst is not None:
        fields["dst_addr"] = prefix_ternary(match.dst)
    if match.protocol is not None:
        fields["protocol"] = ternary(match.protocol, 8)
    for name, ports in (("src_port", match.src_ports), ("dst_port", match.dst_ports)):
        if ports is not None and ports != FULL_PORTS:
            fields[name] = (ports.lo, ports.hi)
    return fields


def flow_fields(match: FlowMatch, const: Mapping[str, int]) -> dict[str, Any]:
    fields = l34_fields(match, const)
    version = match.ip_version
    if version is not None:
        fields["ip_version"] = ternary(version, 4)
    return fields


def rule_fields(match: RuleMatch, const: Mapping[str, int]) -> dict[str, Any]:
    fields = l34_fields(match, const)
    if match.ct_state is not CtState.ANY:
        constant = match.ct_state.constant
        assert constant is not None
        fields["ct_state"] = ternary(const[constant], 2)
    if match.tcp_flags is not None:
        fields["tcp_flags"] = (match.tcp_flags.value, match.tcp_flags.mask)
    return fields


def _covers_network(a: IPNetwork | None, b: IPNetwork | None) -> bool:
    if a is None:
        return True
    if b is None or a.version != b.version:
        return False
    return b.subnet_of(a)  # type: ignore[arg-type]


def _covers_ports(a: PortRange | None, b: PortRange | None) -> bool:
    if a is None:
        return True
    b = b or FULL_PORTS
    return a.lo <= b.lo and b.hi <= a.hi


def covers(a: RuleMatch, b: RuleMatch) -> bool:
    """True when every packet ``b`` matches is matched by ``a`` too."""
    if a.direction is not Direction.BOTH and a.direction is not b.direction:
        return False
    if a.ct_state is not CtState.ANY and a.ct_state is not b.ct_state:
        return False
    if a.protocol is not None and a.protocol != b.protocol:
        return False
    if a.tcp_flags is not None:
        if b.tcp_flags is None:
            return False
        # b must fix every flag a looks at, to the same value.
        if a.tcp_flags.mask & ~b.tcp_flags.mask:
            return False
        if (b.tcp_flags.value ^ a.tcp_flags.value) & a.tcp_flags.mask:
            return False
    return (
        _covers_network(a.src, b.src)
        and _covers_network(a.dst, b.dst)
        and _covers_ports(a.src_ports, b.src_ports)
        and _covers_ports(a.dst_ports, b.dst_ports)
    )


def range_to_prefixes(lo: int, hi: int, width: int) -> list[tuple[int, int]]:
    """The fewest (value, mask) pairs whose union is exactly ``lo..hi``.

    For targets whose tables match ports ternary rather than by range: a range
    of w-bit values needs at most 2w - 2 prefixes.
    """
    full = (1 << width) - 1
    result: list[tuple[int, int]] = []
    while lo <= hi:
        # the largest aligned block starting at lo that stays within hi
        size = lo & -lo if lo else 1 << width
        while size > hi - lo + 1:
            size >>= 1
        result.append((lo, full & ~(size - 1)))
        lo += size
    return result
