"""The packet replication engine: multicast groups and clone (mirror) sessions."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidValue, NotFound

Replicas = list[tuple[int, int]]  # (egress port, replication id)


@dataclass(frozen=True, slots=True)
class CloneSession:
    """A clone session: where copies go, and the P4Runtime attributes kept for read-back."""

    replicas: tuple[tuple[int, int], ...]
    class_of_service: int = 0
    packet_length_bytes: int = 0


def _check_replicas(what: str, replicas: Replicas, port_bits: int) -> tuple[tuple[int, int], ...]:
    seen = set()
    for port, rid in replicas:
        if not 0 <= port < (1 << port_bits):
            raise InvalidValue(f"{what}: port {port} out of range")
        if not 0 <= rid < 1 << 16:
            raise InvalidValue(f"{what}: replication id {rid} out of range")
        if (port, rid) in seen:
            raise InvalidValue(f"{what}: replica ({port}, {rid}) listed twice")
        seen.add((port, rid))
    return tuple((int(p), int(r)) for p, r in replicas)


class Pre:
    """Multicast groups (by group id) and clone sessions (by session id)."""

    def __init__(self, port_bits: int = 9) -> None:
        self._groups: dict[int, tuple[tuple[int, int], ...]] = {}
        self._sessions: dict[int, CloneSession] = {}
        self._port_bits = port_bits

    def set_multicast_group(self, gid: int, replicas: Replicas) -> None:
        if not 1 <= gid < 1 << 16:
            raise InvalidValue(f"multicast group id {gid} out of range [1, 65535]")
        self._groups[gid] = _check_replicas(f"multicast group {gid}", replicas, self._port_bits)

    def delete_multicast_group(self, gid: int) -> None:
        if self._groups.pop(gid, None) is None:
            raise NotFound(f"no multicast group {gid}")

    def multicast_group(self, gid: int) -> Replicas:
        g = self._groups.get(gid)
        if g is None:
            raise NotFound(f"no multicast group {gid}")
        return list(g)

    def multicast_groups(self) -> dict[int, Replicas]:
        return {k: list(v) for k, v in sorted(self._groups.items())}

    def replicate(self, gid: int) -> tuple[tuple[int, int], ...]:
        return self._groups.get(gid, ())

    def set_clone_session(
        self,
        sid: int,
        replicas: Replicas,
        class_of_service: int = 0,
        packet_length_bytes: int = 0,
    ) -> None:
        if not 0 <= sid < 1 << 15:
            raise InvalidValue(f"clone session id {sid} out of range [0, 32767]")
        if packet_length_bytes < 0 or class_of_service < 0:
            raise InvalidValue(f"clone session {sid}: negative attribute")
        reps = _check_replicas(f"clone session {sid}", replicas, self._port_bits)
        self._sessions[sid] = CloneSession(reps, class_of_service, packet_length_bytes)

    def delete_clone_session(self, sid: int) -> None:
        if self._sessions.pop(sid, None) is None:
            raise NotFound(f"no clone session {sid}")

    def clone_session(self, sid: int) -> CloneSession:
        s = self._sessions.get(sid)
        if s is None:
            raise NotFound(f"no clone session {sid}")
        return s

    def clone_sessions(self) -> dict[int, CloneSession]:
        return dict(sorted(self._sessions.items()))

    def session(self, sid: int) -> CloneSession | None:
        return self._sessions.get(sid)

    def clear(self) -> None:
        self._groups.clear()
        self._sessions.clear()
