"""Packing and unpacking of the CPU port's controller headers.

BMv2 exchanges packets with the controller through a CPU port: a packet the
pipeline sends there starts with the `packet_in` header, and a packet-out is
injected on that port prefixed with the `packet_out` header. The layout of
both comes from the P4Info `controller_packet_metadata` (fields in header
order, each with its bit width); the header must be a whole number of bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import invalid


@dataclass(frozen=True, slots=True)
class HeaderLayout:
    """Field ids and widths of one controller header, in wire order."""

    name: str
    fields: tuple[tuple[int, str, int], ...]  # (metadata id, name, bitwidth)

    @property
    def nbytes(self) -> int:
        return sum(width for _, _, width in self.fields) // 8

    def check(self) -> None:
        """Raise INVALID_ARGUMENT unless the header is byte aligned."""
        bits = sum(width for _, _, width in self.fields)
        if bits % 8:
            raise invalid(f"controller header {self.name!r} is {bits} bits, not whole bytes")

    def pack(self, values: Mapping[int, int]) -> bytes:
        """The header bytes for metadata values by id (missing ids are 0)."""
        acc = 0
        for ident, _, width in self.fields:
            acc = (acc << width) | (values.get(ident, 0) & ((1 << width) - 1))
        return acc.to_bytes(self.nbytes, "big")

    def unpack(self, frame: bytes) -> tuple[list[tuple[int, int]], bytes]:
        """Split a frame into ((id, value) per field, payload)."""
        size = self.nbytes
        if len(frame) < size:
            raise invalid(f"frame of {len(frame)} bytes is shorter than header {self.name!r}")
        acc = int.from_bytes(frame[:size], "big")
        values: list[tuple[int, int]] = []
        shift = size * 8
        for ident, _, width in self.fields:
            shift -= width
            values.append((ident, (acc >> shift) & ((1 << width) - 1)))
        return values, frame[size:]


@dataclass(frozen=True, slots=True)
class CpuHeaders:
    """The packet_in and packet_out layouts of a pipeline (either may be absent)."""

    packet_in: HeaderLayout | None
    packet_out: HeaderLayout | None

    @classmethod
    def from_fields(
        cls,
        packet_in: Sequence[tuple[int, str, int]] | None,
        packet_out: Sequence[tuple[int, str, int]] | None,
    ) -> CpuHeaders:
        pin = HeaderLayout("packet_in", tuple(packet_in)) if packet_in is not None else None
        pout = HeaderLayout("packet_out", tuple(packet_out)) if packet_out is not None else None
        for layout in (pin, pout):
            if layout is not None:
                layout.check()
        return cls(pin, pout)
