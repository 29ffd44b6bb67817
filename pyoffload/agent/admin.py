"""The agent's admin endpoint: what ``pyoffload status`` shows.

A gRPC service on a Unix socket (root-only by default) whose messages are
JSON documents, so the CLI needs no protobuf schema of its own and the
answer is easy to script against (``pyoffload status --json``).
"""

from __future__ import annotations

import itertools
import json
import os
import pwd
import shutil
import socket
import stat
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

from pyoffload.agent.core import Agent
from pyoffload.agent.errors import AgentError
from pyoffload.agent.handover import ImportResult, from_document, to_document
from pyoffload.agent.session import ports_owner
from pyoffload.agent.unixsocket import private_directory, publish_socket, remove_socket
from pyoffload.errors import PyoffloadError
from pyoffload.rules import Dnat, LoadBalance, Snat, Verdict

SERVICE = "pyoffload.admin.v1.Admin"
DEFAULT_ADMIN = "unix:/run/pyoffload/admin.sock"
MESSAGE_LIMITS = [("grpc.max_send_message_length", 1 << 30),
                  ("grpc.max_receive_message_length", 1 << 30)]
"""An export of a million connections is ~110 MiB of JSON; gRPC's default limit is 4 MiB.
The endpoint is a local, root-only socket, so a large limit exposes nothing."""


class ExportBrokeOff(PyoffloadError):
    """The source of a streamed import failed midway (its error is the message)."""


def encode_json(value: Any) -> bytes:
    """An admin message on the wire: a JSON document (so clients need no schema)."""
    return json.dumps(value, sort_keys=True).encode()


def decode_json(data: bytes) -> Any:
    return json.loads(data.decode() or "null")


def _action_text(action: object) -> str:
    if isinstance(action, Verdict):
        return action.value
    if isinstance(action, Snat):
        return f"snat {action.address} ports {action.ports}"
    if isinstance(action, Dnat):
        return f"dnat {action.address}" + (f":{action.port}" if action.port else "")
    if isinstance(action, LoadBalance):
        return f"lb {action.vip}:{action.port} -> {len(action.backends)} backends"
    return type(action).__name__


def status_document(agent: Agent) -> dict[str, Any]:
    """Target connection, VNICs with flows/rules/counters, table occupancy."""
    target = agent.target_status()
    vnics: list[dict[str, Any]] = []
    for name in agent.vnic_names():
        state = agent.state(name)
        counters: dict[tuple[str, str], tuple[int, int]] = {}
        flow_counters: dict[str, tuple[int, int]] = {}
        error = ""
        if state.compiled is not None:
            try:
                stats = agent.stats(name)
                counters = {(r.flow_id, r.rule_id): (r.packets, r.bytes) for r in stats.rules}
                flow_counters = dict(stats.flows)
                if stats.missing:
                    error = (f"{len(stats.missing)} rule(s) missing on the target (being "
                             "repaired): " + ", ".join(f"{f}/{r}" for f, r in stats.missing[:5]))
            except AgentError as exc:
                error = exc.message
        flows = []
        for flow in state.request.flows:
            flows.append({
                "id": flow.id,
                "services": sorted(s.value for s in flow.config.services),
                "default": flow.config.default_verdict.value,
                "counter": flow_counters.get(flow.id),
                "rules": [
                    {"id": rule.id, "action": _action_text(rule.action),
                     "counter": counters.get((flow.id, rule.id))}
                    for rule in flow.rules
                ],
            })
        vnics.append({
            "name": name,
            "id": state.config.id,
            "ports": [state.config.guest_port, state.config.uplink_port],
            "policy": state.config.default_policy,
            "channel": str(state.config.channel) if state.config.channel else None,
            "generation": state.generation,
            "drift_repairs": target.repairs_by_owner.get(name, 0)
            + target.repairs_by_owner.get(ports_owner(name), 0),
            "checkpoint": _checkpoint(agent, name),
            "flows": flows,
            "error": error,
        })
    return {
        "target": {
            "address": target.address,
            "device_id": agent.session.device_id,
            "connected": target.connected,
            "role": "primary" if target.primary else "backup",
            "reconnects": target.reconnects,
            "last_reconnect": target.last_reconnect,
            "last_reconcile": target.last_reconcile,
            "drift_repairs": target.drift_repairs,
            "last_error": target.last_error,
        },
        "vnics": vnics,
        "occupancy": _occupancy(agent),
        "drops": _drops(agent),
        "connection_quota_reached": [name for name in agent.vnic_names()
                                     if agent.state(name).at_connection_quota],
    }


def _checkpoint(agent: Agent, vnic: str) -> dict[str, Any] | None:
    """The VNIC's last connection checkpoint: how many, and how old (None: no state file)."""
    if agent.checkpoints is None:
        return None
    last = agent.checkpoints.status(vnic)
    return {"connections": last.connections,
            "age_s": None if last.taken is None else round(time.time() - last.taken, 3)}


