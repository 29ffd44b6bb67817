"""The guest channel: an ``OffloadChannel`` gRPC server per VNIC.

Each server is bound to exactly one VNIC when it is created; nothing a guest
sends can name another (a request naming another VNIC is refused), and every
entity compiled from it carries the bound VNIC's id.

Who reaches a channel (the host configuration, ``pyoffload.agent.config``, says):

* a Unix socket (the default) is created with the configured owner, group and mode
  (default: the agent's user, i.e. root, mode 0600), bound in a private directory and
  renamed into place, so it is never reachable with looser permissions; its directory
  and every one above it must be writable only by root or the agent's user (or be
  sticky, as /tmp is), so no one else can replace the socket;
* TCP only with mutual TLS: the guest's certificate must be signed by the VNIC's CA
  and carry the identity the configuration binds to this VNIC (checked on every
  call); plain TCP only on loopback with the explicit ``insecure_tcp`` opt-in;
* vsock as configured (the hypervisor binds a CID to its VM).

Every server runs grpc's asyncio server on an event loop thread of its own. Watch
streams wait on that loop and hold no thread; the agent's blocking calls (Apply,
Withdraw, Get, Stats) run in a small pool of the VNIC's own, so open streams never
starve them. Limits checked before any expensive work: the receive size (from the
quotas, or configured), the guest's rate of unary calls (checked before the body is
even decoded: the methods are handed the bytes as sent), Watch streams per peer, and
the flow and rule counts of an Apply, read from the message before it is validated.
A body that does not decode is answered INVALID_ARGUMENT, and costs no memory.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable
from concurrent import futures
from pathlib import Path
from typing import Any, NoReturn, Protocol, TypeVar

import grpc
from google.protobuf.message import DecodeError
from guest_shim.address import ChannelAddress
from guest_shim.client import AGENT_ANSWER
from guest_shim.service import AsyncContext, add_async_raw_servicer

from guest_shim import offload_pb2 as pb
from pyoffload.agent.config import (
    ChannelAccess,
    ChannelTlsConfig,
    ConfigError,
    VnicConfig,
    message_bytes,
)
from pyoffload.agent.core import Agent
from pyoffload.agent.errors import AgentError
from pyoffload.agent.failures import RefusalLog
from pyoffload.agent.ratelimit import RateLimit
from pyoffload.agent.unixsocket import private_directory, publish_socket, remove_socket
from pyoffload.bulk import no_cyclic_gc
from pyoffload.embedded.p4runtime.unixfront import UnixFront
from pyoffload.rules import RuleError, from_proto, to_proto

_log = logging.getLogger(__name__)

Kind = pb.Event.Kind
T = TypeVar("T")


class _Message(Protocol):
    @classmethod
    def FromString(cls: type[M], body: bytes) -> M: ...


M = TypeVar("M", bound=_Message)

COMMIT_MARGIN = 0.05
"""Seconds a guest's deadline must still leave when an apply is committed: its answer
must reach the guest in time, or the guest would be told DEADLINE_EXCEEDED about rules
that are in force."""

HELD_CALLS = 64
"""Calls over a VNIC's rate held back before their refusal, at most, at once."""

START_TIMEOUT_S = 10.0
"""How long starting or stopping a channel's server may take."""

_REFUSED = ((AGENT_ANSWER, "refused"),)


def still_waiting(context: AsyncContext, gone: threading.Event) -> Callable[[], bool]:
    """Whether the guest still waits for the answer, with time to receive it (asked from
    the worker thread; ``gone`` is set when the call ended or was cancelled)."""
    def check() -> bool:
        left = context.time_remaining()
        return not gone.is_set() and (left is None or left > COMMIT_MARGIN)
    return check


