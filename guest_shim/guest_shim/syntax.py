"""Parsing and checking of the scalar values of an offload request.

The shim (reading rule files) and pyoffload (validating what arrives on the
channel) accept exactly the same spellings, so both call these functions.
Each raises ``ValueError`` whose text is the reason alone, quoting the bad
value (``"80-70" is not a range (low > high)``); the caller adds where.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Names the pipeline's numbers are written as (p4src/include/defines.p4).
PROTOCOLS: dict[str, int] = {"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58}
PROTOCOL_NAMES: dict[int, str] = {number: name for name, number in PROTOCOLS.items()}
TCP_FLAGS: dict[str, int] = {
    "fin": 0x01,
    "syn": 0x02,
    "rst": 0x04,
    "psh": 0x08,
    "ack": 0x10,
    "urg": 0x20,
    "ece": 0x40,
    "cwr": 0x80,
}
ANY = "any"
MAX_PORT = 65535
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}\Z")


QUOTED_MAX = 80
"""Characters of a text value an error message shows (a guest's 9,000-character id
would otherwise make a message larger than gRPC carries)."""


def quote(value: object) -> str:
    """A value as the user wrote it, quoted when it is text: at most ``QUOTED_MAX``
    characters of it (then its length), characters that do not print escaped."""
    if not isinstance(value, str):
        return repr(value)
    shown = value[:QUOTED_MAX]
    if not shown.isprintable():
        shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in shown)
    if len(value) > QUOTED_MAX:
        return f'"{shown}…" ({len(value)} characters)'
    return f'"{shown}"'


def check_id(value: str) -> str:
    """A flow or rule id: 1-63 letters, digits, ``_ . : -``, starting alphanumeric."""
    if not value:
        raise ValueError("is missing (an id is required)")
    if not _ID_RE.match(value):
        raise ValueError(
            f"{quote(value)} is not a valid id (1-63 letters, digits, '_', '.', ':', '-', "
            "starting with a letter or digit)"
        )
    return value


def parse_prefix(text: str) -> IPNetwork | None:
    """An IPv4 or IPv6 prefix (a bare address is a host prefix); ""/"any" -> None."""
    text = text.strip()
    if text in ("", ANY):
        return None
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"{quote(text)} is not an IPv4 or IPv6 address or prefix") from None
    raise ValueError(f"{quote(text)} has host bits set (did you mean {loose}?)")


def format_prefix(network: IPNetwork | None) -> str:
    """The wire form of a prefix: "" for any."""
    return "" if network is None else str(network)


def parse_ipv4_address(text: str) -> ipaddress.IPv4Address:
    """An IPv4 address (NAT and load balancing are IPv4 only in the pipeline)."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        raise ValueError(f"{quote(text)} is not an IPv4 address") from None
    if not isinstance(address, ipaddress.IPv4Address):
        raise ValueError(f"{quote(text)} is IPv6; only IPv4 is supported here")
    return address


def parse_protocol(value: str | int) -> int | None:
    """A protocol name (tcp, udp, icmp, icmpv6), a number 0-255, or ""/"any" -> None."""
    if isinstance(value, bool):
        raise ValueError(f"{quote(value)} is not a protocol")
    if isinstance(value, int):
        number = value
    else:
        text = value.strip().lower()
        if text in ("", ANY):
            return None
        if text in PROTOCOLS:
            return PROTOCOLS[text]
        if not text.isdigit():
            names = ", ".join(PROTOCOLS)
            raise ValueError(f"{quote(value)} is not a protocol ({names}, any or 0-255)")
        number = int(text)
    if not 0 <= number <= 255:
        raise ValueError(f"{quote(value)} is not a protocol number (0-255)")
    return number


def format_protocol(number: int | None) -> str:
    """The wire form of a protocol: its name when it has one, "" for any."""
    if number is None:
        return ""
    return PROTOCOL_NAMES.get(number, str(number))


