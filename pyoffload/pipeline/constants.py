"""The numbers the control plane shares with the P4 program, as typed values.

Every value comes from the compiled constants (the ``const``s of
``p4src/include/defines.p4``, written to ``vnic.constants.json`` by the build),
never retyped here: the enums below are filled from that file when this module
is imported, and ``check_constants`` tells whether another build of the program
(a variant, or a target's own artifacts) agrees with them.

The layouts live here too: the bit positions of the ``vnic.ct_info`` word (also
exported by the P4 program) and how a conntrack slot and its signature are
hashed from the VNIC id and the normalised 5-tuple.
"""

from __future__ import annotations

import enum
import zlib
from collections.abc import Mapping
from typing import Protocol

import attrs

from pyoffload.pipeline.artifacts import load_constants
from pyoffload.pipeline.names import PipelineMismatch

COMPILED: Mapping[str, int] = load_constants()
"""The compiled constants of the pipeline that ships with pyoffload."""


def _value(name: str) -> int:
    try:
        return COMPILED[name]
    except KeyError:
        raise PipelineMismatch(f"the compiled constants lack {name}: rebuild the pipeline "
                               "(scripts/build-p4) or reinstall pyoffload") from None


class PacketDirection(enum.IntEnum):
    """A packet's direction seen from the guest (``DIR_*``)."""

    FROM_GUEST = _value("DIR_FROM_GUEST")
    TO_GUEST = _value("DIR_TO_GUEST")


class Policy(enum.IntEnum):
    """What a VNIC does with IP traffic no flow matches (``POLICY_*``)."""

    ALLOW = _value("POLICY_ALLOW")
    DENY = _value("POLICY_DENY")
    PUNT = _value("POLICY_PUNT")


class ConnState(enum.IntEnum):
    """The connection state stored in a conntrack slot (``CT_*``)."""

    FREE = _value("CT_FREE")
    TCP_SYN_SENT = _value("CT_TCP_SYN_SENT")
    TCP_SYN_RECV = _value("CT_TCP_SYN_RECV")
    TCP_ESTABLISHED = _value("CT_TCP_ESTABLISHED")
    TCP_FIN_WAIT = _value("CT_TCP_FIN_WAIT")
    TCP_CLOSING = _value("CT_TCP_CLOSING")
    TCP_CLOSED = _value("CT_TCP_CLOSED")
    UDP_NEW = _value("CT_UDP_NEW")
    UDP_ESTABLISHED = _value("CT_UDP_ESTABLISHED")
    ICMP_NEW = _value("CT_ICMP_NEW")
    ICMP_REPLIED = _value("CT_ICMP_REPLIED")


class SlotKind(enum.IntEnum):
    """A slot's side of a connection (``CT_KIND_*``): translated ones have two slots."""

    PLAIN = _value("CT_KIND_PLAIN")
    GUEST = _value("CT_KIND_GUEST")
    NETWORK = _value("CT_KIND_NETWORK")


class PuntReason(enum.IntEnum):
    """The ``reason`` of a packet-in (``PUNT_*``)."""

    RULE = _value("PUNT_RULE")
    NO_FLOW = _value("PUNT_NO_FLOW")
    CT_COLLISION = _value("PUNT_CT_COLLISION")
    NAT_COLLISION = _value("PUNT_NAT_COLLISION")


class DropReason(enum.IntEnum):
    """Indices of ``vnic.drop_counter`` (``DROP_*``)."""

    UNMAPPED_PORT = _value("DROP_UNMAPPED_PORT")
    MALFORMED = _value("DROP_MALFORMED")
    IPV4_CHECKSUM = _value("DROP_IPV4_CHECKSUM")
    NO_FLOW = _value("DROP_NO_FLOW")
    RULE_DENY = _value("DROP_RULE_DENY")
    RULE_REJECT = _value("DROP_RULE_REJECT")
    RATE_LIMIT = _value("DROP_RATE_LIMIT")
    CT_INVALID = _value("DROP_CT_INVALID")
    CT_QUOTA = _value("DROP_CT_QUOTA")


@attrs.frozen
class _Field:
    lsb: int
    width: int

    def get(self, word: int) -> int:
        return word >> self.lsb & ((1 << self.width) - 1)

    def put(self, value: int) -> int:
        if not 0 <= value < 1 << self.width:
            raise ValueError(f"{value} does not fit in {self.width} bits")
        return value << self.lsb


