"""P4Runtime client side: a synchronous client and its one error type.

Entities are built by name with finsy's entity classes (``finsy.P4TableEntry``
and friends) and encoded against a ``finsy.P4Schema``; this package carries
them to a target (BMv2 ``simple_switch_grpc`` or pyoffload's embedded target).
"""

from pyoffload.p4runtime.client import P4RuntimeClient, UpdateType
from pyoffload.p4runtime.errors import P4RuntimeError, UpdateError

__all__ = ["P4RuntimeClient", "P4RuntimeError", "UpdateError", "UpdateType"]
