"""The agent's connection to its P4 target, kept alive and kept true.

One ``TargetSession`` owns the P4Runtime client and the installer. On every
(re)connection it adopts the target instead of assuming it empty: the pipeline
is pushed only when the target runs none or another one (a push wipes every
register, so every tracked connection); otherwise what the target holds is
read back and corrected to the desired state with the installer's own diff
(orphans deleted, missing entries added, wrong ones modified, correct ones and
the registers left alone), so an agent restart never disturbs the data path.
The same read-back runs periodically: drift made behind the agent's back
(another controller, a lost write) is repaired and counted. Losing primary
arbitration shows at once; the session keeps asking for it back and reconciles
when it gets it. When the target goes away it reconnects with backoff.

The agent says what it desires (``desired``: owner -> entities, install-ordered,
rules before port maps) and hears of (re)connections through ``on_connected``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence

import attrs
import grpc
from finsy import P4Schema
from finsy.p4entity import P4Entity
from finsy.proto import p4r

from pyoffload.agent.config import TargetTls
from pyoffload.agent.errors import AgentError
from pyoffload.agent.failures import RepeatedFailure
from pyoffload.agent.installer import (
    Change,
    Installer,
    ReconcileResult,
    configured,
    reconcile_result,
)
from pyoffload.errors import PyoffloadError
from pyoffload.gate import Gate
from pyoffload.p4runtime import P4RuntimeClient
from pyoffload.p4runtime.entities import entity_key
from pyoffload.pipeline import names

_log = logging.getLogger(__name__)

Desired = Mapping[str, Sequence[P4Entity]]
"""Owner (a VNIC's rules, or its port map) -> its entities, install-ordered."""

EXCLUSIVE_PATIENCE_S = 1.0
"""How long the removal of entries no VNIC claims waits for a moment with no apply in
flight before it holds new applies back (so it does not make a guest wait for another's
apply to end)."""

MANAGED_TABLES = tuple(t for t in names.ALL_TABLES if t != names.CT_OVERFLOW)
"""Tables whose every entry belongs to some VNIC's desired state (``vnic.ct_overflow``
is the slow path's, adopted by it)."""


def read_managed(client: P4RuntimeClient, schema: P4Schema) -> list[p4r.Entity]:
    """Everything the target holds of what the agent manages: the entries of its
    tables, the load balancer's members and groups, and the flow meters that have a
    configuration (an unconfigured meter cell is no one's)."""
    queries = [p4r.Entity(table_entry=p4r.TableEntry(table_id=schema.tables[t].id))
               for t in MANAGED_TABLES]
    for query in queries:  # the rules' direct meter configs are part of the entries
        if schema.tables[query.table_entry.table_id].direct_meter is not None:
            query.table_entry.meter_config.SetInParent()
    profile = schema.action_profiles[names.LB_SELECTOR].id
    queries.append(p4r.Entity(action_profile_member=p4r.ActionProfileMember(
        action_profile_id=profile)))
    queries.append(p4r.Entity(action_profile_group=p4r.ActionProfileGroup(
        action_profile_id=profile)))
    queries.append(p4r.Entity(meter_entry=p4r.MeterEntry(
        meter_id=schema.meters[names.FLOW_METER].id)))
    return [e for e in client.read(queries) if configured(e)]


@attrs.frozen(kw_only=True)
class SessionStatus:
    """What the session can say about the target, for ``pyoffload status``."""

    address: str
    connected: bool
    primary: bool
    """This agent is the target's primary controller (only the primary may write)."""
    reconnects: int
    last_reconnect: float | None
    last_reconcile: float | None
    """When the target was last read back and found (or made) equal to the desired state."""
    drift_repairs: int
    """Updates written since start to undo changes made behind the agent's back."""
    repairs_by_owner: Mapping[str, int]
    last_error: str


class TargetSession:
    """The live connection to one target (see the module docstring)."""

    def __init__(
        self,
        address: str,
        *,
        device_id: int,
        schema: P4Schema,
        gate: Gate,
        desired: Callable[[], Desired],
        claim: Callable[[p4r.Entity], str | None],
        on_connected: Callable[[P4RuntimeClient, bool], None],
        on_lost: Callable[[], None],
        on_fresh: Callable[[P4RuntimeClient, bool], None] = lambda client, empty: None,
        on_repaired: Callable[[Mapping[str, int]], None] = lambda by_owner: None,
        on_first_adopt: Callable[[Sequence[p4r.Entity]], None] = lambda actual: None,
        reconcile_interval: float = 5.0,
        backoff: tuple[float, float] = (0.1, 5.0),
        reconnect: bool = True,
        election_id: int = 1,
        tls: TargetTls | None = None,
    ) -> None:
        self.address = address
        self._tls = tls
        self.device_id = device_id
        self.schema = schema
        self._gate = gate
        """The agent's applies hold it shared; adopting and repairing, exclusively."""
        self._desired = desired
        self._claim = claim
        """The VNIC whose applies may write an entity found on the target (None: nobody's)."""
        self._on_connected = on_connected
        self._on_lost = on_lost
        self._on_fresh = on_fresh
        self._on_repaired = on_repaired
        """Told, per owner, how many updates a reconciliation took to undo drift."""
        """(``on_fresh``:) Called when a target has the rules but no port map yet (it just
        got the pipeline: ``empty``; or an agent died restoring it): the moment to put
        connection state back, before any traffic is admitted."""
        self._on_first_adopt = on_first_adopt
        """Shown what a target the agent adopts at start holds, before anything is
        corrected; raises to refuse it (see Agent._refuse_unrecorded)."""
        self._adopted = False
        self.reconcile_interval = reconcile_interval
        self._backoff = backoff
        self._reconnect = reconnect
        self._election_id = election_id
        self._client: P4RuntimeClient | None = None
        self._installer: Installer | None = None
        self._stop = threading.Event()
        self._poke = threading.Event()
        self._threads: list[threading.Thread] = []
        self._reconnects = 0
        self._last_reconnect: float | None = None
        self._last_reconcile: float | None = None
        self._drift_repairs = 0
        self._repairs_by_owner: dict[str, int] = {}
        self._backup_since: float | None = None
        """When another controller took the primary role from this agent (monotonic)."""
        self.last_error = ""

    # -- life cycle -------------------------------------------------------

    def start(self, timeout: float) -> None:
        """Connect and adopt the target (or raise); then keep it so in the background."""
        self._connect(timeout)
        if self._reconnect:
            for target, name in ((self._watch, "pyoffload-target-watch"),
                                 (self._reconcile_loop, "pyoffload-reconcile")):
                thread = threading.Thread(target=target, daemon=True, name=name)
                thread.start()
                self._threads.append(thread)

    def stop(self) -> None:
        """Close the connection; the target keeps everything it holds (and forwards)."""
        self._stop.set()
        self._poke.set()
        if self._client is not None:
            self._client.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def live(self) -> tuple[P4RuntimeClient, Installer]:
        """The client and installer, or UNAVAILABLE while the target is away."""
        if self._client is None or self._installer is None:
            raise AgentError(grpc.StatusCode.UNAVAILABLE,
                             f"the P4 target at {self.address} is not connected; "
                             "the agent is reconnecting, retry shortly")
        return self._client, self._installer

    def writer(self) -> tuple[P4RuntimeClient, Installer]:
        """``live()``, and this agent is the target's primary controller (only the primary
        may write): else UNAVAILABLE, never a write that silently does nothing."""
        client, installer = self.live()
        if not client.primary:
            raise AgentError(grpc.StatusCode.UNAVAILABLE, not_primary(client, self.address))
        return client, installer

    def _role_changed(self, client: P4RuntimeClient, primary: bool) -> None:
        """Say when this agent stops or starts being the target's primary (from the
        client's stream reader: quick, no blocking); once primary again, repair now."""
        if not primary:
            self._backup_since = time.monotonic()
            _log.warning("%s; guests' applies and withdraws are refused meanwhile",
                         not_primary(client, self.address))
            return
        since, self._backup_since = self._backup_since, None
        _log.warning("primary again on the target at %s%s; repairing what changed meanwhile",
                     self.address, "" if since is None
                     else f" after {time.monotonic() - since:.1f} s as a backup")
        self._poke.set()

    @property
    def client(self) -> P4RuntimeClient | None:
        return self._client

    def request_repair(self) -> None:
        """Reconcile now rather than at the next interval (an undo failed, say)."""
        self._poke.set()

    # -- connecting and adopting ------------------------------------------------

    def _connect(self, timeout: float) -> None:
        client = P4RuntimeClient(
            self.address, device_id=self.device_id, election_id=self._election_id,
            credentials=None if self._tls is None else self._tls.credentials(),
            server_name=None if self._tls is None else self._tls.server_name)
        client.open(timeout=timeout)
        try:
            pushed = client.ensure_pipeline(self.schema)
            installer = Installer(client=client, schema=self.schema)
            with self._gate.exclusive():
                drift = self._adopt(client, installer, pushed)
                self._client, self._installer = client, installer
        except BaseException:
            client.close()
            raise
        client.on_role_change = lambda primary: self._role_changed(client, primary)
        self._on_connected(client, pushed)
        _log.info("agent connected to %s (pipeline %s)", self.address,
                  "pushed" if pushed else "already there: adopted")
        if drift.written:
            _log.warning(
                "drift found when adopting the target at %s: it held what the state file does "
                "not record as in force (an "
                "apply or withdraw cut short when an agent stopped, or another controller's "
                "writes): %d updates put back what the guests were told (%s)", self.address,
                drift.written, _per_owner(drift.by_owner))
            self._count_repairs(drift)
            self._on_repaired(drift.by_owner)

    def _adopt(self, client: P4RuntimeClient, installer: Installer, pushed: bool
               ) -> ReconcileResult:
        """Make the target hold the desired state; what that took on a target that held
        our rules (drift: it was not what the state file records). A target that just got
        the pipeline holds nothing: the rules go in before the port maps, so no VNIC's
        traffic is admitted before its rules are there, and its connections in between.
        The port maps go in last, so a target that has our pipeline but no port map is
        one whose restore did not finish (the agent died in it): it is finished now."""
        desired = self._desired()
        actual = [] if pushed else read_managed(client, self.schema)
        if not self._adopted:
            self._on_first_adopt(actual)
            self._adopted = True
        port_map = self.schema.tables[names.PORT_MAP].id
        restoring = pushed or (any(owner.endswith(PORTS_SUFFIX) and entities
                                  for owner, entities in desired.items()) and not any(
            e.WhichOneof("entity") == "table_entry" and e.table_entry.table_id == port_map
            for e in actual))
        if restoring:
            rules = {owner: entities for owner, entities in desired.items()
                     if not owner.endswith(PORTS_SUFFIX)}
            result = installer.reconcile(rules, actual)
            if result.written:
                _log.info("target at %s %s: %d rule entries of %d VNICs put back before any "
                          "port map admits traffic", self.address,
                          "runs our pipeline afresh" if pushed else "held no port map",
                          result.written, len(rules))
            self._on_fresh(client, pushed)
            actual = read_managed(client, self.schema)  # the rules and connections are in
        result = installer.reconcile(desired, actual, claim=self._claim)
        self._last_reconcile = time.time()
        return reconcile_result([]) if restoring else result  # (restoring: put back)

    def reconcile(self) -> ReconcileResult:
        """Read the target back now and repair any drift (counted as such).

        The target is read while the applies go on. What the reading shows of a VNIC
        no apply touched meanwhile (its gate stamp did not move) is what the target holds;
        what it shows of the others may be an apply half-way. So each VNIC's drift is
        repaired holding back only that VNIC's applies, and read again by key first when
        one of them ran since the reading: a guest is held back only while its own
        entries are put right. Entries no VNIC claims are removed with every apply held
        back (after a patient wait for a quiet moment)."""
        client, installer = self.writer()
        vnics = {vnic_of(owner) for owner in self._desired()}
        before = {vnic: self._gate.stamp(vnic) for vnic in vnics}
        # taken after the first stamps: a VNIC no apply touched from the first stamp to
        # the last is the same here as in the reading (the others are read again)
        desired = self._desired()
        actual = read_managed(client, self.schema)
        after = {vnic: self._gate.stamp(vnic) for vnic in vnics}
        groups: dict[str | None, list[tuple[str, Change]]] = {}
        for owner, change in installer.drift(installer.keyed(desired), actual):
            vnic = vnic_of(owner) if owner else self._claim(change.entity)
            groups.setdefault(vnic, []).append((owner, change))
        repaired: list[tuple[str, Change]] = []
        for vnic, changes in sorted(groups.items(), key=lambda item: item[0] is None):
            stamp = after.get(vnic) if vnic is not None else None
            settled = vnic is not None and stamp is not None and stamp == before.get(vnic)
            repaired += self._repair(vnic, changes, stamp if settled else None)
        self._last_reconcile = time.time()
        result = reconcile_result(repaired)
        self._count_repairs(result)
        return result

    def _count_repairs(self, result: ReconcileResult) -> None:
        """Count drift written right (found by a reconciliation, or when adopting)."""
        self._drift_repairs += result.written
        for owner, written in result.by_owner.items():
            self._repairs_by_owner[owner] = self._repairs_by_owner.get(owner, 0) + written

    def _repair(self, vnic: str | None, changes: list[tuple[str, Change]], stamp: int | None
                ) -> list[tuple[str, Change]]:
        """Write ``changes`` (drift a reading showed in ``vnic``'s entries; None: in nobody's)
        with that VNIC's applies held back (None: every apply). ``stamp``: the VNIC's, when
        no apply of it ran during the reading; unless no apply ran since either, the
        entries are read again by key first, and only what still differs is written."""
        hold = (self._gate.exclusive(patience=EXCLUSIVE_PATIENCE_S) if vnic is None
                else self._gate.exclusive(key=vnic))
        with hold:
            _client, installer = self.writer()
            if vnic is None or stamp is None or not self._gate.untouched_since(vnic, stamp):
                fresh = installer.read_present(c.entity for _owner, c in changes)
                desired = {owner: entities for owner, entities in self._desired().items()
                           if vnic is None or vnic_of(owner) == vnic}
                keys = {entity_key(c.entity) for _owner, c in changes}
                found = installer.drift(installer.keyed(desired), fresh, only=keys)
                changes = [(owner, c) for owner, c in found
                           if (vnic_of(owner) if owner else self._claim(c.entity)) == vnic]
            installer.repair([c for _owner, c in changes])
        return changes

    # -- background: reconnect, reconcile, regain primary ------------------------

    def _watch(self) -> None:
        """Reconnect (and adopt) whenever the target's stream ends."""
        while not self._stop.is_set():
            client = self._client
            if client is None:
                return
            client.disconnected.wait()
            if self._stop.is_set():
                return
            _log.warning("lost the target at %s; reconnecting", self.address)
            client.close()
            with self._gate.exclusive():
                self._client = self._installer = None
            self._on_lost()
            delay, failures, lost_at = self._backoff[0], RepeatedFailure(_log), time.monotonic()
            while not self._stop.is_set():
                try:
                    self._connect(timeout=max(delay, 1.0))
                    break
                except (PyoffloadError, grpc.RpcError, OSError) as exc:
                    failures.failed(exc, f"reconnecting to {self.address} failed (retrying "
                                         f"with backoff up to {self._backoff[1]:.0f} s)")
                    self.last_error = failures.error
                    self._stop.wait(delay)
                    delay = min(delay * 2, self._backoff[1])
            else:
                return
            self._reconnects += 1
            self._last_reconnect = time.time()
            self.last_error = ""
            failed, _seconds = failures.ended()
            _log.warning("reconnected to %s after %d failed attempts in %.1f s", self.address,
                         failed, time.monotonic() - lost_at)

    def _reconcile_loop(self) -> None:
        while not self._stop.is_set():
            self._poke.wait(self.reconcile_interval)
            self._poke.clear()
            if self._stop.is_set():
                return
            client = self._client
            if client is None:
                continue
            try:
                if not client.primary:
                    self.last_error = not_primary(client, self.address)
                    client.claim_primary()
                    if not client.wait_primary(timeout=1.0):
                        continue
                result = self.reconcile()
                self.last_error = ""
                if result.written:
                    _log.warning("repaired drift on the target: %d updates (%s)",
                                 result.written, _per_owner(result.by_owner))
                    self._on_repaired(result.by_owner)
            except Exception as exc:  # this loop must outlive any one failure
                self.last_error = str(exc).splitlines()[0] if str(exc) else repr(exc)
                _log.warning("reconciliation failed: %s", self.last_error)

    def occupancy(self) -> dict[str, int]:
        """Entries per managed table, read from the target now."""
        client, _installer = self.live()
        return _occupancy(self.schema, read_managed(client, self.schema))

    def status(self) -> SessionStatus:
        client = self._client
        return SessionStatus(
            address=self.address, connected=client is not None,
            primary=client is not None and client.primary,
            reconnects=self._reconnects, last_reconnect=self._last_reconnect,
            last_reconcile=self._last_reconcile, drift_repairs=self._drift_repairs,
            repairs_by_owner=dict(self._repairs_by_owner), last_error=self.last_error)


def not_primary(client: P4RuntimeClient, address: str) -> str:
    """Why this agent may not write to the target now, as the target's last arbitration
    update said: another controller holds the primary role (the highest election id), or
    none does (it left; this agent is taking the role back)."""
    if client.no_primary:
        return (f"no controller is primary for the target at {address} (the one with "
                f"election id {client.highest_election_id} left); this agent is taking "
                "the primary role back, then it repairs the target")
    return (f"another P4Runtime controller is primary for the target at {address} "
            f"(election id {client.highest_election_id}); this agent may not write until "
            "it leaves, then it takes the role back and repairs the target")


PORTS_SUFFIX = "#ports"


def ports_owner(vnic: str) -> str:
    """The installer's name for the host-owned entries (port map) of a VNIC."""
    return f"{vnic}{PORTS_SUFFIX}"


def vnic_of(owner: str) -> str:
    """The VNIC an owner's entries belong to (its rules, or its port map)."""
    return owner.removesuffix(PORTS_SUFFIX)


def _per_owner(by_owner: Mapping[str, int]) -> str:
    """Updates per owner, for the log ("vm-1: 6, vm-1's port map: 2, no VNIC's: 1")."""
    def shown(owner: str) -> str:
        if not owner:
            return "no VNIC's"
        if owner.endswith(PORTS_SUFFIX):
            return f"{vnic_of(owner)}'s port map"
        return owner
    return ", ".join(f"{shown(owner)}: {count}" for owner, count in sorted(by_owner.items()))


def _occupancy(schema: P4Schema, actual: Sequence[p4r.Entity]) -> dict[str, int]:
    """Entries per managed table among ``actual`` (read from the target)."""
    names_by_id = {schema.tables[t].id: t for t in MANAGED_TABLES}
    counts = dict.fromkeys(MANAGED_TABLES, 0)
    for entity in actual:
        if entity.WhichOneof("entity") == "table_entry":
            table = names_by_id.get(entity.table_entry.table_id)
            if table is not None:
                counts[table] += 1
    return counts
