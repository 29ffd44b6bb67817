"""Action profiles and action selectors: members, groups and BMv2's member choice.

A selector hashes its input fields with its algorithm and picks the
`hash % n`-th member of the group, members ordered by id (a member of weight w
counts w times), as BMv2 does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .actions import Action
from .errors import AlreadyExists, InvalidValue, NotFound, TableFull
from .packet import Pkt


@dataclass(slots=True)
class Member:
    id: int
    action: Action
    args: tuple[int, ...]


@dataclass(slots=True)
class Group:
    id: int
    max_size: int
    members: list[tuple[int, int]] = field(default_factory=list)  # (member id, weight)
    expanded: list[Member] = field(default_factory=list)


class ActionProfile:
    """A P4 action profile (with a selector when `select` is set)."""

    def __init__(
        self,
        name: str,
        size: int,
        actions: dict[str, Action],
        select: Callable[[list[int], Pkt], int] | None,
    ) -> None:
        self.name = name
        self.size = size
        self.actions = actions
        self.select = select
        self._members: dict[int, Member] = {}
        self._groups: dict[int, Group] = {}
        self._next_member = 1
        self._next_group = 1
        self.refs: dict[tuple[str, int], int] = {}  # (kind, id) -> number of table entries using it

    @property
    def has_selector(self) -> bool:
        return self.select is not None

    # ---- members ----------------------------------------------------------
    def _action(
        self, name: str, args: list[int] | tuple[int, ...]
    ) -> tuple[Action, tuple[int, ...]]:
        act = self.actions.get(name)
        if act is None:
            raise NotFound(f"action profile {self.name}: action {name} is not allowed here")
        return act, act.check_args(args, f"action profile {self.name}")

    def add_member(self, action: str, args: list[int], member_id: int | None = None) -> int:
        act, a = self._action(action, args)
        if len(self._members) >= self.size:
            raise TableFull(f"action profile {self.name} is full ({self.size} members)")
        if member_id is None:
            while self._next_member in self._members:
                self._next_member += 1
            member_id = self._next_member
        elif member_id in self._members:
            raise AlreadyExists(f"action profile {self.name}: member {member_id} exists")
        self._members[member_id] = Member(member_id, act, a)
        return member_id

    def modify_member(self, member_id: int, action: str, args: list[int]) -> None:
        m = self.member(member_id)
        act, a = self._action(action, args)
        m.action, m.args = act, a
        for g in self._groups.values():
            self._expand(g)

    def delete_member(self, member_id: int) -> None:
        self.member(member_id)
        if self.refs.get(("member", member_id)):
            raise InvalidValue(
                f"action profile {self.name}: member {member_id} is used by a table entry"
            )
        for g in self._groups.values():
            if any(m == member_id for m, _ in g.members):
                raise InvalidValue(
                    f"action profile {self.name}: member {member_id} is in group {g.id}"
                )
        del self._members[member_id]

    def member(self, member_id: int) -> Member:
        m = self._members.get(member_id)
        if m is None:
            raise NotFound(f"action profile {self.name}: no member {member_id}")
        return m

    def members(self) -> list[Member]:
        return [self._members[k] for k in sorted(self._members)]

    # ---- groups -----------------------------------------------------------
    def create_group(self, max_size: int = 0, group_id: int | None = None) -> int:
        if self.select is None:
            raise InvalidValue(f"action profile {self.name} has no selector: no groups")
        if group_id is None:
            while self._next_group in self._groups:
                self._next_group += 1
            group_id = self._next_group
        elif group_id in self._groups:
            raise AlreadyExists(f"action profile {self.name}: group {group_id} exists")
        self._groups[group_id] = Group(group_id, max_size)
        return group_id

    def set_group_members(self, group_id: int, members: list[tuple[int, int]]) -> None:
        g = self.group(group_id)
        seen = set()
        for mid, weight in members:
            self.member(mid)
            if weight < 1:
                raise InvalidValue(f"action profile {self.name}: member weight must be >= 1")
            if mid in seen:
                raise InvalidValue(f"action profile {self.name}: member {mid} listed twice")
            seen.add(mid)
        if g.max_size and sum(w for _, w in members) > g.max_size:
            raise TableFull(
                f"action profile {self.name}: group {group_id} holds at most {g.max_size}"
            )
        g.members = list(members)
        self._expand(g)

    def _expand(self, g: Group) -> None:
        g.expanded = [self._members[mid] for mid, w in sorted(g.members) for _ in range(w)]

    def delete_group(self, group_id: int) -> None:
        self.group(group_id)
        if self.refs.get(("group", group_id)):
            raise InvalidValue(
                f"action profile {self.name}: group {group_id} is used by a table entry"
            )
        del self._groups[group_id]

    def group(self, group_id: int) -> Group:
        g = self._groups.get(group_id)
        if g is None:
            raise NotFound(f"action profile {self.name}: no group {group_id}")
        return g

    def groups(self) -> list[Group]:
        return [self._groups[k] for k in sorted(self._groups)]

    def choose(self, group_id: int, f: list[int], p: Pkt) -> Member | None:
        """The member a packet uses in a group (None for an empty group)."""
        g = self._groups.get(group_id)
        if g is None or not g.expanded or self.select is None:
            return None
        return g.expanded[self.select(f, p) % len(g.expanded)]

    def clear(self) -> None:
        self._members.clear()
        self._groups.clear()
        self.refs.clear()
