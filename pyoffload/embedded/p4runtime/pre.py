"""PacketReplicationEngineEntry: multicast groups and clone sessions.

v1model's replication id (`egress_rid`) is 16 bits, so replica instances are
checked against that. Backup replicas are optional in the spec and not
supported (UNIMPLEMENTED), as the spec prescribes for such targets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from finsy.proto import p4r

from .codec import decode_uint
from .engine_api import PipelineStateLike
from .errors import already_exists, invalid, not_found, unimplemented

Undo = list[Callable[[], None]] | None
INSERT, MODIFY, DELETE = p4r.Update.INSERT, p4r.Update.MODIFY, p4r.Update.DELETE
PORT_BITS = 32
INSTANCE_BITS = 16


def _replicas(replicas: Iterable[p4r.Replica], where: str) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    for r in replicas:
        if len(r.backup_replicas):
            raise unimplemented(f"{where}: backup replicas are not supported")
        if r.WhichOneof("port_kind") == "port":
            port = decode_uint(r.port, PORT_BITS, f"{where}: replica port")
        else:
            port = r.egress_port
        if r.instance >> INSTANCE_BITS:
            raise invalid(f"{where}: replica instance {r.instance} exceeds 16 bits")
        pair = (port, r.instance)
        if pair in seen:
            raise invalid(f"{where}: replica (port {port}, instance {r.instance}) is repeated")
        seen.add(pair)
        out.append(pair)
    return out


class PreStore:
    """Multicast groups and clone sessions of one pipeline, with what Read returns."""

    def __init__(self, state: PipelineStateLike) -> None:
        self._state = state
        self.groups: dict[int, p4r.MulticastGroupEntry] = {}
        self.sessions: dict[int, p4r.CloneSessionEntry] = {}

    def write(self, kind: int, msg: p4r.PacketReplicationEngineEntry, undo: Undo) -> None:
        which = msg.WhichOneof("type")
        if which == "multicast_group_entry":
            self._write_group(kind, msg.multicast_group_entry, undo)
        elif which == "clone_session_entry":
            self._write_session(kind, msg.clone_session_entry, undo)
        else:
            raise invalid("PacketReplicationEngineEntry: no entry type set")

    def _write_group(self, kind: int, msg: p4r.MulticastGroupEntry, undo: Undo) -> None:
        gid = msg.multicast_group_id
        where = f"multicast group {gid}"
        if gid == 0:
            raise invalid("multicast_group_id must not be 0")
        pre = self._state.pre
        old = self.groups.get(gid)
        _check_update(kind, old is not None, where)
        if kind == DELETE:
            assert old is not None
            pre.delete_multicast_group(gid)
            del self.groups[gid]
            if undo is not None:
                undo.append(lambda: self._set_group(old))
            return
        pre.set_multicast_group(gid, _replicas(msg.replicas, where))
        stored = p4r.MulticastGroupEntry()
        stored.CopyFrom(msg)
        self.groups[gid] = stored
        if undo is not None:
            if old is None:
                undo.append(lambda: self._drop_group(gid))
            else:
                undo.append(lambda: self._set_group(old))

    def _set_group(self, entry: p4r.MulticastGroupEntry) -> None:
        gid = entry.multicast_group_id
        self._state.pre.set_multicast_group(gid, _replicas(entry.replicas, ""))
        self.groups[gid] = entry

    def _drop_group(self, gid: int) -> None:
        self._state.pre.delete_multicast_group(gid)
        del self.groups[gid]

    def _write_session(self, kind: int, msg: p4r.CloneSessionEntry, undo: Undo) -> None:
        sid = msg.session_id
        where = f"clone session {sid}"
        if sid == 0:
            raise invalid("session_id must not be 0")
        if msg.packet_length_bytes < 0:
            raise invalid(f"{where}: packet_length_bytes must not be negative")
        pre = self._state.pre
        old = self.sessions.get(sid)
        _check_update(kind, old is not None, where)
        if kind == DELETE:
            assert old is not None
            pre.delete_clone_session(sid)
            del self.sessions[sid]
            if undo is not None:
                undo.append(lambda: self._set_session(old))
            return
        pre.set_clone_session(sid, _replicas(msg.replicas, where), msg.class_of_service,
                              msg.packet_length_bytes)
        stored = p4r.CloneSessionEntry()
        stored.CopyFrom(msg)
        self.sessions[sid] = stored
        if undo is not None:
            if old is None:
                undo.append(lambda: self._drop_session(sid))
            else:
                undo.append(lambda: self._set_session(old))

    def _set_session(self, entry: p4r.CloneSessionEntry) -> None:
        self._state.pre.set_clone_session(
            entry.session_id, _replicas(entry.replicas, ""), entry.class_of_service,
            entry.packet_length_bytes,
        )
        self.sessions[entry.session_id] = entry

    def _drop_session(self, sid: int) -> None:
        self._state.pre.delete_clone_session(sid)
        del self.sessions[sid]

    def read(self, msg: p4r.PacketReplicationEngineEntry) -> Iterator[p4r.Entity]:
        which = msg.WhichOneof("type")
        if which is None:
            raise invalid("PacketReplicationEngineEntry: set multicast_group_entry or "
                          "clone_session_entry")
        if which == "multicast_group_entry":
            gid = msg.multicast_group_entry.multicast_group_id
            for key, group in sorted(self.groups.items()):
                if gid in (0, key):
                    entity = p4r.Entity()
                    entity.packet_replication_engine_entry.multicast_group_entry.CopyFrom(group)
                    yield entity
        else:
            sid = msg.clone_session_entry.session_id
            for key, session in sorted(self.sessions.items()):
                if sid in (0, key):
                    entity = p4r.Entity()
                    entity.packet_replication_engine_entry.clone_session_entry.CopyFrom(session)
                    yield entity


def _check_update(kind: int, exists: bool, where: str) -> None:
    """The P4Runtime error for an insert of what exists or a change of what does not."""
    if kind not in (INSERT, MODIFY, DELETE):
        raise invalid("update type must be INSERT, MODIFY or DELETE")
    if kind == INSERT and exists:
        raise already_exists(f"{where} already exists")
    if kind != INSERT and not exists:
        raise not_found(f"{where} does not exist")