def _import_answer(result: ImportResult) -> dict[str, Any]:
    return {"imported": result.imported, "present": result.present,
            "overflow": result.overflow, "skipped": list(result.skipped)}


def _occupancy(agent: Agent) -> dict[str, list[int]] | None:
    """Entries and size of every table, read from the target; None while it is away (the
    status is what an operator reads then: it must not fail)."""
    try:
        return {table: list(use) for table, use in sorted(agent.occupancy().items())}
    except AgentError:
        return None


def _drops(agent: Agent) -> dict[str, int] | None:
    """Packets the pipeline dropped, by reason; None while the target is away."""
    try:
        return agent.drops()
    except AgentError:
        return None


def flows_document(agent: Agent, vnic: str | None) -> dict[str, Any]:
    """Live tracked connections, like ``conntrack -L``."""
    rows = []
    names = agent.names_of()
    for conn in agent.connections(vnic):
        owner, flow = names.get(conn.flow_id, (str(conn.vnic_id), str(conn.flow_id)))
        rows.append({
            "vnic": owner, "flow": flow,
            "protocol": conn.protocol, "src": conn.src, "sport": conn.sport,
            "dst": conn.dst, "dport": conn.dport, "state": conn.state,
            "expires_in_s": round(conn.expires_in_s, 1),
            "translated_src": conn.translated_src, "translated_dst": conn.translated_dst,
            "slot": conn.slot,
        })
    return {"connections": rows}


class AdminServer:
    """The running admin endpoint; ``stop`` also removes its socket (if still its own)."""

    def __init__(self, server: grpc.Server, path: Path, ident: tuple[int, int]) -> None:
        self.server, self.path, self._ident = server, path, ident

    def stop(self, grace: float | None) -> None:
        self.server.stop(grace)
        remove_socket(self.path, self._ident)


