"""pyoffload's embedded P4 target: runs any v1model program's BMv2 JSON.

- `engine`: executes the BMv2 JSON (`Pipeline`).
- `Switch`: ports plus the running pipeline; the CPU port for packet-in/out.
- `MemoryPort` / `RawSocketPort`: in-memory links and Linux interfaces.
- `P4RuntimeServer`: the P4Runtime gRPC server in front of a switch.
- `cli`: `pyoffload-target`, a drop-in for BMv2's `simple_switch_grpc`.
"""

from .p4runtime.server import P4RuntimeServer
from .ports import MemoryPort, Port, PortError, RawSocketPort
from .switch import Switch, SwitchError

__all__ = [
    "MemoryPort",
    "P4RuntimeServer",
    "Port",
    "PortError",
    "RawSocketPort",
    "Switch",
    "SwitchError",
]
