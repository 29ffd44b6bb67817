"""Install a VNIC's entities on a target: diff, batched writes, all or nothing.

The installer remembers what it installed for each VNIC. ``apply`` compares
the desired entities with that, writes only what changed (inserts and
modifications in installation order, then deletions in reverse order, in
batches), reads the written entities back to check the target holds them
(a table it wrote much of in one wildcard read, else by key), and, when any
update fails or an entity does not read back, undoes every update of this
apply that succeeded, so the target is left exactly as before. BMv2 only
offers continue-on-error batches, so the undo is done here rather than
trusted to the target.

Different VNICs' applies may run at the same time (their entities never share a
key); one VNIC's may not overlap, and ``reconcile`` runs alone (the agent's gate).

The work is pipelined: while the target applies one batch, the next one is
encoded and diffed, so what the agent spends on a large request mostly hides
behind what the target spends.

Meters are modify-only in P4Runtime: "inserting" one writes its config,
"deleting" it writes an empty config (back to the default, unmetered).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import NamedTuple, TypeVar

import attrs
import grpc
from finsy import P4Schema
from finsy.p4entity import P4Entity
from finsy.proto import p4r

from pyoffload.errors import PyoffloadError
from pyoffload.p4runtime import P4RuntimeClient, P4RuntimeError, UpdateType
from pyoffload.p4runtime.encoder import EntityEncoder
from pyoffload.p4runtime.entities import (
    EntityKey,
    entity_key,
    read_query,
    without_meter_config,
)

BATCH_SIZE = 1000
"""Updates per Write request."""

T = TypeVar("T")

def _is_modify_only(entity: p4r.Entity) -> bool:
    return entity.WhichOneof("entity") == "meter_entry"


def _value(entity: p4r.Entity) -> bytes:
    return entity.SerializeToString(deterministic=True)


class Change(NamedTuple):
    """One update to send, with what undoes it."""

    label: str
    """insert, modify or delete: what the change means for the VNIC."""
    kind: UpdateType
    entity: p4r.Entity
    undo_kind: UpdateType
    undo_entity: p4r.Entity

    def update(self) -> p4r.Update:
        return p4r.Update(type=self.kind.value, entity=self.entity)

    def undo(self) -> p4r.Update:
        return p4r.Update(type=self.undo_kind.value, entity=self.undo_entity)


@attrs.frozen(kw_only=True)
class ApplyResult:
    """What one apply wrote."""

    inserted: int
    modified: int
    deleted: int

    @property
    def written(self) -> int:
        return self.inserted + self.modified + self.deleted


@attrs.frozen(kw_only=True)
class ReconcileResult(ApplyResult):
    """What a reconciliation wrote, and for whom."""

    by_owner: Mapping[str, int]
    """Updates written per owner ("" for orphans nobody owns, deleted)."""


class InstallError(PyoffloadError):
    """An apply failed and was undone; ``error`` holds the target's answer.

    ``needs_repair``: the undo itself did not go through whole, so the target
    holds a mix until a reconciliation puts back what was installed before
    (the message says so; it never claims an undo that did not happen).
    """

    def __init__(self, message: str, error: P4RuntimeError | None = None,
                 failed: Sequence[p4r.Entity] = (), *, needs_repair: bool = False) -> None:
        super().__init__(message)
        self.error = error
        self.failed = list(failed)
        self.needs_repair = needs_repair


Keyed = tuple[EntityKey, p4r.Entity]


@attrs.define
class Plan:
    """The updates that turn ``installed`` into the desired entities (both
    install-ordered), made as the desired entities come in, so that producing
    the later ones can overlap writing the first; ``wanted`` fills as it goes."""

    installed: Mapping[EntityKey, p4r.Entity]
    wanted: dict[EntityKey, p4r.Entity] = attrs.field(factory=dict)
    value: Callable[[p4r.Entity], bytes] = attrs.field(default=lambda e: _value(e))
    """What is compared to tell a modify: the bytes, or (entities read back from a target,
    which may order match fields otherwise) a canonical form."""

    def changes(self, desired: Iterable[Keyed]) -> Iterator[Change]:
        installed, wanted = self.installed, self.wanted
        for key, entity in desired:
            if key in wanted:
                raise ValueError(f"two desired entities have the same key {key!r}")
            wanted[key] = entity
            old = installed.get(key)
            if old is None:
                if _is_modify_only(entity):
                    yield Change("insert", UpdateType.MODIFY, entity,
                                 UpdateType.MODIFY, without_meter_config(entity))
                else:
                    yield Change("insert", UpdateType.INSERT, entity, UpdateType.DELETE, entity)
            elif self.value(old) != self.value(entity):
                yield Change("modify", UpdateType.MODIFY, entity, UpdateType.MODIFY, old)
        for key, old in reversed(list(installed.items())):
            if key in wanted:
                continue
            if _is_modify_only(old):
                yield Change("delete", UpdateType.MODIFY, without_meter_config(old),
                             UpdateType.MODIFY, old)
            else:
                yield Change("delete", UpdateType.DELETE, old, UpdateType.INSERT, old)


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last may be shorter), taken as they come."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class _Refused(Exception):
    """A batch the target refused (some of it may have been applied)."""

    def __init__(self, error: P4RuntimeError, batch: Sequence[Change], failed: set[int]) -> None:
        super().__init__(str(error))
        self.error = error
        self.failed = failed
        self.batch = batch


WILDCARD_FACTOR = 4
"""A table's entries are read back all at once (one wildcard read) rather than by
key when this apply wrote at least 1/WILDCARD_FACTOR of them: per entry, a read
by key costs a target 3.5 to 5 times what a wildcard read does (measured on the
embedded target and BMv2), since each key must be decoded and looked up."""


@attrs.define
class _ReadBack:
    """One read of written entities: by their keys, or a wildcard read of their table."""

    written: list[p4r.Entity]
    answer: concurrent.futures.Future[list[p4r.Entity]]

    def missing(self) -> list[p4r.Entity]:
        """Written entities the target does not report back (by key)."""
        try:
            found = self.answer.result()
        except P4RuntimeError:
            return list(self.written)
        # Most entities read back exactly as written: their bytes settle it.
        exact = {_value(e) for e in found}
        unsure = [e for e in self.written if _value(e) not in exact]
        if not unsure:
            return []
        keys = {entity_key(e) for e in found if e.WhichOneof("entity") in _MANAGED}
        return [e for e in unsure if entity_key(e) not in keys]


def _table_sizes(keys: Iterable[EntityKey]) -> Counter[object]:
    """Table entries per table id."""
    return Counter(key[1] for key in keys if key[0] == "table")


@attrs.define
class Installer:
    """Keeps each VNIC's installed entities and moves them to the desired ones."""

    client: P4RuntimeClient
    schema: P4Schema
    batch_size: int = BATCH_SIZE
    verify: bool = True
    wildcard_factor: int = WILDCARD_FACTOR
    """See WILDCARD_FACTOR; 0 reads everything back by key."""
    _installed: dict[str, dict[EntityKey, p4r.Entity]] = attrs.field(factory=dict)
    _encoder: EntityEncoder = attrs.field(init=False)
    _table_entries: Counter[object] = attrs.field(factory=Counter)
    """Entries of each table that this installer holds, all VNICs together."""
    _sizes_lock: threading.Lock = attrs.field(factory=threading.Lock)

    _direct_metered: frozenset[int] = attrs.field(init=False)
    """Tables whose entries carry a meter config (read with it)."""

    def __attrs_post_init__(self) -> None:
        self._encoder = EntityEncoder(self.schema)
        self._direct_metered = frozenset(t.id for t in self.schema.tables
                                         if t.direct_meter is not None)

    def installed(self, vnic: str) -> list[p4r.Entity]:
        return list(self._installed.get(vnic, {}).values())

    def encode(self, entities: Iterable[P4Entity]) -> list[p4r.Entity]:
        return [self._encoder.encode(e) for e in entities]

    def install(self, vnic: str, entities: Iterable[P4Entity]) -> ApplyResult:
        """``apply`` of entities not yet encoded: each is encoded (and keyed) while the
        batches before it are written."""
        return self._apply(vnic, map(self._encoder.encode_keyed, entities))

    def apply(self, vnic: str, desired: Iterable[p4r.Entity]) -> ApplyResult:
        """Make the target hold exactly ``desired`` for ``vnic``, or nothing changes."""
        return self._apply(vnic, ((entity_key(e), e) for e in desired))

    def _apply(self, vnic: str, desired: Iterable[Keyed]) -> ApplyResult:
        current = self._installed.get(vnic, {})
        plan = Plan(current)
        done: list[Change] = []
        # Batches are written one after the other: a target may apply concurrent requests
        # in any order, and a batch can depend on the one before (members before groups,
        # groups before the entries that use them). The next batch is made while the
        # target applies the current one.
        sent: tuple[list[Change], Callable[[], None]] | None = None
        try:
            for batch in _batches(plan.changes(desired), self.batch_size):
                updates = [c.update() for c in batch]
                if sent is not None:
                    previous, sent = sent, None
                    self._settle(*previous, done)
                sent = (batch, self.client.write_async(updates))
            if sent is not None:
                previous, sent = sent, None
                self._settle(*previous, done)
        except _Refused as exc:
            raise self._undone(
                vnic, done,
                f"the target refused {len(exc.failed)} of the {len(exc.batch)} updates of a "
                "batch", exc.error,
                [exc.batch[i].entity for i in sorted(exc.failed) if i < len(exc.batch)],
            ) from None
        except BaseException as exc:
            if sent is not None:
                # What is in flight is applied or not: wait, then undo all that was.
                with contextlib.suppress(_Refused, P4RuntimeError, grpc.RpcError):
                    self._settle(*sent, done)
            self._raise_if_undo_failed(vnic, done, exc)
            raise
        removed, added = _table_sizes(current), _table_sizes(plan.wanted)
        with self._sizes_lock:  # other VNICs' applies count theirs at the same time
            sizes = self._table_entries - removed + added
        if self.verify:
            written = [c.entity for c in done if c.label != "delete"]
            try:
                missing = [e for check in self._read_back(written, sizes)
                           for e in check.missing()]
            except BaseException as exc:  # not even read back (the connection went away...)
                self._raise_if_undo_failed(vnic, done, exc)
                raise
            if missing:
                raise self._undone(
                    vnic, done, f"{len(missing)} written entities did not read back as written",
                    None, missing)
        self._installed[vnic] = plan.wanted
        with self._sizes_lock:
            self._table_entries = self._table_entries - removed + added
        labels = [c.label for c in done]
        return ApplyResult(inserted=labels.count("insert"), modified=labels.count("modify"),
                           deleted=labels.count("delete"))

    def reconcile(self, desired: Mapping[str, Iterable[P4Entity]],
                  actual: Iterable[p4r.Entity], *,
                  claim: Callable[[p4r.Entity], str | None] | None = None
                  ) -> ReconcileResult:
        """Make a target that holds ``actual`` (read back from it) hold exactly ``desired``
        (every owner's entities, each list install-ordered): what is missing is inserted,
        what differs modified, what nobody owns deleted (entries before the groups and
        members they use); the rest is not touched. Afterwards each owner's installed
        entities are its desired ones. No apply may run meanwhile. A refused update
        raises InstallError with ``needs_repair`` (the next reconciliation tries again).
        ``claim``: who an entry nobody owns belongs to, for the count (an apply cut short
        leaves entries its VNIC's state does not hold)."""
        keyed = self.keyed(desired)
        changes = self.drift(keyed, actual)
        self._installed = {owner: dict(items) for owner, items in keyed.items()}
        self._table_entries = _table_sizes(k for items in self._installed.values() for k in items)
        self.repair([c for _owner, c in changes])
        if claim is not None:
            changes = [(owner or claim(c.entity) or "", c) for owner, c in changes]
        return reconcile_result(changes)

    def keyed(self, desired: Mapping[str, Iterable[P4Entity]]) -> dict[str, list[Keyed]]:
        """Every owner's entities encoded, each with its key (what ``drift`` compares)."""
        return {owner: [self._encoder.encode_keyed(e) for e in entities]
                for owner, entities in desired.items()}

    def drift(self, keyed: Mapping[str, list[Keyed]], actual: Iterable[p4r.Entity], *,
              only: Collection[EntityKey] | None = None) -> list[tuple[str, Change]]:
        """The updates that make a target holding ``actual`` (read back from it) hold
        ``keyed`` (owner -> its entities as ``keyed`` gives them, install-ordered), each
        with the owner of its entity ("" for what no owner has: deleted), in the order to
        write them. ``only``: just these keys (``actual`` was read by key for them).
        Nothing is written."""
        if only is not None:
            keyed = {owner: [(k, e) for k, e in items if k in only]
                     for owner, items in keyed.items()}
        holding = {entity_key(e): e for e in sorted(map(comparable, actual), key=_removal_rank)}
        owner_of = {key: owner for owner, items in keyed.items() for key, _ in items}
        plan = Plan(holding, value=canonical_value)
        return [(owner_of.get(entity_key(c.entity), ""), c)
                for c in plan.changes(item for items in keyed.values() for item in items)]

    def repair(self, changes: Sequence[Change]) -> None:
        """Write ``changes`` (from ``drift``), batch by batch; a refusal raises InstallError
        with ``needs_repair`` (the next reconciliation tries again)."""
        for batch in _batches(changes, self.batch_size):
            try:
                self.client.write([c.update() for c in batch])
            except P4RuntimeError as exc:
                raise InstallError(
                    f"reconciling the target with the desired state: it refused "
                    f"{len(exc.details) or len(batch)} of {len(batch)} updates; the next "
                    f"reconciliation tries again:\n{exc}", exc, needs_repair=True) from None

    def read_present(self, entities: Iterable[p4r.Entity]) -> list[p4r.Entity]:
        """What the target holds now of ``entities`` (by key; meter configs included),
        as ``drift`` compares it."""
        queries = []
        for entity in entities:
            query = read_query(entity)
            if (query.WhichOneof("entity") == "table_entry"
                    and query.table_entry.table_id in self._direct_metered):
                query.table_entry.meter_config.SetInParent()
            queries.append(query)
        return [e for e in self._read_present(queries) if configured(e)]

    def _undone(self, vnic: str, done: list[Change], what: str, error: P4RuntimeError | None,
                failed: Sequence[p4r.Entity]) -> InstallError:
        """Undo ``done``; the error that says what happened, the undo included."""
        failures = self._undo(done)
        reason = f":\n{error}" if error is not None else ""
        if failures:
            return InstallError(
                f"VNIC {vnic}: {what}, and undoing the {len(done)} updates this apply had made "
                f"failed too ({failures[0].message}): the target holds a mix until it is "
                f"repaired to the rules installed before{reason}",
                error, failed, needs_repair=True)
        return InstallError(f"VNIC {vnic}: {what}; everything this apply wrote was "
                            f"undone{reason}", error, failed)

    def _raise_if_undo_failed(self, vnic: str, done: list[Change], cause: BaseException) -> None:
        """Undo ``done`` after ``cause``; when the undo fails too, say so instead."""
        failures = self._undo(done)
        if failures:
            raise InstallError(
                f"VNIC {vnic}: the apply broke off ({cause}) and undoing its {len(done)} "
                f"updates failed ({failures[0].message}): the target holds a mix until it "
                "is repaired to the rules installed before", None, needs_repair=True,
            ) from cause

    def _settle(self, batch: list[Change], answer: Callable[[], None],
                done: list[Change]) -> None:
        """Wait for ``batch``'s answer and record what it applied."""
        try:
            answer()
        except P4RuntimeError as exc:
            failed = set(exc.details) if exc.details else self._not_applied(batch)
            done.extend(c for i, c in enumerate(batch) if i not in failed)
            raise _Refused(exc, batch, failed) from None
        done.extend(batch)

    def _not_applied(self, batch: Sequence[Change]) -> set[int]:
        """Which updates of a refused batch the target did not apply, found by reading
        their keys back: a target may send no per-update details (gRPC's metadata
        limit drops a large status), and then nothing else tells what went in."""
        found = {entity_key(e): canonical_value(comparable(e))
                 for e in self._read_present([read_query(c.entity) for c in batch])}
        failed = set()
        for index, change in enumerate(batch):
            now = found.get(entity_key(change.entity))
            if change.kind == UpdateType.DELETE:
                applied = now is None
            else:
                applied = now == canonical_value(change.entity)
            if not applied:
                failed.add(index)
        return failed

    def _read_present(self, queries: list[p4r.Entity]) -> list[p4r.Entity]:
        """The entities of ``queries`` the target holds. A target may refuse a whole Read
        when some keys are missing (NOT_FOUND for those): then they are read one by one."""
        try:
            return self.client.read(queries)
        except P4RuntimeError as exc:
            if not exc.not_found:
                raise
        found: list[p4r.Entity] = []
        for query in queries:
            try:
                found += self.client.read([query])
            except P4RuntimeError as exc:
                if exc.code != grpc.StatusCode.NOT_FOUND:
                    raise
        return found

    def _read_back(self, written: Sequence[p4r.Entity],
                   sizes: Counter[object]) -> list[_ReadBack]:
        """Reads of everything written, all sent at once: a table of which this apply
        wrote a large share is read whole, the rest by key in batches."""
        by_table: dict[int, list[p4r.Entity]] = {}
        by_key: list[p4r.Entity] = []
        for entity in written:
            if entity.WhichOneof("entity") == "table_entry":
                by_table.setdefault(entity.table_entry.table_id, []).append(entity)
            else:
                by_key.append(entity)
        reads: list[_ReadBack] = []
        for table_id, entities in by_table.items():
            if len(entities) * self.wildcard_factor >= sizes[table_id]:
                wildcard = p4r.Entity(table_entry=p4r.TableEntry(table_id=table_id))
                reads.append(_ReadBack(entities, self.client.read_async([wildcard])))
            else:
                by_key.extend(entities)
        for chunk in _batches(by_key, self.batch_size):
            reads.append(_ReadBack(chunk, self.client.read_async(
                [read_query(e) for e in chunk])))
        return reads

    def _undo(self, done: list[Change]) -> list[P4RuntimeError]:
        """Undo ``done`` in reverse; the failures (empty when everything was undone)."""
        failures: list[P4RuntimeError] = []
        for batch in _batches((c.undo() for c in reversed(done)), self.batch_size):
            try:
                self.client.write(batch)
            except P4RuntimeError as exc:
                # Keep undoing the rest: the more of the old state comes back, the better.
                failures.append(exc)
            except grpc.RpcError as exc:  # the connection broke mid-undo
                failures.append(P4RuntimeError.from_rpc_error("Write", exc))
        return failures


