"""The one error type of the P4Runtime client.

A failed Write carries a google.rpc.Status whose details hold one p4.v1.Error
per update of the batch; we decode them into ``{index: UpdateError}`` so the
caller sees which update failed and why, with the update itself attached.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import grpc
from finsy.proto import p4r, rpc_status

from pyoffload.errors import PyoffloadError


@attrs.frozen(kw_only=True)
class UpdateError:
    """Why one update of a batch failed."""

    index: int
    """Position of the update in the batch."""
    code: grpc.StatusCode
    """Canonical status code of this update."""
    message: str
    """The target's explanation."""
    update: p4r.Update | None = None
    """The update that failed, when the caller passed the batch."""

    def __str__(self) -> str:
        return f"at index {self.index}: {self.code.name}, {self.message}"


_CODES = {code.value[0]: code for code in grpc.StatusCode}


def status_code(value: int) -> grpc.StatusCode:
    return _CODES.get(value, grpc.StatusCode.UNKNOWN)


class P4RuntimeError(PyoffloadError):
    """A P4Runtime RPC failed; ``details`` lists failed updates by index."""

    def __init__(
        self,
        operation: str,
        code: grpc.StatusCode,
        message: str,
        details: dict[int, UpdateError] | None = None,
    ) -> None:
        self.operation = operation
        self.code = code
        self.message = message
        self.details = details or {}
        super().__init__(str(self))

    @property
    def not_found(self) -> bool:
        """Every part that failed named something the target does not hold (a batch's
        own code is UNKNOWN; its details tell)."""
        codes = {error.code for error in self.details.values()} or {self.code}
        return codes == {grpc.StatusCode.NOT_FOUND}

    def __str__(self) -> str:
        head = f"{self.operation} failed: {self.code.name}: {self.message}"
        if not self.details:
            return head
        return head + "\n" + "\n".join(f"  {err}" for err in self.details.values())

    @classmethod
    def from_rpc_error(
        cls,
        operation: str,
        error: grpc.RpcError,
        updates: Sequence[p4r.Update] = (),
    ) -> P4RuntimeError:
        call: grpc.Call = error  # type: ignore[assignment]
        code = call.code()
        message = call.details() or ""
        details: dict[int, UpdateError] = {}
        for key, value in call.trailing_metadata() or ():
            if key != "grpc-status-details-bin" or not isinstance(value, bytes):
                continue
            status = rpc_status.Status.FromString(value)
            for index, any_detail in enumerate(status.details):
                err = p4r.Error()
                if not any_detail.Unpack(err) or err.canonical_code == 0:
                    continue
                details[index] = UpdateError(
                    index=index,
                    code=status_code(err.canonical_code),
                    message=err.message,
                    update=updates[index] if index < len(updates) else None,
                )
        return cls(operation, code, message, details)