def peer_key(peer: str) -> str:
    """The peer a Watch limit counts: the address without its port (``ipv4:10.0.0.2``,
    ``ipv6:[::1]``, ``vsock:3``); every client of a Unix socket is one peer (the
    socket's permissions already say who they may be)."""
    scheme, _, rest = peer.partition(":")
    if scheme == "unix-abstract":  # relayed by the channel's UnixFront: still the socket's
        return "unix"
    if scheme in ("ipv4", "ipv6", "vsock"):
        host, colon, _port = rest.rpartition(":")
        return f"{scheme}:{host}" if colon else peer
    return scheme or peer


def certificate_names(context: AsyncContext) -> list[str]:
    """The common name and subject alternative names of the peer's certificate."""
    auth = context.auth_context()
    names: list[str] = []
    for key in ("x509_common_name", "x509_subject_alternative_name"):
        names.extend(value.decode(errors="replace") for value in auth.get(key, ()))
    return names


def shown_peer(peer: str) -> str:
    """A call's peer for the log: a Unix-socket client by the credentials its relay's
    name carries (`UnixFront`: ``unix-abstract:vnic-web-1-TOKEN-c7-uid0-pid42``)."""
    if peer in ("unix:", ""):
        return "a client of its Unix socket"
    if peer.startswith("unix-abstract:"):
        uid, pid = peer.rsplit("-uid", 1)[-1].partition("-pid")[::2]
        return f"a client of its Unix socket (uid {uid}, pid {pid})"
    return peer


MAX_DETAILS_BYTES = 4000
"""Most bytes of an error message sent to a guest, as gRPC sends it: in a header, each
byte of UTF-8 outside printable ASCII escaped as three; a client drops a call whose
headers pass 8 KiB (its soft limit, at random) or 16 KiB: a guest would get a transport
error instead of the agent's answer."""


def _sent_size(char: str) -> int:
    return 1 if " " <= char <= "~" and char != "%" else 3 * len(char.encode())


def bounded(message: str) -> str:
    """``message``, cut to ``MAX_DETAILS_BYTES`` as gRPC sends it (saying how much was
    cut)."""
    size = 0
    for index, char in enumerate(message):
        size += _sent_size(char)
        if size > MAX_DETAILS_BYTES - 80:  # room for the note
            return f"{message[:index]} … ({len(message) - index} more characters not shown)"
    return message


