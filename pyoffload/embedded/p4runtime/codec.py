"""P4Runtime bytestring <-> integer conversion.

P4Runtime carries every P4 integer as a big-endian bytestring whose length is
not fixed by the protocol; what matters is that the value fits the bit width
the P4Info declares (spec section "Bytestrings"). The server accepts padded
strings from clients but always answers in the canonical (shortest) form, so
that what a client reads back compares equal to what a well-behaved client
wrote (read-write symmetry).

Errors are raised as `StatusError(INVALID_ARGUMENT)` naming the field, as
BMv2's PI server does for out-of-range strings.
"""

from __future__ import annotations

from .errors import invalid


def decode_uint(data: bytes, bitwidth: int, what: str) -> int:
    """Return the unsigned value of `data`, checking it fits `bitwidth` bits.

    An empty string is rejected: the spec gives it no value, and accepting it
    would hide client bugs that forget to set a field.
    """
    if not data:
        raise invalid(f"{what}: empty bytestring")
    value = int.from_bytes(data, "big")
    if value >> bitwidth:
        raise invalid(f"{what}: value 0x{data.hex()} does not fit in {bitwidth} bits")
    return value


def encode_uint(value: int, bitwidth: int = 0) -> bytes:
    """Return the canonical (shortest, at least one byte) encoding of `value`.

    `bitwidth` is only used to check the caller's invariant: a value that
    does not fit is a bug in the server, not in the client.
    """
    if value < 0 or (bitwidth and value >> bitwidth):
        raise ValueError(f"{value} is not a bit<{bitwidth}> value")
    return value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")


def decode_int(data: bytes, bitwidth: int, what: str) -> int:
    """Return the signed (two's complement) value of `data` for an `int<W>`.

    Extra leading bytes must be sign extension, and the value must fit W bits.
    """
    if not data:
        raise invalid(f"{what}: empty bytestring")
    value = int.from_bytes(data, "big", signed=True)
    limit = 1 << (bitwidth - 1)
    if not -limit <= value < limit:
        raise invalid(f"{what}: value 0x{data.hex()} does not fit in int<{bitwidth}>")
    return value


def encode_int(value: int) -> bytes:
    """Return the canonical two's complement encoding of a signed value."""
    nbits = value.bit_length() + 1 if value >= 0 else (~value).bit_length() + 1
    return value.to_bytes(max(1, (nbits + 7) // 8), "big", signed=True)


def uint_from_signed_bits(value: int, bitwidth: int) -> int:
    """Reinterpret a signed value as the unsigned `bitwidth`-bit pattern the engine holds."""
    return value & ((1 << bitwidth) - 1)


def signed_from_uint_bits(value: int, bitwidth: int) -> int:
    """Reinterpret an engine `bitwidth`-bit pattern as a signed value."""
    if value >> (bitwidth - 1):
        return value - (1 << bitwidth)
    return value
