"""Numbers the compiler hands out: VNIC-local flow ids and pipeline-wide slots.

The pipeline indexes meters, counters and timeout profiles by small numbers,
and selector members and groups by ids; VNICs share those spaces. A pool keeps
who holds what, so compiling the same request twice gives the same numbers
(idempotent re-apply writes nothing) and a flow keeps its numbers across
requests as long as it keeps its id. Releasing is explicit: the agent frees a
VNIC's numbers once the entities using them are deleted.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Hashable, Mapping, Sequence
from typing import Protocol

import attrs

from pyoffload.errors import PyoffloadError


class ResourceExhausted(PyoffloadError):
    """No free number is left in a space (the message names it and its size)."""


@attrs.define
class NumberSpace:
    """Numbers ``first..last`` handed out by owner key, lowest free first."""

    name: str
    first: int
    last: int
    _by_owner: dict[Hashable, int] = attrs.field(factory=dict)
    _owners: dict[int, Hashable] = attrs.field(factory=dict)
    _free: list[int] = attrs.field(factory=list)
    """A heap of released numbers below ``_high``: the lowest free one is on top."""
    _high: int = attrs.field(default=attrs.Factory(lambda self: self.first, takes_self=True))
    """Every number from here to ``last`` has never been handed out."""

    @property
    def capacity(self) -> int:
        return self.last - self.first + 1

    @property
    def used(self) -> int:
        return len(self._owners)

    def get(self, owner: Hashable) -> int | None:
        return self._by_owner.get(owner)

    def holder(self, number: int) -> Hashable | None:
        """Who holds ``number`` now (None: nobody)."""
        return self._owners.get(number)

    def take(self, owner: Hashable) -> int:
        """The owner's number, allocating the lowest free one if it has none."""
        held = self._by_owner.get(owner)
        if held is not None:
            return held
        if self._free:
            number = heapq.heappop(self._free)
        else:
            if self._high > self.last:
                raise ResourceExhausted(
                    f"{self.name}: all {self.capacity} numbers are in use"
                )
            number = self._high
            self._high += 1
        self._by_owner[owner] = number
        self._owners[number] = owner
        return number

    def release(self, owner: Hashable) -> None:
        number = self._by_owner.pop(owner, None)
        if number is not None:
            del self._owners[number]
            heapq.heappush(self._free, number)

    def owners(self) -> list[Hashable]:
        return list(self._by_owner)

    def restore(self, held: dict[Hashable, int]) -> None:
        """Hold exactly ``held`` (owner -> number), e.g. as read back from a target."""
        self._by_owner = dict(held)
        self._owners = {number: owner for owner, number in held.items()}
        top = max(self._owners, default=self.first - 1) + 1
        self._high = max(self.first, top)
        self._free = [n for n in range(self.first, self._high) if n not in self._owners]