def check_port(value: int, *, allow_zero: bool = False) -> int:
    """A TCP/UDP port number (1-65535, or 0 where it means "keep")."""
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_PORT:
        raise ValueError(f"{quote(value)} is not a port ({low}-{MAX_PORT})")
    return value


def check_port_range(lo: int, hi: int) -> tuple[int, int]:
    """An inclusive port range, 0-65535 each, low <= high."""
    for end in (lo, hi):
        if not 0 <= end <= MAX_PORT:
            raise ValueError(f"{quote(f'{lo}-{hi}')} is not a range of ports (0-{MAX_PORT})")
    if lo > hi:
        raise ValueError(f"{quote(f'{lo}-{hi}')} is not a range (low > high)")
    return lo, hi


def parse_port_range(value: str | int) -> tuple[int, int] | None:
    """``80``, ``"80"``, ``"1024-65535"``; ``"any"`` -> None."""
    if isinstance(value, bool):
        raise ValueError(f"{quote(value)} is not a port or range of ports")
    if isinstance(value, int):
        return check_port_range(value, value)
    text = value.strip()
    if text in ("", ANY):
        return None
    lo_text, dash, hi_text = text.partition("-")
    if not lo_text.strip().isdigit() or (dash and not hi_text.strip().isdigit()):
        raise ValueError(f'{quote(value)} is not a port or range of ports (e.g. 80 or "1024-2047")')
    lo = int(lo_text)
    hi = int(hi_text) if dash else lo
    if not (0 <= lo <= MAX_PORT and 0 <= hi <= MAX_PORT):
        raise ValueError(f"{quote(value)} is not a range of ports (0-{MAX_PORT})")
    if lo > hi:
        raise ValueError(f"{quote(value)} is not a range (low > high)")
    return lo, hi


def check_tcp_flags(value: int, mask: int) -> tuple[int, int]:
    """TCP flags (value, mask), 8 bits each, no bit set in value outside mask."""
    for part in (value, mask):
        if not 0 <= part <= 0xFF:
            raise ValueError(f"{quote(f'{value:#x}/{mask:#x}')} is not 8-bit TCP flags")
    if value & ~mask:
        raise ValueError(
            f"{quote(f'{value:#x}/{mask:#x}')} sets flags outside its mask (value & ~mask != 0)"
        )
    return value, mask


def parse_tcp_flags(value: str | Mapping[str, object]) -> tuple[int, int]:
    """``"syn,!ack"`` (named flags must be set, ``!``-flags clear) or {value, mask}."""
    if isinstance(value, Mapping):
        unknown = set(value) - {"value", "mask"}
        if unknown or "value" not in value:
            raise ValueError("must have value and mask (e.g. {value: 0x02, mask: 0x12})")
        bits = value["value"]
        mask = value.get("mask", 0xFF)
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in (bits, mask)):
            raise ValueError("value and mask must be integers")
        assert isinstance(bits, int) and isinstance(mask, int)
        return check_tcp_flags(bits, mask)
    bits = mask = 0
    for word in value.replace(" ", ",").split(","):
        if not word:
            continue
        clear = word.startswith("!")
        name = word[1:].lower() if clear else word.lower()
        if name not in TCP_FLAGS:
            known = ", ".join(TCP_FLAGS)
            raise ValueError(f"{quote(word)} is not a TCP flag ({known}; '!' for not set)")
        mask |= TCP_FLAGS[name]
        if not clear:
            bits |= TCP_FLAGS[name]
    if not mask:
        raise ValueError(f'{quote(value)} names no TCP flag (e.g. "syn,!ack")')
    return bits, mask


def format_tcp_flags(value: int, mask: int) -> str:
    """The readable form of (value, mask): ``"syn,!ack"``."""
    words = []
    for name, bit in TCP_FLAGS.items():
        if mask & bit:
            words.append(name if value & bit else f"!{name}")
    return ",".join(words)
