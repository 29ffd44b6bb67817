"""The small values rules are made of: enums, port ranges, TCP flags, prefixes.

Each enum's ``value`` is its spelling in rule files and its ``constant`` the
name of the matching ``const`` in ``p4src/include/defines.p4``, so the compiler
looks the number up in the compiled constants instead of repeating it.
"""

from __future__ import annotations

import enum
import ipaddress

import attrs

from guest_shim import syntax
from pyoffload.rules.errors import RuleError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

PROTO_ICMP = syntax.PROTOCOLS["icmp"]
PROTO_TCP = syntax.PROTOCOLS["tcp"]
PROTO_UDP = syntax.PROTOCOLS["udp"]
PROTO_ICMPV6 = syntax.PROTOCOLS["icmpv6"]
PORT_PROTOCOLS = frozenset({PROTO_TCP, PROTO_UDP})


class Direction(enum.Enum):
    """Which way a packet travels, seen from the guest."""

    FROM_GUEST = "from-guest"
    TO_GUEST = "to-guest"
    BOTH = "both"

    @property
    def constant(self) -> str | None:
        """``DIR_*`` in defines.p4; None for both (a wildcard)."""
        return {"from-guest": "DIR_FROM_GUEST", "to-guest": "DIR_TO_GUEST"}.get(self.value)


class CtState(enum.Enum):
    """What connection tracking says about a packet when the rules see it."""

    ANY = "any"
    NEW = "new"
    ESTABLISHED = "established"
    INVALID = "invalid"
    UNTRACKED = "untracked"

    @property
    def constant(self) -> str | None:
        """``CTS_*`` in defines.p4; None for any (a wildcard)."""
        return None if self is CtState.ANY else f"CTS_{self.name}"


class Verdict(enum.Enum):
    """What happens to a packet (a rule's action or a flow's default)."""

    ALLOW = "allow"
    ALLOW_TRACK = "allow-track"
    DENY = "deny"
    REJECT = "reject"
    PUNT = "punt"

    @property
    def constant(self) -> str:
        """``VERDICT_*`` in defines.p4."""
        return f"VERDICT_{self.name}"

    @property
    def allows(self) -> bool:
        """Whether packets pass (only then do NAT, LB and meters act)."""
        return self in (Verdict.ALLOW, Verdict.ALLOW_TRACK)


class Service(enum.Enum):
    """A service a flow turns on (a bit of flow_config's ``services``)."""

    CONNTRACK = "conntrack"
    NAT = "nat"
    LB = "lb"
    RATE_LIMIT = "rate-limit"
    MIRROR = "mirror"
    COUNT = "count"

    @property
    def constant(self) -> str:
        """``SVC_*`` in defines.p4 (rate-limit is the flow meter, ``SVC_METER``)."""
        return "SVC_METER" if self is Service.RATE_LIMIT else f"SVC_{self.name}"


def _port_bound(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= syntax.MAX_PORT:
        raise RuleError(f"{value!r} is not a port (0-{syntax.MAX_PORT})", field=attribute.name)


@attrs.frozen(kw_only=True)
class PortRange:
    """An inclusive range of TCP/UDP ports (a P4 ``range`` match)."""

    lo: int = attrs.field(validator=_port_bound)
    """The first port of the range."""
    hi: int = attrs.field(validator=_port_bound)
    """The last port of the range (>= lo)."""

    def __attrs_post_init__(self) -> None:
        if self.lo > self.hi:
            raise RuleError(f'"{self.lo}-{self.hi}" is not a range (low > high)')

    @classmethod
    def single(cls, port: int) -> PortRange:
        """The range holding one port."""
        return cls(lo=port, hi=port)

    def __str__(self) -> str:
        return str(self.lo) if self.lo == self.hi else f"{self.lo}-{self.hi}"


@attrs.frozen(kw_only=True)
class TcpFlags:
    """TCP flags a packet must have set (value) among those looked at (mask)."""

    value: int
    """Flags that must be set (a subset of mask)."""
    mask: int
    """Flags that are looked at; the others are ignored."""

    def __attrs_post_init__(self) -> None:
        try:
            syntax.check_tcp_flags(self.value, self.mask)
        except ValueError as exc:
            raise RuleError(str(exc)) from None

    def __str__(self) -> str:
        return syntax.format_tcp_flags(self.value, self.mask)


def check_network(value: IPNetwork | None, field: str) -> None:
    """A prefix must be an ipaddress network (or None for any)."""
    if value is not None and not isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        raise RuleError(f"{value!r} is not an IPv4 or IPv6 prefix", field=field)


def protocol_name(protocol: int | None) -> str:
    """``tcp``, ``udp``, ``47``, ``any``: for messages."""
    return syntax.format_protocol(protocol) or "any"
