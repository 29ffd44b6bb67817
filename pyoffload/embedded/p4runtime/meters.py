"""Meter configurations: P4Runtime `MeterConfig` <-> the engine's MeterConfig."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from finsy.proto import p4r

from .errors import invalid

MeterFactory = Callable[[int, int, int, int], Any]
"""Builds the engine's MeterConfig from (cir, cburst, pir, pburst)."""


class MeterCodec:
    """Validates meter configurations and converts them both ways."""

    __slots__ = ("_make",)

    def __init__(self, make: MeterFactory) -> None:
        self._make = make

    def decode(self, config: p4r.MeterConfig, where: str) -> Any:
        """The engine config for a client's MeterConfig (trTCM, as v1model meters are)."""
        values = (config.cir, config.cburst, config.pir, config.pburst)
        if min(values) < 0:
            raise invalid(f"{where}: meter rates and bursts must not be negative")
        if config.eburst:
            raise invalid(f"{where}: eburst is only for srTCM meters; v1model meters are trTCM")
        if config.pir < config.cir:
            raise invalid(f"{where}: pir {config.pir} is below cir {config.cir}")
        return self._make(*values)

    @staticmethod
    def encode(engine_config: Any, out: p4r.MeterConfig) -> None:
        out.cir = engine_config.cir
        out.cburst = engine_config.cburst
        out.pir = engine_config.pir
        out.pburst = engine_config.pburst
