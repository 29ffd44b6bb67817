"""P4Runtime errors and their encoding as gRPC statuses.

Every request-level problem is a `StatusError` carrying a canonical code;
the service turns it into the gRPC status (and, for batches, into one
`p4.v1.Error` per update inside a `google.rpc.Status`, as the spec's "Error
Reporting" section requires).
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from finsy.proto import p4r, rpc_code, rpc_status
from google.protobuf import any_pb2

from pyoffload.errors import PyoffloadError


class StatusError(PyoffloadError):
    """A request failed with a canonical gRPC code and a message for humans."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{rpc_code.Code.Name(rpc_code.Code.ValueType(self.code))}: {self.message}"

    def to_p4_error(self) -> p4r.Error:
        """The per-update error detail of a failed batch element."""
        return p4r.Error(canonical_code=self.code, message=self.message)


def invalid(message: str) -> StatusError:
    """A malformed request: INVALID_ARGUMENT."""
    return StatusError(rpc_code.INVALID_ARGUMENT, message)


def not_found(message: str) -> StatusError:
    return StatusError(rpc_code.NOT_FOUND, message)


def already_exists(message: str) -> StatusError:
    return StatusError(rpc_code.ALREADY_EXISTS, message)


def unimplemented(message: str) -> StatusError:
    return StatusError(rpc_code.UNIMPLEMENTED, message)


def failed_precondition(message: str) -> StatusError:
    return StatusError(rpc_code.FAILED_PRECONDITION, message)


def permission_denied(message: str) -> StatusError:
    return StatusError(rpc_code.PERMISSION_DENIED, message)


def resource_exhausted(message: str) -> StatusError:
    return StatusError(rpc_code.RESOURCE_EXHAUSTED, message)


_GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}


def grpc_code(code: int) -> grpc.StatusCode:
    """The grpc enum member for a canonical integer code."""
    return _GRPC_CODES.get(code, grpc.StatusCode.UNKNOWN)


OK_ERROR = p4r.Error(canonical_code=rpc_code.OK)


def batch_status(message: str, errors: Sequence[p4r.Error]) -> rpc_status.Status:
    """The `google.rpc.Status` of a batch with at least one failed element."""
    details = []
    for error in errors:
        packed = any_pb2.Any()
        packed.Pack(error)
        details.append(packed)
    return rpc_status.Status(code=rpc_code.UNKNOWN, message=message, details=details)


def batch_status_bytes(message: str, errors: Sequence[StatusError | None]) -> bytes:
    """The serialized `google.rpc.Status` of a batch (None: an element that succeeded).

    Byte for byte what `batch_status(...).SerializeToString()` gives, built
    from one serialized detail per distinct (code, message): a large failed
    batch repeats a few errors many times, and one big protobuf call would
    hold the interpreter for tens of milliseconds. The per-element work is
    left to C (`set`, `map`, `join`): a Python loop over 100,000 elements
    would keep the interpreter for 20 ms or more (other threads get it back
    only at the switch interval), and the device shares one error object per
    distinct error (see `Device.write`), so there are a handful to encode.
    """
    head = rpc_status.Status(code=rpc_code.UNKNOWN, message=message).SerializeToString()
    by_ident: dict[tuple[int, str], bytes] = {}
    pieces: dict[StatusError | None, bytes] = {}
    for error in set(errors):
        ident = (error.code, error.message) if error is not None else (rpc_code.OK, "")
        piece = by_ident.get(ident)
        if piece is None:
            packed = any_pb2.Any()
            packed.Pack(error.to_p4_error() if error is not None else OK_ERROR)
            piece = by_ident[ident] = rpc_status.Status(details=[packed]).SerializeToString()
        pieces[error] = piece
    return b"".join([head, *map(pieces.__getitem__, errors)])


STATUS_DETAILS_KEY = "grpc-status-details-bin"