def serve_admin(agent: Agent, address: str = DEFAULT_ADMIN) -> AdminServer:
    """Serve the admin endpoint on a Unix socket (``unix:PATH``): the agent's user's alone
    (0600), set up like a guest channel's (see ``unixsocket``)."""
    if not address.startswith("unix:"):
        raise ValueError(f"the admin endpoint is a Unix socket (unix:PATH), not {address!r}")
    path = Path(address.removeprefix("unix:"))
    private = private_directory(path)

    def status(request: Any, context: grpc.ServicerContext) -> Any:
        return status_document(agent)

    def flows(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return flows_document(agent, (request or {}).get("vnic"))
        except AgentError as exc:
            context.abort(exc.code, exc.message)

    def export(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            connections = agent.export_state(str((request or {}).get("vnic", "")))
        except AgentError as exc:
            context.abort(exc.code, exc.message)
        return to_document(connections)

    def import_(request: Any, context: grpc.ServicerContext) -> Any:
        request = request if isinstance(request, dict) else {}
        try:
            connections = from_document(request)
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed export: {exc}")
        try:
            result = agent.import_state(str(request.get("vnic", "")), connections)
        except AgentError as exc:
            context.abort(exc.code, exc.message)
        return _import_answer(result)

    def export_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            for chunk in agent.export_chunks(str((request or {}).get("vnic", ""))):
                yield to_document(chunk)
        except AgentError as exc:
            context.abort(exc.code, exc.message)

    def import_stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
        vnic: list[str] = []

        def chunks() -> Iterator[list[Any]]:
            for document in requests:
                document = document if isinstance(document, dict) else {}
                if "abort" in document:
                    raise ExportBrokeOff(str(document["abort"]))
                if "vnic" in document or not vnic:
                    vnic.append(str(document.get("vnic", "")))
                if vnic[0] != vnic[-1]:
                    raise ValueError(f"chunks name VNICs {vnic[0]!r} and {vnic[-1]!r}")
                if set(document) == {"vnic"}:
                    continue  # the header naming the VNIC (chunks may then leave it out)
                yield from_document(document)

        stream = chunks()
        try:
            first = next(stream)
        except StopIteration:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no connections were sent")
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed export: {exc}")
        try:
            result = agent.import_chunks(vnic[0], itertools.chain([first], stream))
        except AgentError as exc:
            context.abort(exc.code, exc.message)
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"malformed export, nothing was kept: {exc}")
        except ExportBrokeOff as exc:
            context.abort(grpc.StatusCode.ABORTED, f"the export broke off ({exc}): nothing "
                                                   "was kept")
        return _import_answer(result)

    handler = grpc.method_handlers_generic_handler(SERVICE, {
        "ExportStream": grpc.unary_stream_rpc_method_handler(
            export_stream, request_deserializer=decode_json, response_serializer=encode_json),
        "ImportStream": grpc.stream_unary_rpc_method_handler(
            import_stream, request_deserializer=decode_json, response_serializer=encode_json),
        "Export": grpc.unary_unary_rpc_method_handler(
            export, request_deserializer=decode_json, response_serializer=encode_json),
        "Import": grpc.unary_unary_rpc_method_handler(
            import_, request_deserializer=decode_json, response_serializer=encode_json),
        "Status": grpc.unary_unary_rpc_method_handler(
            status, request_deserializer=decode_json, response_serializer=encode_json),
        "Flows": grpc.unary_unary_rpc_method_handler(
            flows, request_deserializer=decode_json, response_serializer=encode_json),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), options=MESSAGE_LIMITS)
    server.add_generic_rpc_handlers((handler,))
    try:
        server.add_insecure_port(f"unix:{private}/s")
        server.start()
        ident = publish_socket(private / "s", path, mode=0o600)
    except BaseException:
        server.stop(None)
        shutil.rmtree(private, ignore_errors=True)
        raise
    return AdminServer(server, path, ident)


def why_unreachable(address: str) -> str | None:
    """Why the admin endpoint at ``address`` cannot be reached, from a plain connect to its
    socket (None if that connect works): gRPC says only UNAVAILABLE, whether no agent
    runs or the caller may not reach it (the socket is its owner's alone, mode 0600)."""
    if not address.startswith("unix:"):
        return f"{address} is not an admin endpoint (unix:PATH)"
    path = address.removeprefix("unix:")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except PermissionError:
            return (f"permission denied on {path}{_owner_and_mode(path)}: the admin endpoint "
                    "answers only the user the agent runs as; run this command as that user "
                    "(root by default)")
        except FileNotFoundError:
            return f"no agent: {path} does not exist; is `pyoffload up` running?"
        except ConnectionRefusedError:
            return (f"no agent listens on {path} (a socket an agent left when it stopped); "
                    "is `pyoffload up` running?")
        except OSError as exc:
            return f"cannot connect to {path}: {exc.strerror}"
    return None


def _owner_and_mode(path: str) -> str:
    try:
        info = os.stat(path)
    except OSError:  # a directory on the way is closed to the caller
        return " (a directory on its path is closed to you)"
    try:
        owner = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        owner = str(info.st_uid)
    return f" (owner {owner}, mode {stat.S_IMODE(info.st_mode):04o})"


def query(method: str, request: dict[str, Any] | None = None,
          address: str = DEFAULT_ADMIN, timeout: float = 10.0) -> dict[str, Any]:
    """Call a running agent's admin method (``Status`` or ``Flows``)."""
    with grpc.insecure_channel(address, options=MESSAGE_LIMITS) as channel:
        call = channel.unary_unary(f"/{SERVICE}/{method}", request_serializer=encode_json,
                                   response_deserializer=decode_json)
        result: dict[str, Any] = call(request or {}, timeout=timeout)
        return result


def migrate(vnic: str, source: str, destination: str, timeout: float = 600.0
            ) -> tuple[int, dict[str, Any]]:
    """Stream a VNIC's connections from one agent into another: (exported, import result).

    The source's chunks are forwarded as they arrive, so the destination writes
    the first while the source reads the next; they pass through as the bytes
    the source sent (decoding and re-encoding 100,000 rows here would cost
    ~0.3 s of CPU), after a first message naming the VNIC. The import is all
    or nothing.
    """
    with grpc.insecure_channel(source, options=MESSAGE_LIMITS) as src, \
            grpc.insecure_channel(destination, options=MESSAGE_LIMITS) as dst:
        export = src.unary_stream(f"/{SERVICE}/ExportStream", request_serializer=encode_json,
                                  response_deserializer=None)
        import_ = dst.stream_unary(f"/{SERVICE}/ImportStream", request_serializer=None,
                                   response_deserializer=decode_json)

        failure: list[grpc.RpcError] = []

        def chunks() -> Iterator[bytes]:
            yield encode_json({"vnic": vnic})
            sent = False
            try:
                for document in export({"vnic": vnic}, timeout=timeout):
                    sent = True
                    yield document
            except grpc.RpcError as exc:  # tell the destination to drop what it has
                failure.append(exc)
                yield encode_json({"abort": f"{exc.code().name}: {exc.details()}"})
                return
            if not sent:  # nothing live: still one (empty) chunk, so the import answers
                yield encode_json(to_document([]))

        try:
            result: dict[str, Any] = import_(chunks(), timeout=timeout)
        except grpc.RpcError:
            if failure:
                raise failure[0] from None  # the source's error is the one to show
            raise
    # Every connection sent was imported, found already there, or skipped (and why).
    exported = result["imported"] + result["present"] + len(result["skipped"])
    return exported, result


def query_status(address: str = DEFAULT_ADMIN, timeout: float = 5.0) -> dict[str, Any]:
    """Ask a running agent for its status document."""
    return query("Status", address=address, timeout=timeout)
