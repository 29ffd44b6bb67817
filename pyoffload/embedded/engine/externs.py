"""Stateful externs: registers, counters and meters, with BMv2's arithmetic.

Registers and counters live in `array` buffers so a million-cell register costs
its bit width in memory, not a Python object per cell. Meters are two-rate
three-colour markers computed exactly as BMv2 does (token buckets refilled from
a single time origin, in microseconds, PIR bucket checked before CIR).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from dataclasses import dataclass

from .errors import InvalidValue

GREEN, YELLOW, RED = 0, 1, 2


def _typecode(bitwidth: int) -> str | None:
    for code in ("B", "H", "I", "L", "Q"):
        if array(code).itemsize * 8 >= bitwidth:
            return code
    return None


class RegisterArray:
    """A P4 register array: `size` cells of `bitwidth` bits, all zero at load."""

    __slots__ = ("_mask", "bitwidth", "cells", "name", "size")

    def __init__(self, name: str, size: int, bitwidth: int) -> None:
        self.name = name
        self.size = size
        self.bitwidth = bitwidth
        self._mask = (1 << bitwidth) - 1
        code = _typecode(bitwidth)
        self.cells: array[int] | list[int] = (
            array(code, bytes(array(code).itemsize * size)) if code else [0] * size
        )

    def get(self, i: int) -> int:
        """Packet-path read: out-of-range reads give 0 (BMv2 reports an error and skips)."""
        if 0 <= i < self.size:
            return self.cells[i]
        return 0

    def put(self, i: int, v: int) -> None:
        """Packet-path write, truncated to the cell width; out-of-range writes are ignored."""
        if 0 <= i < self.size:
            self.cells[i] = v & self._mask

    def read(self, i: int) -> int:
        self._check(i)
        return self.cells[i]

    def write(self, i: int, v: int) -> None:
        self._check(i)
        if not 0 <= v <= self._mask:
            raise InvalidValue(f"register {self.name}: value {v} does not fit {self.bitwidth} bits")
        self.cells[i] = v

    def reset(self) -> None:
        for i in range(self.size):
            self.cells[i] = 0

    def _check(self, i: int) -> None:
        if not 0 <= i < self.size:
            raise InvalidValue(f"register {self.name}: index {i} out of range [0, {self.size})")


class CounterArray:
    """A P4 counter array: a byte and a packet count per index."""

    __slots__ = ("bytes_", "name", "packets", "size")

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self.bytes_ = array("Q", bytes(8 * size))
        self.packets = array("Q", bytes(8 * size))

    def count(self, i: int, nbytes: int) -> None:
        if 0 <= i < self.size:
            self.bytes_[i] = (self.bytes_[i] + nbytes) & 0xFFFFFFFFFFFFFFFF
            self.packets[i] = (self.packets[i] + 1) & 0xFFFFFFFFFFFFFFFF

    def read(self, i: int) -> tuple[int, int]:
        self._check(i)
        return self.bytes_[i], self.packets[i]

    def write(self, i: int, nbytes: int, packets: int) -> None:
        self._check(i)
        if not (0 <= nbytes < 2**64 and 0 <= packets < 2**64):
            raise InvalidValue(f"counter {self.name}: values must fit 64 bits")
        self.bytes_[i] = nbytes
        self.packets[i] = packets

    def reset(self) -> None:
        for i in range(self.size):
            self.bytes_[i] = 0
            self.packets[i] = 0

    def _check(self, i: int) -> None:
        if not 0 <= i < self.size:
            raise InvalidValue(f"counter {self.name}: index {i} out of range [0, {self.size})")


@dataclass(frozen=True, slots=True)
class MeterConfig:
    """Two-rate three-colour meter configuration, in the meter's unit per second."""

    cir: int
    cburst: int
    pir: int
    pburst: int


class Meter:
    """One two-rate three-colour marker with BMv2's token arithmetic."""

    __slots__ = ("config", "rates")

    def __init__(self, config: MeterConfig) -> None:
        if config.pir < config.cir:
            raise InvalidValue("meter: PIR must not be lower than CIR")
        if min(config.cir, config.cburst, config.pir, config.pburst) < 0:
            raise InvalidValue("meter: rates and bursts must not be negative")
        self.config = config
        # [rate per microsecond, burst, tokens, tokens_last, colour]; PIR first as in BMv2
        self.rates: list[list[float | int]] = [
            [config.pir / 1e6, config.pburst, config.pburst, 0, RED],
            [config.cir / 1e6, config.cburst, config.cburst, 0, YELLOW],
        ]

    def execute(self, micros_since_init: int, amount: int) -> int:
        for rate in self.rates:
            since_init = int(micros_since_init * rate[0])
            new_tokens = since_init - int(rate[3])
            if new_tokens < 0:  # clock reset: BMv2 asserts this never happens
                new_tokens = 0
            rate[3] = since_init
            tokens = min(int(rate[2]) + new_tokens, int(rate[1]))
            if tokens < amount:
                rate[2] = tokens
                return int(rate[4])
            rate[2] = tokens - amount
        return GREEN


class MeterArray:
    """An array of meters; an unconfigured meter marks every packet green."""

    __slots__ = ("_clock", "_t0", "is_packets", "meters", "name", "size")

    def __init__(
        self, name: str, size: int, is_packets: bool, clock: Callable[[], int], t0: int
    ) -> None:
        self.name = name
        self.size = size
        self.is_packets = is_packets
        self.meters: dict[int, Meter] = {}
        self._clock = clock
        self._t0 = t0

    def execute(self, i: int, ingress_length: int) -> int:
        m = self.meters.get(i)
        if m is None:
            return GREEN
        micros = (self._clock() - self._t0) // 1000
        return m.execute(micros, 1 if self.is_packets else ingress_length)

    def set_config(self, i: int, config: MeterConfig) -> None:
        self._check(i)
        self.meters[i] = Meter(config)

    def get_config(self, i: int) -> MeterConfig | None:
        self._check(i)
        m = self.meters.get(i)
        return m.config if m else None

    def reset_config(self, i: int) -> None:
        self._check(i)
        self.meters.pop(i, None)

    def _check(self, i: int) -> None:
        if not 0 <= i < self.size:
            raise InvalidValue(f"meter {self.name}: index {i} out of range [0, {self.size})")
