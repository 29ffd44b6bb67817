"""A synchronous P4Runtime client: arbitration, pipeline push, writes, reads,
packet-in/out.

One client is one controller connection to one device. It becomes primary on
``open`` (or raises), keeps the stream in a background thread, and queues the
packet-ins and other stream messages it receives. It is used by the PTF tests,
the command line and the agent alike, against BMv2 ``simple_switch_grpc`` or
the embedded target.
"""

from __future__ import annotations

import collections
import concurrent.futures
import enum
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

import grpc
from finsy import P4Schema
from finsy.proto import p4r, p4r_grpc

from pyoffload.p4runtime.errors import P4RuntimeError

_STREAM_END = object()

MAX_MESSAGE = 256 * 1024 * 1024
"""Largest answer accepted: a wildcard read of a full table comes back in one
ReadResponse from some targets (BMv2's PI server), which can pass gRPC's
4 MiB default."""


NO_PIPELINE_CODES = (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND)
"""How targets that hold no pipeline answer GetForwardingPipelineConfig (the
specification's empty config aside)."""


class UpdateType(enum.IntEnum):
    """Kinds of P4Runtime update (named, so callers never pass bare ints)."""

    INSERT = p4r.Update.INSERT
    MODIFY = p4r.Update.MODIFY
    DELETE = p4r.Update.DELETE


def _election_of(update: p4r.MasterArbitrationUpdate) -> int:
    return update.election_id.high << 64 | update.election_id.low


