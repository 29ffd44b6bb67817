"""Client arbitration: which stream is the primary controller of a role.

Implements the rules of the P4Runtime spec ("Client Arbitration and Controller
Replication"): per (device_id, role) the server remembers the highest election
id it has ever seen; the live controller holding exactly that id is the
primary, every other one a backup. An unset election id never wins. Every
change of primary is announced to all controllers of the role; a controller
that stays a backup hears only about itself.

The arbiter knows nothing about gRPC: a controller is anything with a `send`
callable for stream responses.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from finsy.proto import p4r, rpc_code, rpc_status
from google.protobuf import any_pb2

from .errors import StatusError, invalid, not_found

Send = Callable[[p4r.StreamMessageResponse], None]


class Controller:
    """One StreamChannel, once it has sent a valid MasterArbitrationUpdate.

    `peer` is the gRPC peer of the stream's connection and `identity` the
    client's authenticated identity (its TLS certificate's names), if any: a
    Write must come from the same connection and identity as the primary's
    stream.
    """

    __slots__ = ("device_id", "election_id", "identity", "notify", "peer", "role", "send")

    def __init__(self, send: Send, *, notify: Send | None = None, peer: str = "",
                 identity: tuple[bytes, ...] | None = None) -> None:
        self.send = send
        self.notify = notify or send
        """How it is told of a change another controller caused (may wait its turn)."""
        self.peer = peer
        self.identity = identity
        self.device_id: int | None = None
        self.role = ""
        self.election_id: int | None = None

    @property
    def arbitrated(self) -> bool:
        return self.device_id is not None


@dataclass(slots=True)
class _Role:
    controllers: list[Controller] = field(default_factory=list)
    highest: int | None = None
    config: any_pb2.Any | None = None

    def primary(self) -> Controller | None:
        if self.highest is None:
            return None
        for ctrl in self.controllers:
            if ctrl.election_id == self.highest:
                return ctrl
        return None


def election_id_of(msg: p4r.MasterArbitrationUpdate | p4r.WriteRequest
                   | p4r.SetForwardingPipelineConfigRequest) -> int | None:
    """The 128-bit election id of a message, or None when unset."""
    if not msg.HasField("election_id"):
        return None
    return (msg.election_id.high << 64) | msg.election_id.low


class Arbiter:
    """Arbitration state of every (device_id, role) served by one server."""

    def __init__(self, device_ids: frozenset[int]) -> None:
        self._device_ids = device_ids
        self._lock = threading.Lock()
        self._roles: dict[tuple[int, str], _Role] = {}

    def update(self, ctrl: Controller, msg: p4r.MasterArbitrationUpdate) -> None:
        """Apply a MasterArbitrationUpdate; raise to terminate the stream."""
        role_name = msg.role.name
        election_id = election_id_of(msg)
        if msg.role.HasField("config"):
            raise invalid("role.config: no role configuration scheme is supported; leave it unset")
        with self._lock:
            if not ctrl.arbitrated:
                if msg.device_id not in self._device_ids:
                    raise not_found(f"unknown device_id {msg.device_id}")
            else:
                if msg.device_id != ctrl.device_id:
                    raise StatusError(
                        rpc_code.FAILED_PRECONDITION,
                        f"device_id {msg.device_id} differs from this stream's {ctrl.device_id}",
                    )
                if role_name != ctrl.role:
                    raise StatusError(
                        rpc_code.FAILED_PRECONDITION,
                        f"role {role_name!r} differs from this stream's {ctrl.role!r}",
                    )
            role = self._roles.setdefault((msg.device_id, role_name), _Role())
            if election_id is not None and any(
                c is not ctrl and c.election_id == election_id for c in role.controllers
            ):
                raise invalid(f"election_id {election_id} is already used by another controller")
            old_primary = role.primary()
            ctrl.device_id = msg.device_id
            ctrl.role = role_name
            ctrl.election_id = election_id
            if ctrl not in role.controllers:
                role.controllers.append(ctrl)
            if election_id is not None and (role.highest is None or election_id >= role.highest):
                role.highest = election_id
                self._notify(msg.device_id, role_name, role, role.controllers, ctrl)
            elif old_primary is ctrl:
                self._notify(msg.device_id, role_name, role, role.controllers, ctrl)
            else:
                self._notify(msg.device_id, role_name, role, [ctrl], ctrl)

    def remove(self, ctrl: Controller) -> None:
        """Forget a closed stream; announce the loss if it was the primary."""
        if not ctrl.arbitrated:
            return
        assert ctrl.device_id is not None
        with self._lock:
            role = self._roles.get((ctrl.device_id, ctrl.role))
            if role is None or ctrl not in role.controllers:
                return
            was_primary = role.primary() is ctrl
            role.controllers.remove(ctrl)
            if was_primary:
                self._notify(ctrl.device_id, ctrl.role, role, role.controllers)

    def check_primary(self, device_id: int, role_name: str, election_id: int | None
                      ) -> Controller:
        """The current primary named by (device_id, role, election_id); raise if none."""
        if device_id not in self._device_ids:
            raise not_found(f"unknown device_id {device_id}")
        with self._lock:
            role = self._roles.get((device_id, role_name))
            if role is None and role_name:
                raise not_found(f"unknown role {role_name!r}")
            primary = role.primary() if role else None
            if primary is None or election_id is None or primary.election_id != election_id:
                raise StatusError(
                    rpc_code.PERMISSION_DENIED,
                    f"election_id {election_id} is not the primary of role {role_name!r} "
                    f"on device {device_id}",
                )
            return primary

    def primaries(self, device_id: int) -> list[Controller]:
        """The primary of every role of a device (receivers of packet-in and notifications)."""
        with self._lock:
            out = []
            for (dev, _), role in self._roles.items():
                if dev == device_id:
                    primary = role.primary()
                    if primary is not None:
                        out.append(primary)
            return out

    @staticmethod
    def _notify(device_id: int, role_name: str, role: _Role, targets: list[Controller],
                asking: Controller | None = None) -> None:
        """Tell ``targets`` the role's state: ``asking``, whose update this answers, at
        once, the others when their turn comes. Every backup gets the same message (sent
        messages are not changed), so telling 1,000 controllers builds three."""
        primary = role.primary()
        built: dict[int, p4r.StreamMessageResponse] = {}
        for ctrl in targets:
            if primary is None:
                code, said = rpc_code.NOT_FOUND, "no primary controller"
            elif ctrl is primary:
                code, said = rpc_code.OK, "primary"
            else:
                code, said = rpc_code.ALREADY_EXISTS, "backup controller"
            message = built.get(code)
            if message is None:
                message = built[code] = _update(device_id, role_name, role.highest, code, said)
            (ctrl.send if ctrl is asking else ctrl.notify)(message)


def _update(device_id: int, role_name: str, highest: int | None, code: int, said: str
            ) -> p4r.StreamMessageResponse:
    update = p4r.MasterArbitrationUpdate(device_id=device_id)
    if role_name:
        update.role.name = role_name
    if highest is not None:
        update.election_id.high = highest >> 64
        update.election_id.low = highest & ((1 << 64) - 1)
    update.status.CopyFrom(rpc_status.Status(code=code, message=said))
    return p4r.StreamMessageResponse(arbitration=update)
