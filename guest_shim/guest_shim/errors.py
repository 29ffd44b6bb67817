"""The one error type of the guest shim.

Everything the shim refuses or fails at (a bad rule file, a bad channel
address, an RPC the agent answered with an error) raises ``GuestShimError``,
so a caller needs a single ``except``; ``code`` says which kind it was in gRPC
terms, because the agent's answers already come with a gRPC status.
"""

from __future__ import annotations

import grpc

from guest_shim.syntax import quote


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

    ``flow`` and ``rule`` are the ids, or ``#N`` (1-based position) when the
    id itself is missing or bad; ``field`` is a dotted path inside that flow
    or rule (``match.dst_ports``). The message names all of them.
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
        message = describe(reason, source=source, flow=flow, rule=rule, field=field)
        super().__init__(message, code=grpc.StatusCode.INVALID_ARGUMENT)


def label(kind: str, ident: str) -> str:
    """``flow "web"`` for an id (shown short, escaped: see ``syntax.quote``), ``flow #2``
    for a position."""
    return f"{kind} {ident}" if ident.startswith("#") else f"{kind} {quote(ident)}"


def describe(
    reason: str,
    *,
    source: str | None = None,
    flow: str | None = None,
    rule: str | None = None,
    field: str | None = None,
) -> str:
    """``FILE: flow "x", rule "y": FIELD: REASON``, leaving out what is unknown.

    pyoffload's ``RuleError`` renders the same way, so the guest reads the
    same words whether its shim or the agent found the problem.
    """
    where = []
    if source:
        where.append(source)
    owner = [label("flow", flow) if flow else "", label("rule", rule) if rule else ""]
    if any(owner):
        where.append(", ".join(part for part in owner if part))
    if field:
        where.append(field)
    return ": ".join([*where, reason])


class ChannelAddressError(GuestShimError):
    """A channel address that cannot be used (malformed, or remote TCP not allowed)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=grpc.StatusCode.INVALID_ARGUMENT)


class ChannelTlsError(GuestShimError):
    """TLS files that cannot be used (missing, unreadable, or a certificate without key)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=grpc.StatusCode.INVALID_ARGUMENT)
