"""The gRPC P4Runtime service: request checks, error encoding, stream sessions.

Each RPC validates device id and arbitration here, hands the work to the
`Device`, and encodes the outcome as the spec's "Error Reporting" section
asks: a plain status for RPC-wide errors, and UNKNOWN plus one `p4.v1.Error`
per element (in `grpc-status-details-bin`) when elements of a batch fail.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator, Sequence

import grpc
from finsy.proto import p4r, p4r_grpc, rpc_code

from .arbitration import Arbiter, Controller, election_id_of
from .codec import encode_uint
from .device import Device
from .errors import (
    OK_ERROR,
    STATUS_DETAILS_KEY,
    StatusError,
    batch_status,
    grpc_code,
    not_found,
)

_log = logging.getLogger(__name__)

P4RUNTIME_API_VERSION = "1.5.0"
READ_CHUNK = 1000
"""Entities per ReadResponse message: bounded messages for large tables."""
STREAM_BACKLOG = 10_000
"""Packet-ins and notifications queued per stream before new ones are dropped."""


def _abort_batch(context: grpc.ServicerContext, what: str,
                 errors: Sequence[StatusError | None]) -> None:
    failed = sum(1 for e in errors if e is not None)
    message = f"{what}: {failed} of {len(errors)} failed"
    first = next(e for e in errors if e is not None)
    message += f"; first: {first}"
    status = batch_status(message, [e.to_p4_error() if e else OK_ERROR for e in errors])
    context.set_trailing_metadata(((STATUS_DETAILS_KEY, status.SerializeToString()),))
    context.abort(grpc.StatusCode.UNKNOWN, message)


def _abort(context: grpc.ServicerContext, exc: StatusError) -> None:
    context.abort(grpc_code(exc.code), exc.message)


class P4RuntimeService(p4r_grpc.P4RuntimeServicer):
    """P4Runtime RPCs for one device."""

    def __init__(self, device: Device, arbiter: Arbiter) -> None:
        self._device = device
        self._arbiter = arbiter
        device.switch.on_packet_in(self._packet_in)

    def close(self) -> None:
        self._device.switch.on_packet_in(None)

    def _check_device(self, device_id: int) -> None:
        if device_id != self._device.device_id:
            raise not_found(f"unknown device_id {device_id} (this target is "
                            f"device {self._device.device_id})")

    # unary RPCs ------------------------------------------------------------------
    def Write(self, request: p4r.WriteRequest, context: grpc.ServicerContext
              ) -> p4r.WriteResponse:
        try:
            self._check_device(request.device_id)
            self._arbiter.check_primary(request.device_id, request.role,
                                        election_id_of(request))
            errors = self._device.write(request.updates, request.atomicity)
        except StatusError as exc:
            _abort(context, exc)
            raise  # unreachable: abort raises
        if any(e is not None for e in errors):
            _abort_batch(context, "write", errors)
        return p4r.WriteResponse()

    def Read(self, request: p4r.ReadRequest, context: grpc.ServicerContext
             ) -> Iterator[p4r.ReadResponse]:
        try:
            self._check_device(request.device_id)
            entities, errors = self._device.read(request.entities)
        except StatusError as exc:
            _abort(context, exc)
            return
        for start in range(0, len(entities), READ_CHUNK):
            yield p4r.ReadResponse(entities=entities[start:start + READ_CHUNK])
        if any(e is not None for e in errors):
            _abort_batch(context, "read", errors)

    def SetForwardingPipelineConfig(
        self, request: p4r.SetForwardingPipelineConfigRequest, context: grpc.ServicerContext
    ) -> p4r.SetForwardingPipelineConfigResponse:
        try:
            self._check_device(request.device_id)
            self._arbiter.check_primary(request.device_id, request.role,
                                        election_id_of(request))
            self._device.set_pipeline(request)
        except StatusError as exc:
            _log.warning("SetForwardingPipelineConfig refused: %s", exc)
            _abort(context, exc)
        return p4r.SetForwardingPipelineConfigResponse()

    def GetForwardingPipelineConfig(
        self, request: p4r.GetForwardingPipelineConfigRequest, context: grpc.ServicerContext
    ) -> p4r.GetForwardingPipelineConfigResponse:
        try:
            self._check_device(request.device_id)
            return self._device.get_pipeline(request.response_type)
        except StatusError as exc:
            _abort(context, exc)
            raise

    def Capabilities(self, request: p4r.CapabilitiesRequest, context: grpc.ServicerContext
                     ) -> p4r.CapabilitiesResponse:
        if request.device_id:
            try:
                self._check_device(request.device_id)
            except StatusError as exc:
                _abort(context, exc)
        return p4r.CapabilitiesResponse(p4runtime_api_version=P4RUNTIME_API_VERSION)

    # stream ---------------------------------------------------------------------------
    def StreamChannel(self, request_iterator: Iterator[p4r.StreamMessageRequest],
                      context: grpc.ServicerContext) -> Iterator[p4r.StreamMessageResponse]:
        outbox: queue.SimpleQueue[p4r.StreamMessageResponse | StatusError | None] = (
            queue.SimpleQueue()
        )

        def send(message: p4r.StreamMessageResponse) -> None:
            if message.WhichOneof("update") != "arbitration" and outbox.qsize() > STREAM_BACKLOG:
                return  # best effort, as the spec allows for packet-in and notifications
            outbox.put(message)

        ctrl = Controller(send)
        reader = threading.Thread(target=self._read_stream, args=(request_iterator, ctrl, outbox),
                                  name="p4rt-stream", daemon=True)
        context.add_callback(lambda: outbox.put(None))
        reader.start()
        try:
            while True:
                item = outbox.get()
                if item is None:
                    return
                if isinstance(item, StatusError):
                    _abort(context, item)
                    return
                yield item
        finally:
            self._arbiter.remove(ctrl)

    def _read_stream(self, requests: Iterator[p4r.StreamMessageRequest], ctrl: Controller,
                     outbox: queue.SimpleQueue[p4r.StreamMessageResponse | StatusError | None]
                     ) -> None:
        try:
            for request in requests:
                which = request.WhichOneof("update")
                if which == "arbitration":
                    try:
                        self._arbiter.update(ctrl, request.arbitration)
                    except StatusError as exc:
                        outbox.put(exc)
                        return
                elif which == "packet":
                    self._stream_packet_out(ctrl, request.packet)
                elif which == "digest_ack":
                    self._stream_digest_ack(ctrl, request.digest_ack)
                else:
                    error = p4r.StreamError(canonical_code=rpc_code.UNIMPLEMENTED,
                                            message=f"stream message {which} is not supported")
                    error.other.SetInParent()
                    ctrl.send(p4r.StreamMessageResponse(error=error))
        except grpc.RpcError:
            pass  # the client went away
        except Exception:
            _log.exception("stream reader failed")
        finally:
            outbox.put(None)

    def _is_primary(self, ctrl: Controller) -> bool:
        return any(p is ctrl for p in self._arbiter.primaries(self._device.device_id))

    def _stream_packet_out(self, ctrl: Controller, packet: p4r.PacketOut) -> None:
        try:
            if not self._is_primary(ctrl):
                raise StatusError(rpc_code.PERMISSION_DENIED,
                                     "only the primary controller may send packet-out")
            self._device.packet_out(packet)
        except StatusError as exc:
            error = p4r.StreamError(canonical_code=exc.code, message=exc.message)
            error.packet_out.packet_out.CopyFrom(packet)
            ctrl.send(p4r.StreamMessageResponse(error=error))

    def _stream_digest_ack(self, ctrl: Controller, ack: p4r.DigestListAck) -> None:
        try:
            if not self._is_primary(ctrl):
                raise StatusError(rpc_code.PERMISSION_DENIED,
                                     "only the primary controller may acknowledge digests")
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
