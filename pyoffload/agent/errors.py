"""The agent's refusal: a gRPC status for the guest, and a message that says why."""

from __future__ import annotations

import grpc

from pyoffload.errors import PyoffloadError


class AgentError(PyoffloadError):
    """A request the agent refused; ``code`` is the gRPC status to report."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