@attrs.frozen(kw_only=True)
class CtInfo:
    """One ``vnic.ct_info`` word, decoded with the bit positions the program exports."""

    state: int
    """``ConnState`` number (FREE: the slot holds no connection)."""
    originator_is_hi: bool = False
    """The connection's first packet came from the higher endpoint of the normalised tuple."""
    kind: int = SlotKind.PLAIN
    """``SlotKind``: plain, or one side of a translated connection."""
    xlate_src: bool = False
    """Packets hitting this slot get their source rewritten."""
    xlate_dst: bool = False
    """Packets hitting this slot get their destination rewritten."""
    fin_orig: bool = False
    """A FIN was seen from the originator."""
    fin_reply: bool = False
    """A FIN was seen from the responder."""
    profile: int = 0
    """The flow's conntrack timeout profile."""

    STATE = _Field(_value("CT_INFO_STATE_LSB"), _value("CT_INFO_STATE_WIDTH"))
    ORIG_HI = _Field(_value("CT_INFO_ORIG_HI_BIT"), 1)
    KIND = _Field(_value("CT_INFO_KIND_LSB"), _value("CT_INFO_KIND_WIDTH"))
    XLATE_SRC = _Field(_value("CT_INFO_XLATE_SRC_BIT"), 1)
    XLATE_DST = _Field(_value("CT_INFO_XLATE_DST_BIT"), 1)
    FIN_ORIG = _Field(_value("CT_INFO_FIN_ORIG_BIT"), 1)
    FIN_REPLY = _Field(_value("CT_INFO_FIN_REPLY_BIT"), 1)
    PROFILE = _Field(_value("CT_INFO_PROFILE_LSB"), _value("CT_INFO_PROFILE_WIDTH"))

    @classmethod
    def decode(cls, word: int) -> CtInfo:
        return cls(state=cls.STATE.get(word), originator_is_hi=bool(cls.ORIG_HI.get(word)),
                   kind=cls.KIND.get(word), xlate_src=bool(cls.XLATE_SRC.get(word)),
                   xlate_dst=bool(cls.XLATE_DST.get(word)),
                   fin_orig=bool(cls.FIN_ORIG.get(word)),
                   fin_reply=bool(cls.FIN_REPLY.get(word)), profile=cls.PROFILE.get(word))

    def encode(self) -> int:
        return (self.STATE.put(self.state) | self.ORIG_HI.put(int(self.originator_is_hi))
                | self.KIND.put(self.kind) | self.XLATE_SRC.put(int(self.xlate_src))
                | self.XLATE_DST.put(int(self.xlate_dst))
                | self.FIN_ORIG.put(int(self.fin_orig)) | self.FIN_REPLY.put(int(self.fin_reply))
                | self.PROFILE.put(self.profile))

    @classmethod
    def state_of(cls, word: int) -> int:
        """The slot state alone (the hot path of listings and exports)."""
        return cls.STATE.get(word)

    @classmethod
    def is_translated(cls, word: int) -> bool:
        return cls.KIND.get(word) != SlotKind.PLAIN


@attrs.frozen(kw_only=True)
class Tuple5:
    """A connection's direction-normalised 5-tuple, as the pipeline hashes it: the
    lower (address, port) endpoint first; IPv4 addresses in the low 32 bits."""

    protocol: int
    lo_addr: int
    hi_addr: int
    lo_port: int
    hi_port: int

    def packed(self) -> bytes:
        """The tuple as 37 bytes (protocol, addresses, ports, big-endian): a stable key."""
        return b"".join((self.protocol.to_bytes(1, "big"), self.lo_addr.to_bytes(16, "big"),
                         self.hi_addr.to_bytes(16, "big"), self.lo_port.to_bytes(2, "big"),
                         self.hi_port.to_bytes(2, "big")))


class FiveTuple(Protocol):
    """Anything that carries a normalised tuple (a slot, a learned connection)."""

    @property
    def protocol(self) -> int: ...
    @property
    def lo_addr(self) -> int: ...
    @property
    def hi_addr(self) -> int: ...
    @property
    def lo_port(self) -> int: ...
    @property
    def hi_port(self) -> int: ...


SIGNATURE_SALT = b"\x5a"
"""The constant the signature hash appends (``stages/conntrack.p4``)."""


def slot_hash(vnic_id: int, key: FiveTuple) -> tuple[int, int]:
    """(hash, signature) of a connection, as ``stages/conntrack.p4`` computes them: CRC-32
    over VNIC id (16 bits), protocol (8), low and high address (128 each), low and high
    port (16 each); the signature over the same fields in reverse order and the salt.
    The slot is the hash modulo the table's ``CT_SLOTS``."""
    lo, hi = key.lo_addr.to_bytes(16, "big"), key.hi_addr.to_bytes(16, "big")
    lo_port, hi_port = key.lo_port.to_bytes(2, "big"), key.hi_port.to_bytes(2, "big")
    vnic, proto = vnic_id.to_bytes(2, "big"), key.protocol.to_bytes(1, "big")
    forward = b"".join((vnic, proto, lo, hi, lo_port, hi_port))
    backward = b"".join((hi_port, lo_port, hi, lo, proto, vnic, SIGNATURE_SALT))
    return zlib.crc32(forward), zlib.crc32(backward)


def check_constants(constants: Mapping[str, int]) -> None:
    """``constants`` (another build's) agree with the ones this package was built with."""
    differ = sorted(name for name in set(COMPILED) | set(constants)
                    if COMPILED.get(name) != constants.get(name))
    if differ:
        raise PipelineMismatch(
            "the pipeline's constants differ from the ones pyoffload was built with ("
            + ", ".join(f"{n}: {constants.get(n)} vs {COMPILED.get(n)}" for n in differ[:5])
            + "): use the pipeline that ships with this pyoffload")
