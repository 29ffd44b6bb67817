"""The guest's Python API: a connection to its VNIC's offload channel.

``Channel`` wraps the typed stub with what a guest program wants: rule files
accepted wherever a request is, one error type (``GuestShimError``) with the
gRPC status and a readable message for every failure, a timeout on every
call, and a ``watch`` iterator that ends cleanly when the channel closes.

A TCP channel is served with mutual TLS: pass ``tls=ChannelTls(...)`` (or
``tls_from()``, which reads the ``PYOFFLOAD_CHANNEL_*`` variables); a TLS channel may
be remote, since the agent authenticates the guest and the guest the agent.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

import grpc

from guest_shim import offload_pb2 as pb
from guest_shim.address import DEFAULT_ADDRESS, ENV_VAR, ChannelAddress, parse_address
from guest_shim.errors import ChannelTlsError, GuestShimError
from guest_shim.rulefile import parse_file
from guest_shim.service import OffloadChannelStub
from guest_shim.tls import ChannelTls

DEFAULT_TIMEOUT_S = 10.0


def default_address() -> str:
    """``$PYOFFLOAD_CHANNEL``, else the agent's default Unix socket."""
    return os.environ.get(ENV_VAR) or DEFAULT_ADDRESS


AGENT_ANSWER = "pyoffload-answer"
"""Trailing metadata the agent sets on its refusals, so an UNAVAILABLE it sends (the
target away, say) is not mistaken for an unreachable channel."""

CHANGES = ("apply", "withdraw")
"""Calls that change what is in force: a broken connection leaves their outcome unknown."""


class Channel:
    """A connection to the offload channel of this guest's VNIC.

    Nothing is sent until the first call; a channel that cannot be reached (or
    whose TLS handshake fails: a certificate the agent does not trust) fails that
    call with ``UNAVAILABLE``. Use as a context manager, or call ``close``.
    """

    def __init__(
        self,
        address: str | ChannelAddress | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        allow_remote: bool = False,
        tls: ChannelTls | None = None,
    ) -> None:
        if address is None:
            address = default_address()
        if isinstance(address, str):
            address = parse_address(address, allow_remote=allow_remote or tls is not None)
        if tls is not None and address.kind != "tcp":
            raise ChannelTlsError(f"TLS is for tcp: channels, not {address}")
        self.address = address
        self.timeout = timeout
        self.tls = tls
        if tls is None:
            self._channel = grpc.insecure_channel(address.grpc_target,
                                                  options=address.channel_options)
        else:
            self._channel = grpc.secure_channel(
                address.grpc_target, tls.credentials(),
                options=address.channel_options + tls.channel_options)
        self._stub = OffloadChannelStub(self._channel)

    def __enter__(self) -> Channel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (ends any ``watch`` iterator)."""
        self._channel.close()

    def apply(self, request: pb.OffloadRequest | str | Path) -> pb.ApplyReply:
        """Install a whole rule set (a request, or the path of a rule file)."""
        if not isinstance(request, pb.OffloadRequest):
            request = parse_file(request)
        try:
            return self._stub.Apply(pb.ApplyRequest(request=request), timeout=self.timeout)
        except grpc.RpcError as exc:
            raise self._error("apply", exc) from None

    def withdraw(
        self, flow_ids: Iterable[str] = (), *, all_flows: bool = False
    ) -> pb.WithdrawReply:
        """Remove the named flows, or every flow with ``all_flows=True``."""
        ids = list(flow_ids)
        if all_flows == bool(ids):
            raise GuestShimError(
                "withdraw: name the flows to withdraw, or all of them, not both or neither",
                code=grpc.StatusCode.INVALID_ARGUMENT,
            )
        try:
            return self._stub.Withdraw(
                pb.WithdrawRequest(flow_ids=ids, all=all_flows), timeout=self.timeout
            )
        except grpc.RpcError as exc:
            raise self._error("withdraw", exc) from None

    def get(self) -> pb.OffloadRequest:
        """The rule set installed now (``generation`` says which)."""
        try:
            return self._stub.Get(pb.GetRequest(), timeout=self.timeout).request
        except grpc.RpcError as exc:
            raise self._error("get", exc) from None

    def stats(self, flow_ids: Iterable[str] = ()) -> pb.StatsReply:
        """Counters of the named flows (all when none), connections, quotas."""
        try:
            return self._stub.Stats(pb.StatsRequest(flow_ids=list(flow_ids)), timeout=self.timeout)
        except grpc.RpcError as exc:
            raise self._error("stats", exc) from None

    def watch(self) -> Iterator[pb.Event]:
        """Events as they come, until the channel closes or the agent ends the stream."""
        call = self._stub.Watch(pb.WatchRequest())
        try:
            yield from call
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                raise self._error("watch", exc) from None
        finally:
            call.cancel()  # type: ignore[no-untyped-call]

    def _error(self, what: str, exc: grpc.RpcError) -> GuestShimError:
        """The guest's error for a failed call: the agent's own answer, that the channel
        could not be reached (no agent answered: gRPC's UNAVAILABLE), or, for a change
        whose connection broke after it was sent, that its outcome is unknown."""
        code: grpc.StatusCode = exc.code()
        details: str = exc.details() or ""
        metadata = exc.trailing_metadata() or ()
        answered = any(item.key == AGENT_ANSWER for item in metadata)
        if code == grpc.StatusCode.UNAVAILABLE and not answered and \
                "failed to connect" not in details and what in CHANGES:
            # sent, then the connection broke: the agent may have committed it, or not
            message = (f"{what}: the connection to the VNIC channel at {self.address} broke "
                       f"before the agent answered ({details}): the change may or may not "
                       "be in force; `guest-shim show` tells which")
        elif code == grpc.StatusCode.UNAVAILABLE and not answered:
            message = f"{what}: cannot reach the VNIC channel at {self.address}: {details}"
            if self.address.kind == "tcp" and self.tls is None:
                message += " (a TCP channel needs TLS: --ca, --cert, --key)"
        elif code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details:
            message = (f"{what}: the request is larger than the VNIC channel accepts "
                       f"(its size limit follows the VNIC's quotas): {details}")
        elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
            message = f"{what}: no answer from {self.address} within {self.timeout:g} s"
        else:
            message = f"{what}: {code.name}: {details}"
        return GuestShimError(message, code=code)


def connect(
    address: str | ChannelAddress | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    allow_remote: bool = False,
    tls: ChannelTls | None = None,
) -> Channel:
    """Open a channel (see ``Channel``)."""
    return Channel(address, timeout=timeout, allow_remote=allow_remote, tls=tls)
