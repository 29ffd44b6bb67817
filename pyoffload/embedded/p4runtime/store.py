"""All P4Runtime entities of one pipeline, and the dispatch of updates and reads.

One `EntityStore` exists per loaded pipeline; replacing the pipeline replaces
the store, so no entity can outlive the program it was written for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from finsy.proto import p4r

from ..engine.errors import EngineError
from .action_profiles import ActionProfileStore
from .actions import ActionCodec
from .config_match import absent_error, match_config
from .digests import DigestManager, Sender
from .engine_api import PipelineStateLike, from_engine_error
from .errors import invalid, unimplemented
from .meters import MeterCodec, MeterFactory
from .p4info import P4InfoIndex
from .pre import PreStore
from .resources import ResourceStore
from .tables import TableStore

Undo = list[Callable[[], None]] | None
_TYPES = frozenset((p4r.Update.INSERT, p4r.Update.MODIFY, p4r.Update.DELETE))


class PipelineLike(Protocol):
    """What the server needs from the engine's `Pipeline`."""

    def process(self, ingress_port: int, packet: bytes) -> Any: ...

    @property
    def state(self) -> PipelineStateLike: ...


class EntityStore:
    """Entities written to one pipeline through P4Runtime."""

    def __init__(
        self,
        index: P4InfoIndex,
        pipeline: PipelineLike,
        *,
        clock: Callable[[], int],
        send: Sender,
        meter_factory: MeterFactory,
    ) -> None:
        self.index = index
        self.pipeline = pipeline
        state = pipeline.state
        self.absent = match_config(index, state)
        """P4Info objects p4c left out of the JSON: requests naming them fail as on BMv2."""
        actions = ActionCodec(index)
        meters = MeterCodec(meter_factory)
        self.profiles = ActionProfileStore(index, state, actions)
        self.tables = TableStore(index, state, actions, self.profiles, meters, clock)
        self.resources = ResourceStore(index, state, self.tables, meters)
        self.pre = PreStore(state)
        self.digests = DigestManager(index, send, clock)
        r = self.resources
        self._writers: dict[str, Callable[[int, Any, Undo], None]] = {
            "table_entry": self.tables.write,
            "action_profile_member": self.profiles.write_member,
            "action_profile_group": self.profiles.write_group,
            "counter_entry": r.write_counter,
            "direct_counter_entry": r.write_direct_counter,
            "meter_entry": r.write_meter,
            "direct_meter_entry": r.write_direct_meter,
            "register_entry": r.write_register,
            "packet_replication_engine_entry": self.pre.write,
            "digest_entry": self.digests.write,
        }
        self._readers: dict[str, Callable[[Any], Iterable[p4r.Entity]]] = {
            "table_entry": self.tables.read,
            "action_profile_member": self.profiles.read_members,
            "action_profile_group": self.profiles.read_groups,
            "counter_entry": r.read_counters,
            "direct_counter_entry": r.read_direct_counters,
            "meter_entry": r.read_meters,
            "direct_meter_entry": r.read_direct_meters,
            "register_entry": r.read_registers,
            "packet_replication_engine_entry": self.pre.read,
            "digest_entry": self.digests.read,
        }

    def apply(self, update: p4r.Update, undo: Undo) -> None:
        """Apply one update, all or nothing; raise StatusError on failure."""
        kind = update.type
        if kind not in _TYPES:
            raise invalid("update type must be INSERT, MODIFY or DELETE")
        entity = update.entity
        which = entity.WhichOneof("entity")
        if self.absent:
            self._check_present(which, entity)
        try:
            if which == "table_entry":
                self.tables.write(kind, entity.table_entry, undo)
                return
            if which is None:
                raise invalid("update has no entity")
            writer = self._writers.get(which)
            if writer is None:
                raise unimplemented(f"{which} is not supported by this target")
            writer(kind, getattr(entity, which), undo)
        except EngineError as exc:
            raise from_engine_error(exc) from exc

    def read(self, entity: p4r.Entity) -> list[p4r.Entity]:
        """Every entity matching one read request (wildcards expanded)."""
        which = entity.WhichOneof("entity")
        if self.absent:
            self._check_present(which, entity, reading=True)
        try:
            if which == "table_entry":  # the common case, already a list
                return self.tables.read(entity.table_entry)
            if which is None:
                raise invalid("read request entity has no type set")
            reader = self._readers.get(which)
            if reader is None:
                raise unimplemented(f"reading {which} is not supported by this target")
            return list(reader(getattr(entity, which)))
        except EngineError as exc:
            raise from_engine_error(exc) from exc

    def read_lazily(self, entity: p4r.Entity) -> Iterable[p4r.Entity]:
        """`read`, with a wildcard Read of a table's entries read entry by entry as the
        caller takes them (`TableStore.read_lazily`); StatusError on failure."""
        if entity.WhichOneof("entity") != "table_entry" or self.absent:
            return self.read(entity)
        try:
            found = self.tables.read_lazily(entity.table_entry)
        except EngineError as exc:
            raise from_engine_error(exc) from exc
        return found if isinstance(found, list) else _engine_errors_as_status(found)

    def _check_present(self, which: str | None, entity: p4r.Entity, *,
                       reading: bool = False) -> None:
        """UNKNOWN, as BMv2 answers, for a request naming an object p4c left out of the
        JSON; and for a wildcard Read of a kind that has one (BMv2 fails the whole Read)."""
        if which is None:
            return
        msg = getattr(entity, which)
        if which in ("direct_counter_entry", "direct_meter_entry"):
            msg = msg.table_entry
        field = _ID_FIELDS.get(which)
        if field is None:
            return
        ident = getattr(msg, field)
        if ident in self.absent:
            raise absent_error(self.absent[ident])
        if reading and not ident:
            kinds = _WILDCARD_KINDS[which]
            for absent in self.absent.values():
                if absent.kind in kinds:
                    raise absent_error(absent)


def _engine_errors_as_status(entities: Iterable[p4r.Entity]) -> Iterator[p4r.Entity]:
    try:
        yield from entities
    except EngineError as exc:
        raise from_engine_error(exc) from exc


_ID_FIELDS = {
    "table_entry": "table_id",
    "direct_counter_entry": "table_id",
    "direct_meter_entry": "table_id",
    "action_profile_member": "action_profile_id",
    "action_profile_group": "action_profile_id",
    "counter_entry": "counter_id",
    "meter_entry": "meter_id",
    "register_entry": "register_id",
    "digest_entry": "digest_id",
}
_WILDCARD_KINDS = {
    "table_entry": ("table",),
    "direct_counter_entry": (),
    "direct_meter_entry": (),
    "action_profile_member": ("action profile",),
    "action_profile_group": ("action profile",),
    "counter_entry": ("counter",),
    "meter_entry": ("meter",),
    "register_entry": ("register",),
    "digest_entry": ("digest",),
}
