"""The gRPC P4Runtime service: request checks, error encoding, stream sessions.

Each RPC validates device id and arbitration here, hands the work to the
`Device`, and encodes the outcome as the spec's "Error Reporting" section
asks: a plain status for RPC-wide errors, and UNKNOWN plus one `p4.v1.Error`
per element (in `grpc-status-details-bin`) when elements of a batch fail.

The service runs on grpc's asyncio server. A StreamChannel is a coroutine
(an idle stream costs no thread and as few objects as it can: its messages go
out through a writer task that lives only while there is something to send),
so streams never starve the unary calls;
the blocking work of a unary call (a Write, a Read, a pipeline push) runs in
a bounded thread pool of its own, and packet-outs in another. Streams are
limited per peer and in total (RESOURCE_EXHAUSTED beyond). A Write or a
SetForwardingPipelineConfig is accepted only from the connection (and the
authenticated identity) of the primary's open stream, as the spec requires.
Once a burst of stream closes is over, the heap is trimmed (`pyoffload.memory`), so
that many streams opened and closed do not leave the process larger, and the
log says by how much.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from asyncio import _get_running_loop as asyncio_running_loop
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TypeVar

import grpc
from finsy.proto import p4r, rpc_code

from ...memory import on_system_malloc, resident_kib, trim
from .arbitration import Arbiter, Controller, election_id_of
from .codec import encode_uint
from .device import Device
from .errors import (
    STATUS_DETAILS_KEY,
    StatusError,
    batch_status_bytes,
    grpc_code,
    not_found,
    permission_denied,
    resource_exhausted,
)
from .wire import split_write_request

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

SERVICE = "p4.v1.P4Runtime"
P4RUNTIME_API_VERSION = "1.5.0"
READ_CHUNK = 1000
"""Entities per ReadResponse message: bounded messages for large tables."""
STREAM_BACKLOG = 10_000
"""Packet-ins and notifications queued per stream before new ones are dropped."""
NOTIFY_BATCH = 16
"""Streams whose writers a change of primary starts at once (see `_Notifier`)."""
NOTIFY_BATCH_WAIT_S = 0.05
"""Longest a batch of them holds back the next."""
TRIM_AFTER_CLOSES = 32
"""Streams closed (since the last trim) that make the heap worth trimming."""
TRIM_QUIET_S = 0.1
"""No stream closed for this long: the burst is over, trim now (one trim per burst)."""
FULL_COLLECTION_BUDGET_S = 0.010
"""Longest full collection the target does after a burst of stream closes (see
`P4RuntimeService._clear_after_streams`)."""
TRIM_AFTER_UPDATES = 10_000
"""A Write this large is followed by a heap trim (it allocated tens of megabytes)."""
Context = grpc.aio.ServicerContext[object, object]


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamLimits:
    """How many StreamChannels may be open at once."""

    per_peer: int = 100
    """Per peer: one authenticated identity (TLS), else one connection (Unix-socket
    connections are told apart by the relay of unixfront.py)."""
    total: int = 10_000
    """On the whole server."""


DEFAULT_STREAM_LIMITS = StreamLimits()


class _StreamCount:
    """Open streams by peer (used from the event loop only)."""

    def __init__(self, limits: StreamLimits) -> None:
        self.limits = limits
        self.by_peer: dict[str, int] = {}
        self.total = 0

    def admit(self, peer: str) -> StatusError | None:
        if self.total >= self.limits.total:
            return resource_exhausted(
                f"this target already serves {self.total} streams (limit {self.limits.total})")
        count = self.by_peer.get(peer, 0)
        if count >= self.limits.per_peer:
            return resource_exhausted(
                f"peer {peer} already has {count} open streams (limit {self.limits.per_peer} "
                "per peer)")
        self.by_peer[peer] = count + 1
        self.total += 1
        return None

    def release(self, peer: str) -> None:
        self.total -= 1
        count = self.by_peer.pop(peer) - 1
        if count:
            self.by_peer[peer] = count


def identity_of(context: Context) -> tuple[bytes, ...] | None:
    """The authenticated names of the client (its TLS certificate), or None."""
    names = context.peer_identities()
    return tuple(names) if names else None


def _peer_key(peer: str, identity: tuple[bytes, ...] | None) -> str:
    if identity is not None:
        return "identity " + ",".join(n.decode(errors="replace") for n in identity)
    return peer


def _who(peer: str, identity: tuple[bytes, ...] | None) -> str:
    if identity is None:
        return peer or "(unknown peer)"
    return f"{peer} as {','.join(n.decode(errors='replace') for n in identity)}"


def _batch_failure(what: str, errors: Sequence[StatusError | None]) -> tuple[str, bytes]:
    """(message, serialized google.rpc.Status) of a batch with failed elements."""
    failed = len(errors) - _count_none(errors)
    first = next(e for e in errors if e is not None)
    message = f"{what}: {failed} of {len(errors)} failed; first: {first}"
    return message, batch_status_bytes(message, errors)


def _count_none(errors: Sequence[StatusError | None]) -> int:
    """The elements that succeeded, counted in C (a batch may have 100,000 of them)."""
    return errors.count(None)


def _resident() -> str:
    """This process's resident memory, for a log line."""
    try:
        return f"{resident_kib() / 1024:.1f} MiB"
    except (OSError, ValueError):
        return "unknown"