class P4RuntimeClient:
    """A primary controller connection to one P4Runtime device."""

    def __init__(
        self,
        address: str,
        *,
        device_id: int = 1,
        election_id: int = 1,
        role: str = "",
        credentials: grpc.ChannelCredentials | None = None,
        server_name: str | None = None,
    ) -> None:
        """``address``: ``host:port``, or ``unix:/path`` (a Unix socket, whose permissions
        say who may connect); ``credentials``: TLS (mutual, with a client certificate) for
        a TCP address, ``server_name`` the name its certificate carries if not the host's."""
        self.address = address
        self._credentials = credentials
        self._server_name = server_name
        self.device_id = device_id
        self.election_id = election_id
        self.role = role
        self._channel: grpc.Channel | None = None
        self._stub: p4r_grpc.P4RuntimeStub | None = None
        self._requests: queue.Queue[object] = queue.Queue()
        self._arbitration: queue.Queue[p4r.MasterArbitrationUpdate | grpc.RpcError] = (
            queue.Queue()
        )
        self.stream_messages: queue.Queue[p4r.StreamMessageResponse] = queue.Queue()
        """Packet-ins, digest lists, idle-timeout notifications and stream errors, in the
        order the target sent them (one queue: a reader waits on one thing)."""
        self._reader: threading.Thread | None = None
        self.disconnected = threading.Event()
        """Set when the stream to the target ends (target gone, or close())."""
        self._stream: Iterable[p4r.StreamMessageResponse] | None = None
        self._reads: concurrent.futures.ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._arbitrated = False
        self.primary = False
        """This client is the device's primary controller now (arbitration updates
        after ``open`` keep it current: another controller may take over)."""
        self._role_changed = threading.Condition()
        self.no_primary = False
        """The device said it has no primary at all (the primary left)."""
        self.highest_election_id = 0
        """The highest election id the device has seen (its arbitration updates say)."""
        self.on_role_change: Callable[[bool], None] | None = None
        """Called (from the stream's reader thread; it must not block) with ``primary``
        each time this client, once open, stops or starts being the primary."""

    # -- connection -------------------------------------------------------

    def open(self, timeout: float = 10.0) -> P4RuntimeClient:
        """Connect, wait for the channel, and become primary."""
        options: list[tuple[str, object]] = [("grpc.max_receive_message_length", MAX_MESSAGE)]
        if self._credentials is None:
            self._channel = grpc.insecure_channel(self.address, options=options)
        else:
            if self._server_name:
                options.append(("grpc.ssl_target_name_override", self._server_name))
            self._channel = grpc.secure_channel(self.address, self._credentials, options=options)
        self._stub = p4r_grpc.P4RuntimeStub(self._channel)
        # The stream waits for the channel to connect; the arbitration reply is the sign
        # that it did (no channel_ready_future: its poller thread can outlive the channel).
        self._stream = self._stub.StreamChannel(self._request_iterator(), wait_for_ready=True)
        self._reader = threading.Thread(target=self._read_stream, daemon=True)
        self._reader.start()
        reply = self._arbitrate(timeout)
        if not isinstance(reply, grpc.RpcError) and \
                reply.status.code == grpc.StatusCode.NOT_FOUND.value[0] and \
                _election_of(reply) > self.election_id:
            # No primary, and the device remembers a higher election id than ours (another
            # controller held the role and left): it takes that id to become primary again.
            self.election_id = _election_of(reply)
            reply = self._arbitrate(timeout)
        self._arbitrated = True
        self._drain_arbitration()
        if isinstance(reply, grpc.RpcError):
            self.close()
            error = P4RuntimeError.from_rpc_error("arbitration", reply)
            if "already used" in error.message:
                raise P4RuntimeError(
                    "arbitration", error.code,
                    f"{error.message}: another controller with this election id is connected "
                    f"to device {self.device_id} at {self.address} (another pyoffload agent "
                    "for this target?)") from None
            raise error
        if reply.status.code != grpc.StatusCode.OK.value[0]:
            self.close()
            raise P4RuntimeError(
                "arbitration",
                grpc.StatusCode.PERMISSION_DENIED,
                f"not primary for device {self.device_id} at {self.address}: another "
                f"controller holds the primary role (election id {_election_of(reply)}, "
                f"above ours, {self.election_id}); stop it, or wait until it leaves (is it "
                "another pyoffload agent for this target?)",
            )
        return self

    def _arbitrate(self, timeout: float) -> p4r.MasterArbitrationUpdate | grpc.RpcError:
        """Send our arbitration update; the device's answer (raise if none comes)."""
        self._requests.put(self._arbitration_request())
        try:
            return self._arbitration.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise P4RuntimeError(
                "connect",
                grpc.StatusCode.UNAVAILABLE,
                f"no P4Runtime server answered at {self.address} within {timeout:g} s "
                "(is the target running, and on this address?)",
            ) from None

    def close(self) -> None:
        """End the stream cleanly, then the channel.

        The server ends its side once it has seen ours end, so waiting for the
        reader means our controller is gone before the next one (same election
        id) connects.
        """
        self._requests.put(_STREAM_END)
        if self._stream is not None and not self._arbitrated:
            self._stream.cancel()  # type: ignore[attr-defined]  # never connected: stop waiting
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._reads is not None:
            self._reads.shutdown(wait=False)
            self._reads = None

    def __enter__(self) -> P4RuntimeClient:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def stub(self) -> p4r_grpc.P4RuntimeStub:
        if self._stub is None:
            raise RuntimeError("P4RuntimeClient is not open: call open() first")
        return self._stub

    def _election(self) -> p4r.Uint128:
        return p4r.Uint128(high=self.election_id >> 64, low=self.election_id & (2**64 - 1))

    def _arbitration_request(self) -> p4r.StreamMessageRequest:
        arb = p4r.MasterArbitrationUpdate(device_id=self.device_id, election_id=self._election())
        if self.role:
            arb.role.name = self.role
        return p4r.StreamMessageRequest(arbitration=arb)

    def _request_iterator(self) -> Iterator[p4r.StreamMessageRequest]:
        while True:
            item = self._requests.get()
            if item is _STREAM_END:
                return
            assert isinstance(item, p4r.StreamMessageRequest)
            yield item

    def _read_stream(self) -> None:
        assert self._stream is not None
        try:
            self._read_messages()
        finally:
            self.disconnected.set()

    def _read_messages(self) -> None:
        assert self._stream is not None
        try:
            for msg in self._stream:
                kind = msg.WhichOneof("update")
                if kind == "arbitration":
                    with self._role_changed:
                        arbitration = msg.arbitration
                        code = arbitration.status.code
                        was_primary = self.primary
                        self.primary = code == grpc.StatusCode.OK.value[0]
                        self.no_primary = code == grpc.StatusCode.NOT_FOUND.value[0]
                        self.highest_election_id = max(self.highest_election_id,
                                                       _election_of(arbitration))
                        self._role_changed.notify_all()
                    listener = self.on_role_change
                    if self._arbitrated and listener and self.primary != was_primary:
                        listener(self.primary)
                    if self._arbitrated and self.no_primary:
                        self.claim_primary()  # the primary left: take the device back now
                    if not self._arbitrated:
                        self._arbitration.put(msg.arbitration)
                else:
                    self.stream_messages.put(msg)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                self._arbitration.put(exc)

    def _drain_arbitration(self) -> None:
        while True:
            try:
                self._arbitration.get_nowait()
            except queue.Empty:
                return

    def claim_primary(self) -> None:
        """Ask again to be primary; ``primary`` tells when it is.

        A device remembers the highest election id it has seen, and after its primary
        leaves it has none until a controller arbitrates with at least that id. So once
        the device says it has no primary, this client takes that id (never while
        another controller holds it: two controllers may not share one).
        """
        if self.no_primary and self.highest_election_id > self.election_id:
            self.election_id = self.highest_election_id
        self._requests.put(self._arbitration_request())

    def wait_primary(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for this client to be primary."""
        with self._role_changed:
            return self._role_changed.wait_for(lambda: self.primary, timeout=timeout)

    # -- pipeline ---------------------------------------------------------

    def set_pipeline(self, p4info: Path, device_config: Path) -> P4Schema:
        """Push a pipeline (P4Info + BMv2 JSON) with VERIFY_AND_COMMIT."""
        schema = P4Schema(p4info, device_config)
        self.push_pipeline(schema)
        return schema

    def ensure_pipeline(self, schema: P4Schema) -> bool:
        """Push ``schema`` unless the target already runs it (same cookie).

        Returns True when it pushed (the target had another pipeline or none,
        and so none of our entries). A push wipes every table and register (all
        tracked connections), so it happens only when the target says it runs no
        pipeline or another one; any other failure to read the current one (a
        timeout, a refusal, the target going away) is raised, never answered
        with a push.
        """
        try:
            current = self.get_pipeline(cookie_only=True)
        except P4RuntimeError as exc:
            if exc.code not in NO_PIPELINE_CODES:
                raise
            current = None  # the target runs no pipeline yet
        if current is not None and current.cookie.cookie == schema.p4cookie:
            return False
        self.push_pipeline(schema)
        return True

    def push_pipeline(self, schema: P4Schema) -> None:
        request = p4r.SetForwardingPipelineConfigRequest(
            device_id=self.device_id,
            election_id=self._election(),
            action=p4r.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT,
            config=schema.get_pipeline_config(),
        )
        if self.role:
            request.role = self.role
        try:
            self.stub.SetForwardingPipelineConfig(request)
        except grpc.RpcError as exc:
            raise P4RuntimeError.from_rpc_error("SetForwardingPipelineConfig", exc) from None

    def get_pipeline(self, *, cookie_only: bool = False) -> p4r.ForwardingPipelineConfig:
        response_type = (
            p4r.GetForwardingPipelineConfigRequest.COOKIE_ONLY
            if cookie_only
            else p4r.GetForwardingPipelineConfigRequest.ALL
        )
        request = p4r.GetForwardingPipelineConfigRequest(
            device_id=self.device_id, response_type=response_type
        )
        try:
            return self.stub.GetForwardingPipelineConfig(request).config
        except grpc.RpcError as exc:
            raise P4RuntimeError.from_rpc_error("GetForwardingPipelineConfig", exc) from None

    # -- write / read -----------------------------------------------------

    def write(
        self,
        updates: Sequence[p4r.Update],
        *,
        atomicity: int = p4r.WriteRequest.CONTINUE_ON_ERROR,
    ) -> None:
        """Send one batch; raise P4RuntimeError with per-update details on failure."""
        if updates:
            self.write_async(updates, atomicity=atomicity)()

    def write_async(
        self,
        updates: Sequence[p4r.Update],
        *,
        atomicity: int = p4r.WriteRequest.CONTINUE_ON_ERROR,
    ) -> Callable[[], None]:
        """Send one batch now; the returned function waits for the answer (and raises
        P4RuntimeError with per-update details on failure). Meanwhile the caller can
        prepare the next batch."""
        return self._send(p4r.WriteRequest(updates=updates,
                                           atomicity=atomicity))  # type: ignore[arg-type]

    def _send(self, request: p4r.WriteRequest) -> Callable[[], None]:
        """Stamp ``request`` with this controller's device, election id and role and send
        it; the returned function waits for the answer and raises P4RuntimeError (with
        per-update details) if it failed."""
        request.device_id = self.device_id
        request.election_id.CopyFrom(self._election())
        if self.role:
            request.role = self.role
        try:
            future = self.stub.Write.future(request)
        except ValueError as exc:  # grpc's word for a channel closed under the call
            raise P4RuntimeError("Write", grpc.StatusCode.UNAVAILABLE,
                                 f"the connection to {self.address} was closed ({exc})") from None

        def result() -> None:
            try:
                future.result()
            except grpc.RpcError as exc:
                raise P4RuntimeError.from_rpc_error("Write", exc, request.updates) from None

        return result

    def write_requests(self, requests: Iterable[p4r.WriteRequest], *,
                       in_flight: int = 2) -> None:
        """Send prepared batches with up to ``in_flight`` of them at the target at once.

        Building batch k+1 overlaps the target applying batch k, which is what
        bulk transfers (state handover) are bound by; the batches must not
        depend on each other, since a target may apply concurrent requests in
        any order. The first failure is raised once the batches in flight have
        been answered.
        """
        pending: collections.deque[Callable[[], None]] = collections.deque()
        failure: P4RuntimeError | None = None

        def settle() -> None:
            nonlocal failure
            try:
                pending.popleft()()
            except P4RuntimeError as exc:
                failure = failure or exc

        for request in requests:
            if request.updates:
                pending.append(self._send(request))
            while len(pending) >= in_flight:
                settle()
            if failure is not None:
                break
        while pending:
            settle()
        if failure is not None:
            raise failure

    def read_async(self, entities: Iterable[p4r.Entity]
                   ) -> concurrent.futures.Future[list[p4r.Entity]]:
        """Start one Read; the future's result is its entities (or P4RuntimeError)."""
        return self._pool().submit(self._read_all, p4r.ReadRequest(entities=list(entities)))

    def read_requests(self, requests: Iterable[p4r.ReadRequest], *,
                      in_flight: int = 2) -> Iterator[list[p4r.Entity]]:
        """The entities each prepared read returns, in order, with reads overlapped."""
        pending: collections.deque[concurrent.futures.Future[list[p4r.Entity]]] = \
            collections.deque()
        for request in requests:
            pending.append(self._pool().submit(self._read_all, request))
            while len(pending) >= in_flight:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def _read_all(self, request: p4r.ReadRequest) -> list[p4r.Entity]:
        """Stamp ``request`` with this controller's device and role; every entity it reads."""
        request.device_id = self.device_id
        if self.role:
            request.role = self.role
        result: list[p4r.Entity] = []
        try:
            for reply in self.stub.Read(request):
                result.extend(reply.entities)
        except grpc.RpcError as exc:
            raise P4RuntimeError.from_rpc_error("Read", exc) from None
        except ValueError as exc:  # grpc's word for a channel closed under the call
            raise P4RuntimeError("Read", grpc.StatusCode.UNAVAILABLE,
                                 f"the connection to {self.address} was closed ({exc})") from None
        return result

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._pool_lock:
            if self._reads is None:
                self._reads = concurrent.futures.ThreadPoolExecutor(
                    max_workers=4, thread_name_prefix="p4rt-read")
            return self._reads

    def write_entities(self, kind: UpdateType, entities: Iterable[p4r.Entity]) -> None:
        self.write([p4r.Update(type=kind.value, entity=e) for e in entities])

    def read(self, entities: Iterable[p4r.Entity]) -> list[p4r.Entity]:
        return self._read_all(p4r.ReadRequest(entities=list(entities)))

    # -- stream -----------------------------------------------------------

    def digest_ack(self, digest_id: int, list_id: int) -> None:
        """Acknowledge a digest list, so the target may send the same values again."""
        ack = p4r.DigestListAck(digest_id=digest_id, list_id=list_id)
        self._requests.put(p4r.StreamMessageRequest(digest_ack=ack))

    def packet_out(self, payload: bytes, metadata: Sequence[tuple[int, bytes]]) -> None:
        """Send a frame through the CPU port with packet_out metadata (id, value)."""
        packet = p4r.PacketOut(
            payload=payload,
            metadata=[p4r.PacketMetadata(metadata_id=i, value=v) for i, v in metadata],
        )
        self._requests.put(p4r.StreamMessageRequest(packet=packet))
