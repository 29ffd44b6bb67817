"""ActionProfileMember and ActionProfileGroup entities.

P4Runtime member and group ids are chosen by the client; the engine hands out
its own handles. This module keeps the mapping, the reference counts the spec
needs (a member in a group or a table entry, a group in a table entry, cannot
be deleted: FAILED_PRECONDITION) and what a Read must return.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from finsy.proto import p4r, rpc_code

from .actions import ActionCodec
from .engine_api import PipelineStateLike
from .errors import StatusError, already_exists, invalid, not_found, resource_exhausted
from .p4info import ActionProfileInfo, P4InfoIndex

Undo = list[Callable[[], None]] | None

INSERT, MODIFY, DELETE = p4r.Update.INSERT, p4r.Update.MODIFY, p4r.Update.DELETE


@dataclass(slots=True)
class Member:
    handle: int
    action_id: int
    args: list[int]
    refs: int = 0


@dataclass(slots=True)
class Group:
    handle: int
    max_size: int
    members: dict[int, int] = field(default_factory=dict)  # member id -> weight
    watch_ports: dict[int, bytes] = field(default_factory=dict)
    refs: int = 0


def _in_use(what: str) -> StatusError:
    return StatusError(rpc_code.FAILED_PRECONDITION, f"{what} is still referenced")


class ActionProfileStore:
    """Members and groups of every action profile of one pipeline."""

    def __init__(self, index: P4InfoIndex, state: PipelineStateLike, actions: ActionCodec) -> None:
        self._index = index
        self._state = state
        self._actions = actions
        self.members: dict[int, dict[int, Member]] = {i: {} for i in index.action_profiles}
        self.groups: dict[int, dict[int, Group]] = {i: {} for i in index.action_profiles}
        self._allowed_actions: dict[int, frozenset[int]] = {}
        for ident, info in index.action_profiles.items():
            allowed: frozenset[int] = frozenset()
            for table_id in info.table_ids:
                if table_id in index.tables:
                    allowed |= index.tables[table_id].action_ids
            self._allowed_actions[ident] = allowed

    # helpers used by table entries -------------------------------------------
    def member(self, profile_id: int, member_id: int) -> Member:
        member = self.members[profile_id].get(member_id)
        if member is None:
            raise not_found(f"action profile member {member_id} does not exist")
        return member

    def group(self, profile_id: int, group_id: int) -> Group:
        group = self.groups[profile_id].get(group_id)
        if group is None:
            raise not_found(f"action profile group {group_id} does not exist")
        return group

    # ActionProfileMember ----------------------------------------------------
    def write_member(self, kind: int, msg: p4r.ActionProfileMember, undo: Undo) -> None:
        info = self._index.action_profile(msg.action_profile_id)
        members = self.members[info.id]
        engine = self._state.action_profile(info.name)
        if msg.member_id == 0:
            raise invalid(f"{info.name}: member_id must not be 0")
        old = members.get(msg.member_id)
        if kind == DELETE:
            if old is None:
                raise not_found(f"{info.name}: member {msg.member_id} does not exist")
            if old.refs:
                raise _in_use(f"{info.name}: member {msg.member_id}")
            engine.delete_member(old.handle)
            del members[msg.member_id]
            if undo is not None:
                undo.append(lambda: self._restore_member(info, msg.member_id, old))
            return
        if not msg.HasField("action"):
            raise invalid(f"{info.name}: member {msg.member_id} has no action")
        action, args = self._actions.decode(msg.action, self._allowed_actions[info.id], info.name)
        if kind == INSERT:
            if old is not None:
                raise already_exists(f"{info.name}: member {msg.member_id} already exists")
            if info.size and len(members) >= info.size:
                raise resource_exhausted(f"{info.name}: all {info.size} members are used")
            handle = engine.add_member(action.name, args)
            members[msg.member_id] = Member(handle, action.id, args)
            if undo is not None:
                undo.append(lambda: self._drop_member(info, msg.member_id))
        elif kind == MODIFY:
            if old is None:
                raise not_found(f"{info.name}: member {msg.member_id} does not exist")
            engine.modify_member(old.handle, action.name, args)
            prev = (old.action_id, old.args)
            old.action_id, old.args = action.id, args
            if undo is not None:
                undo.append(lambda: self._set_member(info, old, *prev))
        else:
            raise invalid("update type must be INSERT, MODIFY or DELETE")

    def _drop_member(self, info: ActionProfileInfo, member_id: int) -> None:
        member = self.members[info.id].pop(member_id)
        self._state.action_profile(info.name).delete_member(member.handle)

    def _restore_member(self, info: ActionProfileInfo, member_id: int, old: Member) -> None:
        action = self._index.actions[old.action_id]
        old.handle = self._state.action_profile(info.name).add_member(action.name, old.args)
        self.members[info.id][member_id] = old

    def _set_member(self, info: ActionProfileInfo, member: Member, action_id: int,
                    args: list[int]) -> None:
        action = self._index.actions[action_id]
        self._state.action_profile(info.name).modify_member(member.handle, action.name, args)
        member.action_id, member.args = action_id, args

    def read_members(self, msg: p4r.ActionProfileMember) -> Iterator[p4r.Entity]:
        profile_ids = [msg.action_profile_id] if msg.action_profile_id else list(self.members)
        for profile_id in profile_ids:
            self._index.action_profile(profile_id)
            members = self.members[profile_id]
            ids = [msg.member_id] if msg.member_id else list(members)
            for member_id in ids:
                member = members.get(member_id)
                if member is None:
                    continue
                entity = p4r.Entity()
                out = entity.action_profile_member
                out.action_profile_id = profile_id
                out.member_id = member_id
                self._actions.encode(out.action, member.action_id, member.args)
                yield entity

    # ActionProfileGroup -----------------------------------------------------
    def write_group(self, kind: int, msg: p4r.ActionProfileGroup, undo: Undo) -> None:
        info = self._index.action_profile(msg.action_profile_id)
        if not info.with_selector:
            raise invalid(f"{info.name} is not an action selector: it has no groups")
        groups = self.groups[info.id]
        engine = self._state.action_profile(info.name)
        if msg.group_id == 0:
            raise invalid(f"{info.name}: group_id must not be 0")
        old = groups.get(msg.group_id)
        if kind == DELETE:
            if old is None:
                raise not_found(f"{info.name}: group {msg.group_id} does not exist")
            if old.refs:
                raise _in_use(f"{info.name}: group {msg.group_id}")
            engine.delete_group(old.handle)
            del groups[msg.group_id]
            for member_id in old.members:
                self.members[info.id][member_id].refs -= 1
            if undo is not None:
                undo.append(lambda: self._restore_group(info, msg.group_id, old))
            return
        members, ports = self._decode_members(info, msg)
        max_size = msg.max_size
        if max_size < 0 or (info.max_group_size and max_size > info.max_group_size):
            raise invalid(
                f"{info.name}: max_size {max_size} exceeds the selector's {info.max_group_size}"
            )
        limit = max_size or info.max_group_size
        if limit and sum(members.values()) > limit:
            raise resource_exhausted(f"{info.name}: group {msg.group_id} exceeds {limit} members")
        if kind == INSERT:
            if old is not None:
                raise already_exists(f"{info.name}: group {msg.group_id} already exists")
            handle = engine.create_group(max_size)
            try:
                engine.set_group_members(handle, self._engine_members(info, members))
            except Exception:
                engine.delete_group(handle)
                raise
            groups[msg.group_id] = Group(handle, max_size, members, ports)
            self._ref_members(info, members, +1)
            if undo is not None:
                undo.append(lambda: self._drop_group(info, msg.group_id))
        elif kind == MODIFY:
            if old is None:
                raise not_found(f"{info.name}: group {msg.group_id} does not exist")
            if max_size != old.max_size:
                raise invalid(f"{info.name}: max_size of group {msg.group_id} cannot change")
            engine.set_group_members(old.handle, self._engine_members(info, members))
            prev = (old.members, old.watch_ports)
            self._ref_members(info, old.members, -1)
            self._ref_members(info, members, +1)
            old.members, old.watch_ports = members, ports
            if undo is not None:
                undo.append(lambda: self._set_group(info, old, *prev))
        else:
            raise invalid("update type must be INSERT, MODIFY or DELETE")

    def _decode_members(
        self, info: ActionProfileInfo, msg: p4r.ActionProfileGroup
    ) -> tuple[dict[int, int], dict[int, bytes]]:
        members: dict[int, int] = {}
        ports: dict[int, bytes] = {}
        for m in msg.members:
            if m.member_id in members:
                raise invalid(f"{info.name}: member {m.member_id} is listed twice in the group")
            if info.weights_disallowed:
                if m.weight != 0:
                    raise invalid(f"{info.name}: weights are disallowed for this selector")
                weight = 1
            elif m.weight <= 0:
                raise invalid(f"{info.name}: member {m.member_id} needs a weight > 0")
            else:
                weight = m.weight
            self.member(info.id, m.member_id)
            if m.WhichOneof("watch_kind") == "watch":
                raise invalid(f"{info.name}: deprecated 'watch' is not supported; use watch_port")
            if m.watch_port:
                ports[m.member_id] = m.watch_port
            members[m.member_id] = weight
        return members, ports

    def _engine_members(self, info: ActionProfileInfo, members: dict[int, int]
                        ) -> list[tuple[int, int]]:
        table = self.members[info.id]
        return [(table[mid].handle, weight) for mid, weight in members.items()]

    def _ref_members(self, info: ActionProfileInfo, members: dict[int, int], delta: int) -> None:
        table = self.members[info.id]
        for member_id in members:
            table[member_id].refs += delta

    def _drop_group(self, info: ActionProfileInfo, group_id: int) -> None:
        group = self.groups[info.id].pop(group_id)
        self._state.action_profile(info.name).delete_group(group.handle)
        self._ref_members(info, group.members, -1)

    def _restore_group(self, info: ActionProfileInfo, group_id: int, old: Group) -> None:
        engine = self._state.action_profile(info.name)
        old.handle = engine.create_group(old.max_size)
        engine.set_group_members(old.handle, self._engine_members(info, old.members))
        self.groups[info.id][group_id] = old
        self._ref_members(info, old.members, +1)

    def _set_group(self, info: ActionProfileInfo, group: Group, members: dict[int, int],
                   ports: dict[int, bytes]) -> None:
        self._state.action_profile(info.name).set_group_members(
            group.handle, self._engine_members(info, members)
        )
        self._ref_members(info, group.members, -1)
        self._ref_members(info, members, +1)
        group.members, group.watch_ports = members, ports

    def read_groups(self, msg: p4r.ActionProfileGroup) -> Iterator[p4r.Entity]:
        profile_ids = [msg.action_profile_id] if msg.action_profile_id else list(self.groups)
        for profile_id in profile_ids:
            info = self._index.action_profile(profile_id)
            groups = self.groups[profile_id]
            ids = [msg.group_id] if msg.group_id else list(groups)
            for group_id in ids:
                group = groups.get(group_id)
                if group is None:
                    continue
                entity = p4r.Entity()
                out = entity.action_profile_group
                out.action_profile_id = profile_id
                out.group_id = group_id
                out.max_size = group.max_size
                for member_id, weight in group.members.items():
                    m = out.members.add(member_id=member_id,
                                        weight=0 if info.weights_disallowed else weight)
                    if member_id in group.watch_ports:
                        m.watch_port = group.watch_ports[member_id]
                yield entity