def _forget_trailing_metadata(context: Context) -> None:
    """Drop a finished call's trailing metadata: grpc's server loop keeps the state of the
    last call it accepted until the next one comes, and with it a large batch's status
    details (8 MB for 100,000 failed updates)."""
    context.set_trailing_metadata(())


def _fail(context: Context, code: int | grpc.StatusCode, message: str,
          details: bytes | None = None) -> None:
    """End the call with an error status once the handler returns.

    Not `context.abort()`: its exception, held by grpc in a reference cycle,
    keeps the handler's frame alive (the request, the status details: tens of
    MB for a large batch) until a full garbage collection.
    """
    if details is not None:
        context.set_trailing_metadata(((STATUS_DETAILS_KEY, details),))
        # grpc-stubs declare the callback as a class, not a Protocol: any callable does
        context.add_done_callback(_forget_trailing_metadata)  # type: ignore[arg-type]
    context.set_code(code if isinstance(code, grpc.StatusCode) else grpc_code(code))
    context.set_details(message)


def add_to_server(service: P4RuntimeService, server: grpc.aio.Server) -> None:
    """Register the P4Runtime methods, Write taking its request as bytes."""
    handlers = {
        "Write": grpc.unary_unary_rpc_method_handler(
            service.Write, request_deserializer=None,
            response_serializer=p4r.WriteResponse.SerializeToString),
        "Read": grpc.unary_stream_rpc_method_handler(
            service.Read, request_deserializer=p4r.ReadRequest.FromString,
            response_serializer=p4r.ReadResponse.SerializeToString),
        "SetForwardingPipelineConfig": grpc.unary_unary_rpc_method_handler(
            service.SetForwardingPipelineConfig,
            request_deserializer=p4r.SetForwardingPipelineConfigRequest.FromString,
            response_serializer=p4r.SetForwardingPipelineConfigResponse.SerializeToString),
        "GetForwardingPipelineConfig": grpc.unary_unary_rpc_method_handler(
            service.GetForwardingPipelineConfig,
            request_deserializer=p4r.GetForwardingPipelineConfigRequest.FromString,
            response_serializer=p4r.GetForwardingPipelineConfigResponse.SerializeToString),
        "StreamChannel": grpc.stream_stream_rpc_method_handler(
            service.StreamChannel, request_deserializer=p4r.StreamMessageRequest.FromString,
            response_serializer=p4r.StreamMessageResponse.SerializeToString),
        "Capabilities": grpc.unary_unary_rpc_method_handler(
            service.Capabilities, request_deserializer=p4r.CapabilitiesRequest.FromString,
            response_serializer=p4r.CapabilitiesResponse.SerializeToString),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


class _Arbitration:
    """The place in a stream's queue of its newest arbitration update not yet written."""

    __slots__ = ("message",)

    def __init__(self, message: p4r.StreamMessageResponse) -> None:
        self.message = message


class _Outbox:
    """What the target sends on one stream: put from any thread, written in order by
    one task, started when the first message waits and ended when none is left.

    An arbitration update not yet written is replaced by a newer one, in its place:
    each says all there is (the highest election id, and this stream's role), so a
    controller that reads slowly or never still learns the latest, and the queue
    of a stream holds at most one of them however often the primary changes (with
    1,000 streams each outranking the one before, every change goes to every
    stream: half a million updates). Such a change told to a stream that had nothing
    to send waits for its turn in the `_Notifier`."""

    __slots__ = ("_arbitration", "_context", "_items", "_loop", "_notifier", "_turn",
                 "_writer")

    def __init__(self, loop: asyncio.AbstractEventLoop, context: Context,
                 notifier: _Notifier) -> None:
        self._loop = loop
        self._context = context
        self._notifier = notifier
        self._items: deque[p4r.StreamMessageResponse | _Arbitration] = deque()
        self._arbitration: _Arbitration | None = None
        self._writer: asyncio.Task[None] | None = None
        self._turn = False
        """Waiting in the notifier for a writer."""

    def send(self, message: p4r.StreamMessageResponse) -> None:
        """Queue ``message`` (from any thread; it may be shared with other streams, and is
        not changed) and write it now. Past ``STREAM_BACKLOG`` waiting, packet-ins and
        notifications are dropped, as the specification allows; arbitration never."""
        self._put(message, now=True)

    def notify(self, message: p4r.StreamMessageResponse) -> None:
        """Queue an arbitration update that another controller caused: written in the
        notifier's turn, if nothing else is being written on this stream."""
        self._put(message, now=False)

    def _put(self, message: p4r.StreamMessageResponse, *, now: bool) -> None:
        arbitration = message.WhichOneof("update") == "arbitration"  # (once: packet-ins)
        if not arbitration and len(self._items) > STREAM_BACKLOG:
            return
        if asyncio_running_loop() is self._loop:  # no wake-up needed: the loop runs us
            self._queue(message, arbitration, now)
            return
        with contextlib.suppress(RuntimeError):  # the server is shutting down
            self._loop.call_soon_threadsafe(self._queue, message, arbitration, now)

    def _queue(self, message: p4r.StreamMessageResponse, arbitration: bool,
               now: bool) -> None:
        if arbitration:
            if self._arbitration is not None:
                self._arbitration.message = message
                if now:
                    self.start()
                return
            self._arbitration = _Arbitration(message)
            self._items.append(self._arbitration)
        else:
            self._items.append(message)
        if now:
            self.start()
        elif self._writer is None and not self._turn:
            self._turn = True
            self._notifier.wait_turn(self)

    def start(self) -> asyncio.Task[None] | None:
        """Write what is queued (if a writer is not at it already); that writer."""
        self._turn = False
        if self._writer is None and self._items:
            self._writer = self._loop.create_task(self._write())
        return self._writer

    def _next(self) -> p4r.StreamMessageResponse:
        item = self._items.popleft()
        if isinstance(item, _Arbitration):
            if item is self._arbitration:
                self._arbitration = None
            return item.message
        return item

    async def _write(self) -> None:
        try:
            while self._items:
                await self._context.write(self._next())
        except Exception as exc:  # grpc raises several kinds once the call is over
            _log.debug("a stream's write failed, its call is over: %r", exc)
            self._clear()  # nobody to send to
        finally:
            self._writer = None

    async def flushed(self) -> None:
        """Wait until what was queued so far is written (or the call is over)."""
        await asyncio.sleep(0)  # messages put from this loop's callbacks are queued first
        self.start()  # (not waiting for the notifier's turn)
        while self._writer is not None:
            await self._writer

    def _clear(self) -> None:
        self._items.clear()
        self._arbitration = None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
        self._clear()


class _Notifier:
    """Starts the writers of streams told of a change of primary, ``NOTIFY_BATCH`` at a
    time: a change reaches every stream of the role at once, and 1,000 writes in flight
    together (each with grpc's futures, tags and wrappers) made the heap's high-water
    mark, which streams opened meanwhile then held (1,000 streams each outranking the
    one before left the target 12% larger). A batch waits for its writes at most
    ``NOTIFY_BATCH_WAIT_S`` (the write of a client that reads nothing never ends)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiting: deque[_Outbox] = deque()
        self._task: asyncio.Task[None] | None = None

    def wait_turn(self, outbox: _Outbox) -> None:
        self._waiting.append(outbox)
        if self._task is None:
            self._task = self._loop.create_task(self._run())

    async def _run(self) -> None:
        try:
            while self._waiting:
                batch: list[asyncio.Task[None]] = []
                while self._waiting and len(batch) < NOTIFY_BATCH:
                    writer = self._waiting.popleft().start()
                    if writer is not None:
                        batch.append(writer)
                if batch:
                    await asyncio.wait(batch, timeout=NOTIFY_BATCH_WAIT_S)
        finally:
            self._task = None


class P4RuntimeService:
    """P4Runtime RPCs for one device, on grpc's asyncio server."""

    def __init__(self, device: Device, arbiter: Arbiter, *, unary_pool: Executor,
                 stream_pool: Executor, limits: StreamLimits = StreamLimits()) -> None:
        self._device = device
        self._arbiter = arbiter
        self._unary_pool = unary_pool
        self._stream_pool = stream_pool
        self._streams = _StreamCount(limits)
        self._notifier: _Notifier | None = None
        """Made on the server's event loop, by the first stream."""
        self._closed = 0
        """Streams closed since the last heap trim."""
        self._last_close = 0.0
        self._trim_timer: asyncio.TimerHandle | None = None
        self.heap_trims = 0
        """Heap trims done after bursts of stream closes (for tests and operators)."""
        self._collection_s = 0.0
        """How long the last full collection after a burst of closes took."""
        device.switch.on_packet_in(self._packet_in)

    def close(self) -> None:
        self._device.switch.on_packet_in(None)

    @property
    def open_streams(self) -> int:
        """StreamChannels open now."""
        return self._streams.total

    def _check_device(self, device_id: int) -> None:
        if device_id != self._device.device_id:
            raise not_found(f"unknown device_id {device_id} (this target is "
                            f"device {self._device.device_id})")

    async def _run(self, call: Callable[..., _T], *args: object) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._unary_pool, call, *args)

    def _check_primary(self, request: p4r.WriteRequest | p4r.SetForwardingPipelineConfigRequest,
                       context: Context, what: str) -> None:
        """The request must name the primary and come from the primary's stream connection."""
        self._check_device(request.device_id)
        primary = self._arbiter.check_primary(request.device_id, request.role,
                                              election_id_of(request))
        peer, identity = context.peer(), identity_of(context)
        if primary.peer != peer or primary.identity != identity:
            role = f"role {request.role!r}" if request.role else "the default role"
            raise permission_denied(
                f"{what} refused: it carries the election_id of the primary of {role}, but "
                f"comes from {_who(peer, identity)}, not from the connection of the primary's "
                f"StreamChannel ({_who(primary.peer, primary.identity)}); P4Runtime accepts "
                f"a {what} only from the primary client of an open stream")

    # unary RPCs ------------------------------------------------------------------
    async def Write(self, request: bytes, context: Context) -> p4r.WriteResponse:
        """Write, with the request as bytes (see `wire.py` and `add_to_server`)."""
        try:
            header, updates = split_write_request(request)
            del request
            self._check_primary(header, context, "Write")
            failed = await self._run(self._write, header, updates)
            large = len(updates) >= TRIM_AFTER_UPDATES
            del updates
            if large:  # what it decoded and built is free now: give the pages back
                with contextlib.suppress(RuntimeError):  # the server is shutting down
                    asyncio.get_running_loop().run_in_executor(self._stream_pool, self._trim)
        except StatusError as exc:
            _fail(context, exc.code, exc.message)
            return p4r.WriteResponse()
        if failed is not None:
            _fail(context, grpc.StatusCode.UNKNOWN, *failed)
        return p4r.WriteResponse()

    def _write(self, header: p4r.WriteRequest, updates: Sequence[p4r.Update]
               ) -> tuple[str, bytes] | None:
        errors = self._device.write(updates, header.atomicity)
        if _count_none(errors) != len(errors):
            return _batch_failure("write", errors)
        return None

    async def Read(self, request: p4r.ReadRequest, context: Context
                   ) -> AsyncIterator[p4r.ReadResponse]:
        try:
            self._check_device(request.device_id)
            responses, failed = await self._run(self._read, request)
        except StatusError as exc:
            _fail(context, exc.code, exc.message)
            return
        for response in responses:
            yield response
        if failed is not None:
            _fail(context, grpc.StatusCode.UNKNOWN, *failed)

    def _read(self, request: p4r.ReadRequest
              ) -> tuple[list[p4r.ReadResponse], tuple[str, bytes] | None]:
        entities, errors = self._device.read(request.entities)
        responses = [p4r.ReadResponse(entities=entities[start:start + READ_CHUNK])
                     for start in range(0, len(entities), READ_CHUNK)]
        if any(e is not None for e in errors):
            return responses, _batch_failure("read", errors)
        return responses, None

    async def SetForwardingPipelineConfig(
        self, request: p4r.SetForwardingPipelineConfigRequest, context: Context
    ) -> p4r.SetForwardingPipelineConfigResponse:
        try:
            self._check_primary(request, context, "SetForwardingPipelineConfig")
            await self._run(self._device.set_pipeline, request)
        except StatusError as exc:
            _log.warning("SetForwardingPipelineConfig refused: %s", exc)
            _fail(context, exc.code, exc.message)
        return p4r.SetForwardingPipelineConfigResponse()

    async def GetForwardingPipelineConfig(
        self, request: p4r.GetForwardingPipelineConfigRequest, context: Context
    ) -> p4r.GetForwardingPipelineConfigResponse:
        try:
            self._check_device(request.device_id)
            return await self._run(self._device.get_pipeline, request.response_type)
        except StatusError as exc:
            _fail(context, exc.code, exc.message)
            return p4r.GetForwardingPipelineConfigResponse()

    async def Capabilities(
        self, request: p4r.CapabilitiesRequest, context: Context
    ) -> p4r.CapabilitiesResponse:
        if request.device_id:
            try:
                self._check_device(request.device_id)
            except StatusError as exc:
                _fail(context, exc.code, exc.message)
                return p4r.CapabilitiesResponse()
        return p4r.CapabilitiesResponse(p4runtime_api_version=P4RUNTIME_API_VERSION)

    # stream ---------------------------------------------------------------------------
    async def StreamChannel(
        self, request_iterator: AsyncIterator[p4r.StreamMessageRequest], context: Context
    ) -> None:
        """Read the controller's messages here; what the target sends it goes out through
        a writer task that lives only while there is something to send (so an idle
        stream holds this coroutine and little else: 1,000 of them are 1,000 of it)."""
        peer, identity = context.peer(), identity_of(context)
        key = _peer_key(peer, identity)
        refused = self._streams.admit(key)
        if refused is not None:
            _log.warning("StreamChannel from %s refused: %s", _who(peer, identity),
                         refused.message)
            _fail(context, refused.code, refused.message)
            return
        loop = asyncio.get_running_loop()
        if self._notifier is None:
            self._notifier = _Notifier(loop)
        outbox = _Outbox(loop, context, self._notifier)
        ctrl = Controller(outbox.send, notify=outbox.notify, peer=peer, identity=identity)
        try:
            error = await self._read_stream(context, ctrl)
            await outbox.flushed()  # what was sent before the end goes out first
            if error is not None:
                _fail(context, error.code, error.message)
        finally:
            outbox.close()
            self._arbiter.remove(ctrl)
            self._streams.release(key)
            self._stream_closed()

    def _stream_closed(self) -> None:
        """Count a closed stream; after enough of them, trim once no more close."""
        loop = asyncio.get_running_loop()
        self._closed += 1
        self._last_close = loop.time()
        if self._closed >= TRIM_AFTER_CLOSES and self._trim_timer is None:
            self._trim_timer = loop.call_later(TRIM_QUIET_S, self._trim_when_quiet)

    def _trim_when_quiet(self) -> None:
        loop = asyncio.get_running_loop()
        wait = self._last_close + TRIM_QUIET_S - loop.time()
        if wait > 0:  # streams still closing
            self._trim_timer = loop.call_later(wait, self._trim_when_quiet)
            return
        self._trim_timer = None
        closed, self._closed = self._closed, 0
        with contextlib.suppress(RuntimeError):  # the server is shutting down
            loop.run_in_executor(self._stream_pool, self._clear_after_streams, closed)

    def _trim(self) -> None:
        trim()
        self.heap_trims += 1

    def _clear_after_streams(self, closed: int) -> None:
        """Give back to the system what a burst of closed streams left.

        On the C library's malloc (``PYTHONMALLOC=malloc``) a trim alone leaves a
        few MB resident: Python's free lists keep up to 2,000 tuples of each small
        size, and after the burst they are the burst's, spread over its pages. A full
        collection empties those lists first. It takes ~3 ms with the VNIC pipeline
        loaded, ~6 us more per installed ACL entry (~100 ms with 16,000), all of it
        with the interpreter held, so forwarding waits: it is done only while the
        last one took at most ``FULL_COLLECTION_BUDGET_S`` (at most one is over
        budget; a target with such tables is large enough that the few MB are a
        small part of it). On Python's own allocator the collection would give
        nothing back (see pyoffload.memory), so there the heap is only trimmed."""
        before = _resident()
        malloc = on_system_malloc()
        collect = malloc and self._collection_s <= FULL_COLLECTION_BUDGET_S
        if collect:
            began = time.perf_counter()
            gc.collect()
            self._collection_s = time.perf_counter() - began
        self._trim()
        if collect:
            done = f"collected ({self._collection_s * 1e3:.1f} ms) and trimmed"
        elif malloc:
            done = (f"trimmed (not collected: the last full collection took "
                    f"{self._collection_s * 1e3:.0f} ms, over the "
                    f"{FULL_COLLECTION_BUDGET_S * 1e3:.0f} ms budget)")
        else:
            done = "trimmed"
        _log.info("%d streams closed: heap %s, resident memory %s -> %s", closed, done,
                  before, _resident())

    async def _read_stream(self, context: Context, ctrl: Controller) -> StatusError | None:
        """Serve a stream's messages until it ends; the error that ends it, if any.
        (``context.read()``, not the request iterator: that would add an asynchronous
        generator to every stream.)"""
        loop = asyncio.get_running_loop()
        try:
            while True:
                request = await context.read()
                if not isinstance(request, p4r.StreamMessageRequest):
                    return None  # grpc.aio.EOF: the controller closed its side
                which = request.WhichOneof("update")
                if which == "arbitration":
                    try:
                        self._arbiter.update(ctrl, request.arbitration)
                    except StatusError as exc:
                        return exc
                elif which == "packet":
                    await loop.run_in_executor(self._stream_pool, self._stream_packet_out,
                                               ctrl, request.packet)
                elif which == "digest_ack":
                    await loop.run_in_executor(self._stream_pool, self._stream_digest_ack,
                                               ctrl, request.digest_ack)
                else:
                    error = p4r.StreamError(canonical_code=rpc_code.UNIMPLEMENTED,
                                            message=f"stream message {which} is not supported")
                    error.other.SetInParent()
                    ctrl.send(p4r.StreamMessageResponse(error=error))
        except grpc.RpcError:
            pass  # the client went away
        except Exception:
            _log.exception("stream reader failed")
        return None

    def _is_primary(self, ctrl: Controller) -> bool:
        return any(p is ctrl for p in self._arbiter.primaries(self._device.device_id))

    def _stream_packet_out(self, ctrl: Controller, packet: p4r.PacketOut) -> None:
        try:
            if not self._is_primary(ctrl):
                raise permission_denied("only the primary controller may send packet-out")
            self._device.packet_out(packet)
        except StatusError as exc:
            error = p4r.StreamError(canonical_code=exc.code, message=exc.message)
            error.packet_out.packet_out.CopyFrom(packet)
            ctrl.send(p4r.StreamMessageResponse(error=error))

    def _stream_digest_ack(self, ctrl: Controller, ack: p4r.DigestListAck) -> None:
        try:
            if not self._is_primary(ctrl):
                raise permission_denied("only the primary controller may acknowledge digests")
            self._device.digest_ack(ack)
        except StatusError as exc:
            error = p4r.StreamError(canonical_code=exc.code, message=exc.message)
            error.digest_list_ack.digest_list_ack.CopyFrom(ack)
            ctrl.send(p4r.StreamMessageResponse(error=error))

    def _packet_in(self, metadata: list[tuple[int, int]], payload: bytes) -> None:
        message = p4r.StreamMessageResponse()
        packet = message.packet
        packet.payload = payload
        for ident, value in metadata:
            packet.metadata.add(metadata_id=ident, value=encode_uint(value))
        self.broadcast(message)

    def broadcast(self, message: p4r.StreamMessageResponse) -> None:
        """Send a packet-in or notification to the primary of every role."""
        for ctrl in self._arbiter.primaries(self._device.device_id):
            ctrl.send(message)