class VnicChannel:
    """Serves one VNIC's guest; implements guest_shim's RawAsyncOffloadChannelServicer."""

    def __init__(self, agent: Agent, vnic: str, *, tls_client: str | None = None,
                 watch_streams_per_peer: int = 8, workers: int = 4,
                 rate: RateLimit | None = None, byte_rate: RateLimit | None = None) -> None:
        self.agent = agent
        self.vnic = vnic
        self.rate = rate or RateLimit(20.0, 40)
        """The guest's unary calls (``channel_limits.requests_per_second``, ``request_burst``)."""
        self.byte_rate = byte_rate or RateLimit(float(1 << 20), 4 << 20)
        """Their bodies' bytes (``channel_limits.bytes_per_second``; bursts up to the
        receive limit)."""
        self.tls_client = tls_client
        """The identity a TLS peer's certificate must carry; None: not a TLS channel."""
        self.watch_streams_per_peer = watch_streams_per_peer
        self.pool = futures.ThreadPoolExecutor(max_workers=workers,
                                               thread_name_prefix=f"channel-{vnic}")
        self._watches: Counter[str] = Counter()  # touched on the event loop only
        self.refusals = RefusalLog(_log)
        """Refusals a guest can repeat in a loop, said once a minute per peer."""
        self._held = 0  # calls over the rate waiting to be refused (event loop only)

    # -- admission ------------------------------------------------------------

    async def _admit(self, context: AsyncContext, method: str) -> None:
        """Refuse a TLS peer whose certificate is not the one bound to this VNIC."""
        if self.tls_client is None:
            return
        names = certificate_names(context)
        if self.tls_client in names:
            return
        shown = ", ".join(repr(n) for n in names) or "no name"
        peer = shown_peer(context.peer())
        self.refusals.refused(
            f"VNIC {self.vnic}: calls from {peer} with certificate {shown}",
            f"VNIC {self.vnic}: refused {method} from {peer}: its certificate carries "
            f"{shown}, the VNIC admits only {self.tls_client!r}")
        await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                            f"VNIC {self.vnic}: this certificate ({shown}) is not the one "
                            "bound to this VNIC's channel")

    async def _open(self, context: AsyncContext, method: str, body: bytes,
                    kind: type[M]) -> M:
        """Admit a unary call (the peer's identity, then the guest's rate) and only then
        decode its body."""
        await self._admit(context, method)
        wait = self.rate.take()
        why = (f"over its rate of {self.rate.rate:g} calls a second (burst "
               f"{self.rate.burst}: channel_limits.requests_per_second, request_burst); "
               f"retry in {wait:.2f} s")
        if not wait:
            wait = self.byte_rate.take(len(body))
            why = (f"over its rate of {self.byte_rate.rate:g} request bytes a second "
                   f"(channel_limits.bytes_per_second); this {len(body)}-byte request may "
                   f"come in {wait:.2f} s")
        if wait:
            await self._hold_back(wait)
            await self._refuse(context, AgentError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"VNIC {self.vnic}: {why}; nothing was done"))
        return await self._decode(context, method, body, kind)

    async def _hold_back(self, wait: float) -> None:
        """Answer a call over the rate only once the rate allows one again (at most a
        second later): a guest that calls back to back is slowed to its rate instead of
        making the agent refuse a thousand calls a second. Only so many calls are held
        at once; past that they are refused at once."""
        if self._held >= HELD_CALLS:
            return
        self._held += 1
        try:
            await asyncio.sleep(min(wait, 1.0))
        finally:
            self._held -= 1

    async def _decode(self, context: AsyncContext, method: str, body: bytes,
                      kind: type[M]) -> M:
        try:
            return kind.FromString(body)
        except DecodeError as exc:
            await self._refuse(context, AgentError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"VNIC {self.vnic}: the {method} request's body is not a message of this "
                f"protocol ({exc}); nothing was done"))

    async def _refuse(self, context: AsyncContext, exc: AgentError) -> NoReturn:
        await context.abort(exc.code, bounded(exc.message), trailing_metadata=_REFUSED)
        raise AssertionError("abort returned")  # pragma: no cover (abort raises)

    def _check_request(self, request: pb.ApplyRequest) -> None:
        """Refuse, before anything is validated or decoded further (thousands of rules
        cost seconds): a request over the VNIC's quotas, from the counts in the message
        (first: the cheapest check), and a body that only decodes by luck (fields this
        protocol does not have, or no request at all: random bytes can parse as an
        empty message, which would withdraw everything)."""
        if not request.HasField("request"):
            raise self._not_ours("it carries no request")
        rules = request.request
        self.agent.check_quotas(self.vnic, len(rules.flows),
                                sum(len(flow.rules) for flow in rules.flows))
        size = request.ByteSize()
        request.DiscardUnknownFields()
        if request.ByteSize() != size:
            raise self._not_ours("it has fields this agent does not know: is the guest shim "
                                 "newer than the agent?")

    def _not_ours(self, why: str) -> AgentError:
        return AgentError(grpc.StatusCode.INVALID_ARGUMENT,
                          f"VNIC {self.vnic}: the body is not an apply request of this "
                          f"protocol ({why}); nothing was installed")

    async def _run(self, context: AsyncContext, work: Callable[..., T], *args: Any) -> T:
        """``work(*args)`` in the VNIC's pool; the agent's refusals become the answer."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.pool, work, *args)
        except AgentError as exc:
            await self._refuse(context, exc)
        except RuleError as exc:
            await self._refuse(context, AgentError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)))
        except Exception as exc:  # a fault of the agent's: said, not left to grpc's log
            # (grpc logs a traceback per call: a guest repeating the call floods the log)
            self.refusals.refused(
                f"VNIC {self.vnic}: calls failing inside the agent",
                f"VNIC {self.vnic}: {getattr(work, '__name__', 'a call')} failed inside the "
                f"agent: {exc!r}", exc_info=exc)
            await self._refuse(context, AgentError(
                grpc.StatusCode.INTERNAL,
                f"VNIC {self.vnic}: the agent failed ({type(exc).__name__}); its log on the "
                "host says more"))
        raise AssertionError("abort returned")  # pragma: no cover (abort raises)

    def _gone(self, context: AsyncContext) -> threading.Event:
        """Set when the call ends: a guest that went away no longer waits."""
        gone = threading.Event()
        context.add_done_callback(lambda _context: gone.set())  # type: ignore[arg-type]  # the stubs want a DoneCallback instance
        return gone

    # -- the service ------------------------------------------------------------

    async def Apply(self, body: bytes, context: AsyncContext) -> pb.ApplyReply:
        request = await self._open(context, "Apply", body, pb.ApplyRequest)
        del body
        try:
            self._check_request(request)
            refusal = None
        except AgentError as exc:
            refusal = exc.with_traceback(None)
        if refusal is not None:
            # Refused outside the handler, its request dropped: the abort's traceback
            # holds this frame, which must not keep a 4 MB request alive.
            del request
            await self._refuse(context, refusal)
        check = still_waiting(context, self._gone(context))
        return await self._run(context, self._apply, request.request, check)

    def _apply(self, request: pb.OffloadRequest, check: Callable[[], bool]) -> pb.ApplyReply:
        with no_cyclic_gc():  # thousands of rules: bulk work, see pyoffload.bulk
            model = from_proto(request)
            outcome = self.agent.apply(self.vnic, model, still_wanted=check)
            reply = pb.ApplyReply(generation=outcome.generation)
            add = reply.results.add
            for flow in model.flows:
                for rule in flow.rules:
                    add(flow_id=flow.id, rule_id=rule.id, installed=True)
            for warning in outcome.warnings:
                add(installed=True, error=f"warning: {warning}")
            return reply

    async def Withdraw(self, body: bytes, context: AsyncContext) -> pb.WithdrawReply:
        request = await self._open(context, "Withdraw", body, pb.WithdrawRequest)
        if request.all and request.flow_ids:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "withdraw: give flow ids or all, not both")
        check = still_waiting(context, self._gone(context))
        flow_ids = None if request.all else list(request.flow_ids)
        return await self._run(context, self._withdraw, flow_ids, check)

    def _withdraw(self, flow_ids: list[str] | None,
                  check: Callable[[], bool]) -> pb.WithdrawReply:
        removed = self.agent.withdraw(self.vnic, flow_ids, still_wanted=check)
        return pb.WithdrawReply(generation=self.agent.state(self.vnic).generation,
                                withdrawn=removed)

    async def Get(self, body: bytes, context: AsyncContext) -> pb.GetReply:
        await self._open(context, "Get", body, pb.GetRequest)
        return await self._run(context, self._get)

    def _get(self) -> pb.GetReply:
        return pb.GetReply(request=to_proto(self.agent.state(self.vnic).request))

    async def Stats(self, body: bytes, context: AsyncContext) -> pb.StatsReply:
        request = await self._open(context, "Stats", body, pb.StatsRequest)
        return await self._run(context, self._stats, set(request.flow_ids))

    def _stats(self, wanted: set[str]) -> pb.StatsReply:
        stats = self.agent.stats(self.vnic)
        state = self.agent.state(self.vnic)
        flows = []
        for flow in state.request.flows:
            if wanted and flow.id not in wanted:
                continue
            packets, nbytes = stats.flows.get(flow.id, (0, 0))
            flows.append(pb.FlowStats(
                flow_id=flow.id,
                counter=pb.Counter(packets=packets, bytes=nbytes),
                rules=[pb.RuleStats(rule_id=r.rule_id,
                                    counter=pb.Counter(packets=r.packets, bytes=r.bytes))
                       for r in stats.rules if r.flow_id == flow.id],
            ))
        quotas = state.config.quotas
        try:
            tracked = len(self.agent.connections(self.vnic))
        except AgentError:
            tracked = 0  # the target cannot report them (BMv2 without Thrift)
        return pb.StatsReply(
            generation=stats.generation,
            flows=flows,
            tracked_connections=tracked,
            quotas=[
                pb.QuotaUse(name="flows", used=len(state.request.flows), limit=quotas.flows),
                pb.QuotaUse(name="rules", used=sum(len(f.rules) for f in state.request.flows),
                            limit=quotas.rules),
                pb.QuotaUse(name="tracked_connections", used=tracked,
                            limit=quotas.tracked_connections),
            ],
        )

    async def Watch(self, body: bytes, context: AsyncContext) -> AsyncIterator[pb.Event]:
        """Not rate-limited (a stream is limited per peer instead)."""
        await self._admit(context, "Watch")
        await self._decode(context, "Watch", body, pb.WatchRequest)
        peer = peer_key(context.peer())
        limit = self.watch_streams_per_peer
        if self._watches[peer] >= limit:
            self.refusals.refused(
                f"VNIC {self.vnic}: Watch streams from {peer}",
                f"VNIC {self.vnic}: refused a Watch stream from {shown_peer(context.peer())}: "
                f"{self._watches[peer]} open, the limit is {limit} per peer")
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"VNIC {self.vnic}: {peer} already has {limit} Watch streams "
                                f"open, the limit per peer (channel_limits: "
                                f"watch_streams_per_peer)", trailing_metadata=_REFUSED)
        self._watches[peer] += 1
        try:
            async for event in self.agent.events.stream(self.vnic):
                yield event
        finally:
            self._watches[peer] -= 1
            if self._watches[peer] <= 0:
                del self._watches[peer]


class ChannelServer:
    """A running channel: a ``grpc.aio`` server on an event loop thread of its own."""

    def __init__(self, vnic: str, address: ChannelAddress, channel: VnicChannel, *,
                 connections: int | None = None) -> None:
        self.vnic = vnic
        self.address = address
        self.channel = channel
        self.connections = connections
        """The most connections a Unix-socket channel holds (its `UnixFront` closes more
        as soon as they are accepted); None: no limit."""
        self.front: UnixFront | None = None
        self._private: Path | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name=f"channel-{vnic}-loop")
        self._server: grpc.aio.Server | None = None
        self._socket: tuple[int, int] | None = None  # (st_dev, st_ino) of our Unix socket
        self._stopped = False

    def _call(self, coroutine: Any, grace: float = 0.0) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(START_TIMEOUT_S + grace)

    def start(self, options: list[tuple[str, Any]], access: ChannelAccess,
              tls: ChannelTlsConfig | None, where: str) -> ChannelServer:
        self._thread.start()
        try:
            self._call(self._start(options, access, tls, where))
        except BaseException:
            self.stop(None)
            raise
        return self

    async def _start(self, options: list[tuple[str, Any]], access: ChannelAccess,
                     tls: ChannelTlsConfig | None, where: str) -> None:
        server = grpc.aio.server(options=options)
        self._server = server
        add_async_raw_servicer(server, self.channel)
        address = self.address
        private: Path | None = None
        try:
            if address.kind == "unix":
                private = private_directory(Path(address.path))
                # grpc's own socket, which only the front (below) connects to
                self._private = Path(tempfile.mkdtemp(prefix=f"pyoffload-{self.vnic}-"))
                listen = f"unix:{self._private}/s"
            else:
                listen = address.listen_address
            if tls is not None:
                ca, cert, key = tls.read(where)
                credentials = grpc.ssl_server_credentials(
                    [(key, cert)], root_certificates=ca, require_client_auth=True)
                bound = server.add_secure_port(listen, credentials)
            else:
                bound = server.add_insecure_port(listen)
        except RuntimeError as exc:
            raise AgentError(grpc.StatusCode.UNAVAILABLE,
                             f"VNIC {self.vnic}: cannot serve its channel on {address}: "
                             f"{exc}") from None
        if address.kind == "tcp" and bound == 0:
            raise AgentError(grpc.StatusCode.UNAVAILABLE,
                             f"VNIC {self.vnic}: cannot serve its channel on {address} (in use?)")
        await server.start()
        if private is not None:
            # the guest connects to the front, which relays to grpc's socket in the
            # private directory (and counts the connections)
            assert self._private is not None
            front = UnixFront(Path(address.path), self._private / "s",
                              what=f"VNIC {self.vnic}'s "
                              "channel", prefix=f"vnic-{self.vnic}",
                              max_connections=self.connections)
            front_path = private / "front"
            front.public = front_path  # bound in the private directory, published by rename
            try:
                front.bind(0o600, None, None)
            except OSError as exc:
                raise AgentError(grpc.StatusCode.UNAVAILABLE,
                                 f"VNIC {self.vnic}: cannot serve its channel on {address}: "
                                 f"{exc.strerror}") from None
            self._socket = publish_socket(front_path, Path(address.path), owner=access.owner,
                                          group=access.group, mode=access.mode)
            # (front.public stays the bound name, gone with the directory: stop() removes
            # the published socket, and only while it is still this server's)
            front.start()
            self.front = front

    def stop(self, grace: float | None) -> None:
        """Stop serving (open calls are cancelled after ``grace`` seconds) and remove the
        Unix socket; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if self.front is not None and self._thread.is_alive():
                self._call(self.front.close())
            if self._server is not None and self._thread.is_alive():
                self._call(self._server.stop(grace), grace or 0.0)
        finally:
            if self._private is not None:
                shutil.rmtree(self._private, ignore_errors=True)
            if self._thread.is_alive():
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(START_TIMEOUT_S)
            if not self._thread.is_alive():
                self._loop.close()
            self.channel.pool.shutdown(wait=False)
            self._remove_socket()

    def _remove_socket(self) -> None:
        if self._socket is not None:
            remove_socket(Path(self.address.path), self._socket)


