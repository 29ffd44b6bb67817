"""Install a VNIC's entities on a target: diff, batched writes, all or nothing.

The installer remembers what it installed for each VNIC. ``apply`` compares
the desired entities with that, writes only what changed (inserts in
installation order, then modifications, then deletions in reverse order, in
batches), reads the written entities back to check the target holds them,
and, when any update fails, undoes every update of this apply that
succeeded, so the target is left exactly as before. BMv2 only offers
continue-on-error batches, so the undo is done here rather than trusted to
the target.

Meters are modify-only in P4Runtime: "inserting" one writes its config,
"deleting" it writes an empty config (back to the default, unmetered).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterable, Iterator, Sequence

import attrs
from finsy import P4Schema
from finsy.p4entity import P4Entity
from finsy.proto import p4r

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

def _is_modify_only(entity: p4r.Entity) -> bool:
    return entity.WhichOneof("entity") == "meter_entry"


def _value(entity: p4r.Entity) -> bytes:
    return entity.SerializeToString(deterministic=True)


@attrs.frozen(kw_only=True)
class Change:
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


class InstallError(Exception):
    """An apply failed and was undone; ``error`` holds the target's answer."""

    def __init__(self, message: str, error: P4RuntimeError | None = None,
                 failed: Sequence[p4r.Entity] = ()) -> None:
        super().__init__(message)
        self.error = error
        self.failed = list(failed)


def plan(installed: dict[EntityKey, p4r.Entity],
         desired: Sequence[tuple[EntityKey, p4r.Entity]]) -> list[Change]:
    """The updates that turn ``installed`` into ``desired`` (both install-ordered)."""
    wanted: dict[EntityKey, p4r.Entity] = {}
    for key, entity in desired:
        if key in wanted:
            raise ValueError(f"two desired entities have the same key {key!r}")
        wanted[key] = entity
    inserts: list[Change] = []
    modifies: list[Change] = []
    for key, entity in wanted.items():
        old = installed.get(key)
        if old is None:
            if _is_modify_only(entity):
                inserts.append(Change(label="insert", kind=UpdateType.MODIFY, entity=entity,
                                      undo_kind=UpdateType.MODIFY,
                                      undo_entity=without_meter_config(entity)))
            else:
                inserts.append(Change(label="insert", kind=UpdateType.INSERT, entity=entity,
                                      undo_kind=UpdateType.DELETE, undo_entity=entity))
        elif _value(old) != _value(entity):
            modifies.append(Change(label="modify", kind=UpdateType.MODIFY, entity=entity,
                                   undo_kind=UpdateType.MODIFY, undo_entity=old))
    deletes: list[Change] = []
    for key, old in reversed(list(installed.items())):
        if key in wanted:
            continue
        if _is_modify_only(old):
            deletes.append(Change(label="delete", kind=UpdateType.MODIFY,
                                  entity=without_meter_config(old),
                                  undo_kind=UpdateType.MODIFY, undo_entity=old))
        else:
            deletes.append(Change(label="delete", kind=UpdateType.DELETE, entity=old,
                                  undo_kind=UpdateType.INSERT, undo_entity=old))
    return [*inserts, *modifies, *deletes]


def _batches(items: Sequence[Change], size: int) -> Iterator[Sequence[Change]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@attrs.define
class Installer:
    """Keeps each VNIC's installed entities and moves them to the desired ones."""

    client: P4RuntimeClient
    schema: P4Schema
    batch_size: int = BATCH_SIZE
    verify: bool = True
    _installed: dict[str, dict[EntityKey, p4r.Entity]] = attrs.field(factory=dict)
    _encoder: EntityEncoder = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._encoder = EntityEncoder(self.schema)

    def installed(self, vnic: str) -> list[p4r.Entity]:
        return list(self._installed.get(vnic, {}).values())

    def encode(self, entities: Iterable[P4Entity]) -> list[p4r.Entity]:
        return [self._encoder.encode(e) for e in entities]

    def install(self, vnic: str, entities: Sequence[P4Entity]) -> ApplyResult:
        """``apply`` of entities not yet encoded (encoded and keyed in one pass)."""
        return self._apply(vnic, self._encoder.encode_all(entities))

    def apply(self, vnic: str, desired: Sequence[p4r.Entity]) -> ApplyResult:
        """Make the target hold exactly ``desired`` for ``vnic``, or nothing changes."""
        return self._apply(vnic, [(entity_key(e), e) for e in desired])

    def _apply(self, vnic: str, keyed: Sequence[tuple[EntityKey, p4r.Entity]]) -> ApplyResult:
        current = self._installed.get(vnic, {})
        changes = plan(current, keyed)
        done: list[Change] = []
        checks: list[tuple[list[p4r.Entity], concurrent.futures.Future[list[p4r.Entity]]]] = []
        # Batches are written one after the other: a target may apply concurrent requests
        # in any order, and a batch can depend on the one before (members before groups,
        # groups before the entries that use them). Each applied batch is read back
        # while the next ones are written.
        for batch in _batches(changes, self.batch_size):
            try:
                self.client.write([c.update() for c in batch])
            except P4RuntimeError as exc:
                for _written, check in checks:
                    check.cancel()
                failed = set(exc.details) if exc.details else set(range(len(batch)))
                done.extend(c for i, c in enumerate(batch) if i not in failed)
                self._undo(done)
                raise InstallError(
                    f"VNIC {vnic}: the target refused {len(failed)} of {len(changes)} "
                    f"updates; everything this apply wrote was undone:\n{exc}",
                    exc,
                    [batch[i].entity for i in sorted(failed) if i < len(batch)],
                ) from None
            done.extend(batch)
            written = [c.entity for c in batch if c.label != "delete"]
            if self.verify and written:
                checks.append((written, self.client.read_async(
                    [read_query(e) for e in written])))
        missing = self._missing(checks)
        if missing:
            self._undo(done)
            raise InstallError(
                f"VNIC {vnic}: {len(missing)} written entities did not read back "
                "as written; the apply was undone", None, missing)
        self._installed[vnic] = dict(keyed)
        labels = [c.label for c in changes]
        return ApplyResult(inserted=labels.count("insert"), modified=labels.count("modify"),
                           deleted=labels.count("delete"))

    def forget(self, vnic: str) -> None:
        """Drop what we remember for ``vnic`` (after the target lost its state)."""
        self._installed.pop(vnic, None)

    def reinstall(self, vnic: str) -> ApplyResult:
        """Write everything ``vnic`` should hold again (a restarted target)."""
        desired = self.installed(vnic)
        self._installed.pop(vnic, None)
        return self.apply(vnic, desired)

    def _undo(self, done: list[Change]) -> None:
        undo = [c.undo() for c in reversed(done)]
        for start in range(0, len(undo), self.batch_size):
            try:
                self.client.write(undo[start:start + self.batch_size])
            except P4RuntimeError:
                # Keep undoing the rest: the more of the old state comes back, the better.
                continue

    @staticmethod
    def _missing(checks: Sequence[tuple[list[p4r.Entity],
                                        concurrent.futures.Future[list[p4r.Entity]]]]
                 ) -> list[p4r.Entity]:
        """Written entities the target does not report back (by key)."""
        missing: list[p4r.Entity] = []
        for written, check in checks:
            try:
                found = {entity_key(e) for e in check.result()
                         if e.WhichOneof("entity") in _MANAGED}
            except P4RuntimeError:
                missing.extend(written)
                continue
            missing.extend(e for e in written if entity_key(e) not in found)
        return missing


_MANAGED = ("table_entry", "action_profile_member", "action_profile_group", "meter_entry")
