"""The one error type of the guest shim.

Everything the shim refuses or fails at (a bad rule file, a bad channel
address, an RPC the agent answered with an error) raises ``GuestShimError``,
so a caller needs a single ``except``; ``code`` says which kind it was in gRPC
terms, because the agent's answers already come with a gRPC status.
"""

from __future__ import annotations

import grpc


class GuestShimError(Exception):
    """A request the shim or the agent refused, or a channel that failed.

    ``code`` is the gRPC status (``INVALID_ARGUMENT`` for bad input found
    locally, whatever the agent answered otherwise); ``str(error)`` is one
    readable line.
    """

    def __init__(self, message: str, *, code: grpc.StatusCode = grpc.StatusCode.UNKNOWN) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return self.message


class RuleFileError(GuestShimError):
    """A rule file (or rule data) that is not a valid offload request.

    The message names where: the file, the flow and rule ids (or their
    position when the id itself is the problem) and the field.
    """

    def __init__(
        self,
        reason: str,
        *,
        source: str | None = None,
        flow: str | None = None,
        rule: str | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = reason
        self.source = source
        self.flow = flow
        self.rule = rule
        self.field = field
        super().__init__(self._render(), code=grpc.StatusCode.INVALID_ARGUMENT)

    def _render(self) -> str:
        where = []
        if self.source:
            where.append(self.source)
        owner = ", ".join(part for part in (self.flow, self.rule) if part)
        if owner:
            where.append(owner)
        if self.field:
            where.append(self.field)
        return ": ".join([*where, self.reason])


class ChannelAddressError(GuestShimError):
    """A channel address that cannot be used (malformed, or remote TCP not allowed)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=grpc.StatusCode.INVALID_ARGUMENT)