def serve_channel(agent: Agent, vnic: str, address: ChannelAddress,
                  workers: int | None = None) -> ChannelServer:
    """Start the channel server of ``vnic`` on ``address``, with the access, TLS and
    limits the host configuration gives the VNIC."""
    try:
        config: VnicConfig = agent.config.vnic(vnic)
    except ConfigError as exc:
        raise AgentError(grpc.StatusCode.NOT_FOUND, str(exc)) from None
    where = f"VNIC {vnic}"
    tls = config.channel_tls if address.kind == "tcp" else None
    if address.kind == "tcp" and tls is None and not config.insecure_tcp:
        raise AgentError(grpc.StatusCode.FAILED_PRECONDITION,
                         f"{where}: a TCP channel ({address}) needs channel_tls in the host "
                         "configuration (or insecure_tcp on loopback, for tests)")
    limits = config.channel_limits
    size = message_bytes(limits, agent.state(vnic).config.quotas)
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", size),
        ("grpc.so_reuseport", 0),  # no second server (of another user) on the same port
    ]
    channel = VnicChannel(agent, vnic, tls_client=None if tls is None else tls.client,
                          watch_streams_per_peer=limits.watch_streams_per_peer,
                          workers=workers or limits.workers,
                          rate=RateLimit(limits.requests_per_second, limits.request_burst),
                          byte_rate=RateLimit(float(limits.bytes_per_second), size))
    server = ChannelServer(vnic, address, channel, connections=limits.connections).start(
        options, config.channel_access, tls, where)
    _log.info("VNIC %s: guest channel on %s%s (requests up to %d bytes)", vnic, address,
              f", TLS for {tls.client!r}" if tls else "", size)
    return server


def serve_all(agent: Agent) -> dict[str, ChannelServer]:
    """A channel server for every configured VNIC that has a channel address."""
    servers: dict[str, ChannelServer] = {}
    try:
        for vnic in agent.config.vnics:
            if vnic.channel is not None:
                servers[vnic.name] = serve_channel(agent, vnic.name, vnic.channel)
    except BaseException:
        for server in servers.values():
            server.stop(None)
        raise
    return servers
