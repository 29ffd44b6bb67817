"""The guest channel: an ``OffloadChannel`` gRPC server per VNIC.

Each server is bound to exactly one VNIC when it is created; nothing a guest
sends can name another (a request naming another VNIC is refused), and every
entity compiled from it carries the bound VNIC's id. Unix sockets are the
default; TCP on loopback and AF_VSOCK (for real VMs) by configuration.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path

import grpc
from guest_shim.address import ChannelAddress
from guest_shim.client import AGENT_ANSWER
from guest_shim.service import add_servicer

from guest_shim import offload_pb2 as pb
from pyoffload.agent.core import Agent
from pyoffload.agent.errors import AgentError
from pyoffload.bulk import no_cyclic_gc
from pyoffload.rules import RuleError, from_proto, to_proto

_log = logging.getLogger(__name__)


COMMIT_MARGIN = 0.05
"""Seconds a guest's deadline must still leave when an apply is committed: its answer
must reach the guest in time, or the guest would be told DEADLINE_EXCEEDED about rules
that are in force."""


def _abort(context: grpc.ServicerContext, exc: AgentError) -> None:
    context.set_trailing_metadata(((AGENT_ANSWER, "refused"),))
    context.abort(exc.code, exc.message)


def still_waiting(context: grpc.ServicerContext) -> Callable[[], bool]:
    """Whether the guest still waits for the answer, with time to receive it."""
    def check() -> bool:
        left = context.time_remaining()
        return bool(context.is_active()) and (left is None or left > COMMIT_MARGIN)
    return check


class VnicChannel:
    """Serves one VNIC's guest; implements guest_shim's OffloadChannelServicer."""

    def __init__(self, agent: Agent, vnic: str) -> None:
        self.agent = agent
        self.vnic = vnic

    def Apply(self, request: pb.ApplyRequest, context: grpc.ServicerContext) -> pb.ApplyReply:
        with no_cyclic_gc():  # thousands of rules: bulk work, see pyoffload.bulk
            try:
                model = from_proto(request.request)
            except RuleError as exc:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            try:
                outcome = self.agent.apply(self.vnic, model, still_wanted=still_waiting(context))
            except AgentError as exc:
                _abort(context, exc)
            reply = pb.ApplyReply(generation=outcome.generation)
            add = reply.results.add
            for flow in model.flows:
                for rule in flow.rules:
                    add(flow_id=flow.id, rule_id=rule.id, installed=True)
            for warning in outcome.warnings:
                add(installed=True, error=f"warning: {warning}")
            return reply

    def Withdraw(self, request: pb.WithdrawRequest,
                 context: grpc.ServicerContext) -> pb.WithdrawReply:
        if request.all and request.flow_ids:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "withdraw: give flow ids or all, not both")
        try:
            removed = self.agent.withdraw(self.vnic, None if request.all else request.flow_ids,
                                          still_wanted=still_waiting(context))
        except AgentError as exc:
            _abort(context, exc)
        return pb.WithdrawReply(generation=self.agent.state(self.vnic).generation,
                                withdrawn=removed)

    def Get(self, request: pb.GetRequest, context: grpc.ServicerContext) -> pb.GetReply:
        state = self.agent.state(self.vnic)
        return pb.GetReply(request=to_proto(state.request))

    def Stats(self, request: pb.StatsRequest, context: grpc.ServicerContext) -> pb.StatsReply:
        try:
            stats = self.agent.stats(self.vnic)
        except AgentError as exc:
            _abort(context, exc)
        wanted = set(request.flow_ids)
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

    def Watch(self, request: pb.WatchRequest,
              context: grpc.ServicerContext) -> Iterator[pb.Event]:
        stop = threading.Event()
        context.add_callback(stop.set)
        yield from self.agent.events.subscribe(self.vnic, stop)


def serve_channel(agent: Agent, vnic: str, address: ChannelAddress,
                  workers: int = 4) -> grpc.Server:
    """Start the channel server of ``vnic`` on ``address``."""
    if address.kind == "unix":
        path = Path(address.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_socket():
            path.unlink()  # a stale socket from an agent that did not stop cleanly
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers,
                                                    thread_name_prefix=f"channel-{vnic}"))
    add_servicer(server, VnicChannel(agent, vnic))
    try:
        bound = server.add_insecure_port(address.listen_address)
    except RuntimeError as exc:
        raise AgentError(grpc.StatusCode.UNAVAILABLE,
                         f"VNIC {vnic}: cannot serve its channel on {address}: {exc}") from None
    if address.kind == "tcp" and bound == 0:
        raise AgentError(grpc.StatusCode.UNAVAILABLE,
                         f"VNIC {vnic}: cannot serve its channel on {address} (in use?)")
    server.start()
    if address.kind == "unix":
        os.chmod(address.path, 0o660)
    _log.info("VNIC %s: guest channel on %s", vnic, address)
    return server


def serve_all(agent: Agent) -> dict[str, grpc.Server]:
    """A channel server for every configured VNIC that has a channel address."""
    servers: dict[str, grpc.Server] = {}
    try:
        for vnic in agent.config.vnics:
            if vnic.channel is not None:
                servers[vnic.name] = serve_channel(agent, vnic.name, vnic.channel)
    except BaseException:
        for server in servers.values():
            server.stop(None)
        raise
    return servers
