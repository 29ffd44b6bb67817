"""The ``OffloadChannel`` service, typed, for both ends of the channel.

``offload_pb2_grpc`` (generated) does the same but is untyped; this module
gives the client a stub whose calls carry the request and reply types, and
the agent a ``Protocol`` to implement and one function to register it, so
neither side spells method paths or serializers by hand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

import grpc

from guest_shim import offload_pb2 as pb

SERVICE_NAME = "pyoffload.guest.v1.OffloadChannel"


def method_path(name: str) -> str:
    """The HTTP/2 path of one RPC, e.g. ``/pyoffload.guest.v1.OffloadChannel/Apply``."""
    return f"/{SERVICE_NAME}/{name}"


class OffloadChannelServicer(Protocol):
    """What the agent implements to serve a channel (bound to one VNIC)."""

    def Apply(self, request: pb.ApplyRequest, context: grpc.ServicerContext) -> pb.ApplyReply:
        """Install the whole desired rule set; all of it or nothing."""

    def Withdraw(
        self, request: pb.WithdrawRequest, context: grpc.ServicerContext
    ) -> pb.WithdrawReply:
        """Remove flows by id, or all of them."""

    def Get(self, request: pb.GetRequest, context: grpc.ServicerContext) -> pb.GetReply:
        """The installed request and its generation."""

    def Stats(self, request: pb.StatsRequest, context: grpc.ServicerContext) -> pb.StatsReply:
        """Counters, tracked connections, quota use."""

    def Watch(
        self, request: pb.WatchRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.Event]:
        """Events until the client cancels."""


AsyncContext = grpc.aio.ServicerContext[Any, Any]


class RawAsyncOffloadChannelServicer(Protocol):
    """The same service for ``grpc.aio`` servers, each method handed the request body as
    sent: the server decodes it itself, so it can refuse a call (a guest over its rate,
    say) before decoding anything, and answer a body that does not decode with
    INVALID_ARGUMENT (grpc's own failure path for one answers UNKNOWN and keeps ~16 KiB
    of memory per call). Watch is an async iterator: a stream that holds no thread
    while it waits."""

    async def Apply(self, body: bytes, context: AsyncContext) -> pb.ApplyReply:
        """Install the whole desired rule set; all of it or nothing."""

    async def Withdraw(self, body: bytes, context: AsyncContext) -> pb.WithdrawReply:
        """Remove flows by id, or all of them."""

    async def Get(self, body: bytes, context: AsyncContext) -> pb.GetReply:
        """The installed request and its generation."""

    async def Stats(self, body: bytes, context: AsyncContext) -> pb.StatsReply:
        """Counters, tracked connections, quota use."""

    def Watch(self, body: bytes, context: AsyncContext) -> AsyncIterator[pb.Event]:
        """Events until the client cancels."""


def add_servicer(server: grpc.Server, servicer: OffloadChannelServicer) -> None:
    """Serve ``servicer`` as the ``OffloadChannel`` service on ``server``."""
    server.add_generic_rpc_handlers((_handlers(servicer),))


def add_async_raw_servicer(server: grpc.aio.Server,
                           servicer: RawAsyncOffloadChannelServicer) -> None:
    """Serve ``servicer`` as the ``OffloadChannel`` service on a ``grpc.aio`` server,
    its methods handed the request bodies undecoded."""
    server.add_generic_rpc_handlers((_handlers(servicer, raw=True),))


def _handlers(servicer: OffloadChannelServicer | RawAsyncOffloadChannelServicer,
              raw: bool = False) -> Any:
    def decoder(message: Any) -> Any:
        return None if raw else message.FromString

    handlers = {
        "Apply": grpc.unary_unary_rpc_method_handler(
            servicer.Apply,
            request_deserializer=decoder(pb.ApplyRequest),
            response_serializer=pb.ApplyReply.SerializeToString,
        ),
        "Withdraw": grpc.unary_unary_rpc_method_handler(
            servicer.Withdraw,
            request_deserializer=decoder(pb.WithdrawRequest),
            response_serializer=pb.WithdrawReply.SerializeToString,
        ),
        "Get": grpc.unary_unary_rpc_method_handler(
            servicer.Get,
            request_deserializer=decoder(pb.GetRequest),
            response_serializer=pb.GetReply.SerializeToString,
        ),
        "Stats": grpc.unary_unary_rpc_method_handler(
            servicer.Stats,
            request_deserializer=decoder(pb.StatsRequest),
            response_serializer=pb.StatsReply.SerializeToString,
        ),
        "Watch": grpc.unary_stream_rpc_method_handler(
            servicer.Watch,
            request_deserializer=decoder(pb.WatchRequest),
            response_serializer=pb.Event.SerializeToString,
        ),
    }
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)


class OffloadChannelStub:
    """Typed client-side callables of the service, over one gRPC channel."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.Apply: grpc.UnaryUnaryMultiCallable[pb.ApplyRequest, pb.ApplyReply] = (
            channel.unary_unary(
                method_path("Apply"),
                request_serializer=pb.ApplyRequest.SerializeToString,
                response_deserializer=pb.ApplyReply.FromString,
            )
        )
        self.Withdraw: grpc.UnaryUnaryMultiCallable[pb.WithdrawRequest, pb.WithdrawReply] = (
            channel.unary_unary(
                method_path("Withdraw"),
                request_serializer=pb.WithdrawRequest.SerializeToString,
                response_deserializer=pb.WithdrawReply.FromString,
            )
        )
        self.Get: grpc.UnaryUnaryMultiCallable[pb.GetRequest, pb.GetReply] = channel.unary_unary(
            method_path("Get"),
            request_serializer=pb.GetRequest.SerializeToString,
            response_deserializer=pb.GetReply.FromString,
        )
        self.Stats: grpc.UnaryUnaryMultiCallable[pb.StatsRequest, pb.StatsReply] = (
            channel.unary_unary(
                method_path("Stats"),
                request_serializer=pb.StatsRequest.SerializeToString,
                response_deserializer=pb.StatsReply.FromString,
            )
        )
        self.Watch: grpc.UnaryStreamMultiCallable[pb.WatchRequest, pb.Event] = (
            channel.unary_stream(
                method_path("Watch"),
                request_serializer=pb.WatchRequest.SerializeToString,
                response_deserializer=pb.Event.FromString,
            )
        )
