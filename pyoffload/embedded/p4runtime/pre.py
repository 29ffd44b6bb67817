"""PacketReplicationEngineEntry: multicast groups and clone sessions.

The limits and answers are BMv2's (its P4Runtime server, PI), so that a
controller tested here behaves the same there; where they are PI's choices
rather than P4Runtime's rules, API.md lists them:

- PI programs a clone session with replicas as the multicast group
  32768 + session id, so multicast group ids from 32768 up are OUT_OF_RANGE
  (writes, and reads naming one), and clone session ids must be in [1, 32767]
  (INVALID_ARGUMENT for every update type).
- A replica needs a port (INVALID_ARGUMENT); backup replicas are accepted and
  ignored (BMv2 programs the primary replica only); an instance takes 32 bits
  and the data plane sees its low 16 (v1model's `egress_rid`); a replica to a
  port beyond v1model's 9 bits is accepted and never sends anything (no such
  port), so it is not given to the engine.
- Clone sessions: class_of_service other than 0 is UNIMPLEMENTED, and
  packet_length_bytes other than 0 (taken modulo 2**16, as PI casts it) is
  UNKNOWN: BMv2 does not truncate clones.
- Reading one group or session that does not exist fails with NOT_FOUND.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from finsy.proto import p4r

from .codec import decode_uint
from .engine_api import PipelineStateLike
from .errors import StatusError, already_exists, invalid, not_found, unimplemented

Undo = list[Callable[[], None]] | None
INSERT, MODIFY, DELETE = p4r.Update.INSERT, p4r.Update.MODIFY, p4r.Update.DELETE
PORT_BITS = 32
V1MODEL_PORT_BITS = 9
RID_BITS = 16
FIRST_RESERVED_GROUP = 1 << 15
"""PI: the multicast groups from here on belong to clone sessions."""
MAX_SESSION = (1 << 15) - 1
_OUT_OF_RANGE, _UNKNOWN = 11, 2


def _replicas(replicas: Iterable[p4r.Replica], where: str) -> list[tuple[int, int]]:
    """The (port, instance) pairs of P4Runtime replicas, checked as PI checks them."""
    out: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    for r in replicas:
        kind = r.WhichOneof("port_kind")
        if kind is None:
            raise invalid(f"{where}: a replica has no port (egress_port or port)")
        if kind == "port":
            port = decode_uint(r.port, PORT_BITS, f"{where}: replica port")
        else:
            port = r.egress_port
        pair = (port, r.instance)
        if pair in seen:
            raise invalid(f"{where}: replica (port {port}, instance {r.instance}) is repeated")
        seen.add(pair)
        out.append(pair)
    return out


def _engine_replicas(replicas: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """What the data plane gets: ports it has, instances cut to `egress_rid`'s 16 bits."""
    out: dict[tuple[int, int], None] = {}
    for port, instance in replicas:
        if not port >> V1MODEL_PORT_BITS:
            out[(port, instance & ((1 << RID_BITS) - 1))] = None
    return list(out)


def _check_group_id(gid: int) -> None:
    if gid == 0:
        raise invalid("multicast_group_id must not be 0")
    if gid >= FIRST_RESERVED_GROUP:
        raise StatusError(_OUT_OF_RANGE, f"multicast group {gid}: ids from "
                          f"{FIRST_RESERVED_GROUP} are those of clone sessions (BMv2: "
                          "\"Group id value is too high\")")


def _check_session(msg: p4r.CloneSessionEntry, where: str) -> None:
    """BMv2 (simple_switch) has no classes of service for clones and does not truncate."""
    if msg.class_of_service:
        raise unimplemented(f"{where}: class_of_service is not supported (BMv2 neither)")
    if msg.packet_length_bytes & 0xFFFF:
        raise StatusError(_UNKNOWN, f"{where}: packet_length_bytes must be 0: clones are "
                          "not truncated (BMv2 answers UNKNOWN too)")


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
        _check_group_id(gid)
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
        pre.set_multicast_group(gid, _engine_replicas(_replicas(msg.replicas, where)))
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
        self._state.pre.set_multicast_group(gid, _engine_replicas(_replicas(entry.replicas, "")))
        self.groups[gid] = entry

    def _drop_group(self, gid: int) -> None:
        self._state.pre.delete_multicast_group(gid)
        del self.groups[gid]

    def _write_session(self, kind: int, msg: p4r.CloneSessionEntry, undo: Undo) -> None:
        sid = msg.session_id
        where = f"clone session {sid}"
        if sid == 0:
            raise invalid("session_id must not be 0")
        if sid > MAX_SESSION:
            raise invalid(f"{where}: session ids are in [1, {MAX_SESSION}]")
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
        replicas = _engine_replicas(_replicas(msg.replicas, where))
        _check_session(msg, where)
        pre.set_clone_session(sid, replicas)
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
            entry.session_id, _engine_replicas(_replicas(entry.replicas, "")))
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
            if gid >= FIRST_RESERVED_GROUP:
                _check_group_id(gid)
            if gid and gid not in self.groups:
                raise not_found(f"multicast group {gid} does not exist")
            for key, group in sorted(self.groups.items()):
                if gid in (0, key):
                    entity = p4r.Entity()
                    entity.packet_replication_engine_entry.multicast_group_entry.CopyFrom(group)
                    yield entity
        else:
            sid = msg.clone_session_entry.session_id
            if sid and sid not in self.sessions:
                raise not_found(f"clone session {sid} does not exist")
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