_MANAGED = ("table_entry", "action_profile_member", "action_profile_group", "meter_entry")
_REMOVAL_ORDER = {"action_profile_member": 0, "action_profile_group": 1, "meter_entry": 2,
                  "table_entry": 3}
"""Read-back entities sorted by this: a plan deletes in reverse order, so entries go
before the groups and members they use."""


def _removal_rank(entity: p4r.Entity) -> int:
    return _REMOVAL_ORDER[entity.WhichOneof("entity") or ""]


def reconcile_result(changes: Sequence[tuple[str, Change]]) -> ReconcileResult:
    """What ``changes`` (owner, change) wrote, in all and per owner."""
    labels = [c.label for _owner, c in changes]
    return ReconcileResult(inserted=labels.count("insert"), modified=labels.count("modify"),
                           deleted=labels.count("delete"),
                           by_owner=dict(Counter(owner for owner, _c in changes)))


def configured(entity: p4r.Entity) -> bool:
    """False for a meter cell read back without a configuration (no one's: the default)."""
    if entity.WhichOneof("entity") != "meter_entry":
        return True
    config = entity.meter_entry.config
    return entity.meter_entry.HasField("config") and any(
        (config.cir, config.cburst, config.pir, config.pburst))


def canonical_value(entity: p4r.Entity) -> bytes:
    """An entity's bytes with its match fields in field-id order (a target may return
    them in another order than they were written: the entry is the same)."""
    if entity.WhichOneof("entity") != "table_entry":
        return _value(entity)
    fields = list(entity.table_entry.match)
    if all(a.field_id < b.field_id for a, b in itertools.pairwise(fields)):
        return _value(entity)
    ordered = p4r.Entity()
    ordered.CopyFrom(entity)
    del ordered.table_entry.match[:]
    ordered.table_entry.match.extend(sorted(fields, key=lambda m: m.field_id))
    return _value(ordered)


def comparable(entity: p4r.Entity) -> p4r.Entity:
    """An entity read back from a target, without what the target adds to what was
    written (counter data, hit times), so that equal entries compare equal."""
    if entity.WhichOneof("entity") != "table_entry":
        return entity
    te = entity.table_entry
    unset_meter = te.HasField("meter_config") and not any(
        (te.meter_config.cir, te.meter_config.cburst, te.meter_config.pir,
         te.meter_config.pburst))
    if not (te.HasField("counter_data") or te.HasField("meter_counter_data")
            or te.HasField("time_since_last_hit") or unset_meter):
        return entity
    clean = p4r.Entity()
    clean.CopyFrom(entity)
    for name in ("counter_data", "meter_counter_data", "time_since_last_hit"):
        clean.table_entry.ClearField(name)
    if unset_meter:  # asked for with the entries; none was configured
        clean.table_entry.ClearField("meter_config")
    return clean
