"""P4Runtime server of the embedded target: P4Info index, value codec, gRPC service."""

from .errors import P4RuntimeError
from .p4info import P4InfoIndex
from .server import DEFAULT_ADDRESS, P4RuntimeServer, ServerError

__all__ = ["DEFAULT_ADDRESS", "P4InfoIndex", "P4RuntimeError", "P4RuntimeServer", "ServerError"]
