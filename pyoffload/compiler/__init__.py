"""From rules to P4Runtime entities: the compiler and the numbers it hands out."""

from pyoffload.compiler.compile import CompiledRequest, VnicTarget, compile_request
from pyoffload.compiler.resources import (
    NumberSpace,
    Reservation,
    ResourceExhausted,
    ResourcePool,
)

__all__ = [
    "CompiledRequest",
    "NumberSpace",
    "Reservation",
    "ResourceExhausted",
    "ResourcePool",
    "VnicTarget",
    "compile_request",
]