@attrs.define
class ResourcePool:
    """All number spaces of one pipeline, sized from its P4Info."""

    flows: NumberSpace = attrs.field(
        factory=lambda: NumberSpace("pipeline flow ids", 1, 65535)
    )
    """(VNIC, flow id) -> the pipeline's 16-bit flow id (0 is never used). Unique
    across VNICs, so a conntrack slot's flow id also tells whose connection it is."""
    meters: NumberSpace = attrs.field(factory=lambda: NumberSpace("vnic.flow_meter", 1, 4095))
    counters: NumberSpace = attrs.field(
        factory=lambda: NumberSpace("vnic.flow_counter", 1, 4095)
    )
    ct_profiles: NumberSpace = attrs.field(
        factory=lambda: NumberSpace("conntrack timeout profiles", 1, 255)
    )
    """Profile 0 is the built-in timeouts; equal timeout sets share a profile."""
    lb_members: NumberSpace = attrs.field(
        factory=lambda: NumberSpace("vnic.lb_selector members", 1, 2**31 - 1)
    )
    lb_groups: NumberSpace = attrs.field(
        factory=lambda: NumberSpace("vnic.lb_selector groups", 1, 2**31 - 1)
    )

    @classmethod
    def sized(cls, *, meters: int, counters: int) -> ResourcePool:
        """A pool for a pipeline whose meter and counter arrays have these sizes."""
        return cls(
            meters=NumberSpace("vnic.flow_meter", 1, meters - 1),
            counters=NumberSpace("vnic.flow_counter", 1, counters - 1),
        )

    def release_unused(self, vnic: str, keep: frozenset[Hashable]) -> None:
        """Free the numbers ``vnic`` holds that ``keep`` (its new request) does not use."""
        for space in (self.flows, self.meters, self.counters, self.ct_profiles, self.lb_members,
                      self.lb_groups):
            for owner in space.owners():
                if isinstance(owner, tuple) and owner[:1] == (vnic,) and owner not in keep:
                    space.release(owner)

    def _spaces(self) -> dict[str, NumberSpace]:
        return {"flows": self.flows, "meters": self.meters, "counters": self.counters,
                "ct_profiles": self.ct_profiles, "lb_members": self.lb_members,
                "lb_groups": self.lb_groups}

    def holdings(self, vnic: str) -> dict[str, list[list[object]]]:
        """The numbers ``vnic`` holds, as JSON-ready lists: space -> [[owner..., number]]
        (owners are tuples of strings and ints that start with the VNIC's name)."""
        return {name: [[*owner, space.get(owner)] for owner in space.owners()
                       if isinstance(owner, tuple) and owner[:1] == (vnic,)]
                for name, space in self._spaces().items()}

    def hold(self, holdings: Mapping[str, Sequence[Sequence[object]]]) -> None:
        """Take the numbers ``holdings`` names (as ``holdings()`` wrote them), e.g. a
        restarted agent's from its state file, so that compiling the same requests again
        gives the same entities; a number held by another owner is an error."""
        spaces = self._spaces()
        for name, rows in holdings.items():
            space = spaces[name]
            held = dict(space._by_owner)
            for row in rows:
                owner, number = tuple(row[:-1]), row[-1]
                if not isinstance(number, int) or not space.first <= number <= space.last:
                    raise ValueError(f"{space.name}: {number!r} is not a number of the space")
                other = space._owners.get(number)
                if other is not None and other != owner:
                    raise ValueError(f"{space.name}: {number} is held by {other!r} already")
                held[owner] = number
            space.restore(held)

    def release_vnic(self, vnic: str) -> None:
        """Free every number of ``vnic``."""
        self.release_unused(vnic, frozenset())



class NumberSource(Protocol):
    """Where a compilation takes its numbers: a pool, or a reservation in one."""

    def take(self, owner: Hashable) -> int:
        """The owner's number, allocating one if it has none."""


class Numbers(Protocol):
    """The number spaces a compilation takes from (``ResourcePool`` or ``Reservation``)."""

    @property
    def flows(self) -> NumberSource: ...
    @property
    def meters(self) -> NumberSource: ...
    @property
    def counters(self) -> NumberSource: ...
    @property
    def ct_profiles(self) -> NumberSource: ...
    @property
    def lb_members(self) -> NumberSource: ...
    @property
    def lb_groups(self) -> NumberSource: ...


@attrs.define
class _Reserving:
    space: NumberSpace
    reservation: Reservation

    def take(self, owner: Hashable) -> int:
        with self.reservation.lock:
            if self.space.get(owner) is None:
                self.reservation.taken.append((self.space, owner))
            return self.space.take(owner)


class Reservation:
    """The numbers one apply takes from a pool that other VNICs' applies take from at
    the same time. Each number is taken in the pool at once (under ``lock``), so no two
    applies are ever handed the same one, and none is copied: ``abort`` gives back what
    this apply took anew (it installed nothing), ``commit`` frees the VNIC's numbers its
    new request no longer uses. One VNIC's applies must not overlap (the agent's
    per-VNIC lock): a VNIC's numbers are changed only by its own apply."""

    def __init__(self, pool: ResourcePool, vnic: str, lock: threading.Lock) -> None:
        self.pool = pool
        self.vnic = vnic
        self.lock = lock
        self.taken: list[tuple[NumberSpace, Hashable]] = []
        self.flows = _Reserving(pool.flows, self)
        self.meters = _Reserving(pool.meters, self)
        self.counters = _Reserving(pool.counters, self)
        self.ct_profiles = _Reserving(pool.ct_profiles, self)
        self.lb_members = _Reserving(pool.lb_members, self)
        self.lb_groups = _Reserving(pool.lb_groups, self)

    def holdings(self, keep: frozenset[Hashable]) -> dict[str, list[list[object]]]:
        """``ResourcePool.holdings`` as they will be once committed with ``keep``."""
        with self.lock:
            held = self.pool.holdings(self.vnic)
        return {name: [row for row in rows if tuple(row[:-1]) in keep]
                for name, rows in held.items()}

    def commit(self, keep: frozenset[Hashable]) -> None:
        with self.lock:
            self.pool.release_unused(self.vnic, keep)
            self.taken.clear()

    def abort(self) -> None:
        with self.lock:
            for space, owner in reversed(self.taken):
                space.release(owner)
            self.taken.clear()
