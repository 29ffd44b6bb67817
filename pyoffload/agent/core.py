"""The agent: one VNIC pipeline, many guests, each bound to its own VNIC.

``apply`` is the method at the heart of pyoffload: validate the guest's
request (nothing is installed when any part is wrong), check its quotas and
the pipeline's capacity, compile it, install the difference all or nothing,
journal it (when the agent has a state file: ``journal.py``), and only then
make it the VNIC's current generation. The desired state is durable: a
restarted agent reads it from the journal, compiles the same requests with the
same numbers, and adopts the live target (``session.py``): it reads back what
the target holds and corrects only what differs, so the data path keeps
forwarding and keeps its connections. The session also reconnects when the
target goes away, reconciles periodically (drift repaired and counted), and
says so (status and the guests' Watch streams).

Guests are isolated from each other: each VNIC's requests are serialised by a
lock of its own, and different VNICs' applies run at the same time. The work
they share is taken in short turns: numbers from the pool (a ``Reservation``,
number by number), table capacity (counted with the other VNICs' applies in
flight), the target's writes (batch by batch), the state file's commit. Only the
session's adoption of a target stops every apply, through the gate
(``pyoffload.gate``); its repair of drift stops only the applies of the VNIC whose
entries it repairs (each entry is claimed by its VNIC: ``claim``). A VNIC's state is
an immutable snapshot swapped under a short lock, so a reader never pairs one
generation's rules with another's counters.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import NoReturn, TypeVar

import attrs
import grpc
from finsy import P4Schema
from finsy.p4entity import P4Entity
from finsy.proto import p4r
from guest_shim.syntax import quote

from guest_shim import offload_pb2 as pb
from pyoffload.agent.checkpoint import Checkpointer
from pyoffload.agent.config import HostConfig, VnicConfig
from pyoffload.agent.connections import Connection, Learned
from pyoffload.agent.connstate import ConnectionKeeper
from pyoffload.agent.errors import AgentError
from pyoffload.agent.events import EventHub
from pyoffload.agent.handover import (
    ExportedConnection,
    ImportResult,
    export_connections,
)
from pyoffload.agent.installer import InstallError
from pyoffload.agent.journal import Journal, JournalError, VnicRecord
from pyoffload.agent.quota import ConnectionQuotas
from pyoffload.agent.readouts import VnicStats, read_drops, read_stats
from pyoffload.agent.session import MANAGED_TABLES, SessionStatus, TargetSession, ports_owner
from pyoffload.agent.slowpath import SlowPath
from pyoffload.bulk import no_cyclic_gc
from pyoffload.compiler import (
    CompiledRequest,
    Reservation,
    ResourceExhausted,
    ResourcePool,
    VnicTarget,
    compile_request,
)
from pyoffload.compiler.compile import ternary_port_fields
from pyoffload.compiler.resources import NumberSpace
from pyoffload.gate import Gate
from pyoffload.p4runtime import P4RuntimeClient, P4RuntimeError
from pyoffload.pipeline import names
from pyoffload.pipeline.artifacts import Artifacts, load_constants
from pyoffload.pipeline.constants import Policy, check_constants
from pyoffload.pipeline.entries import port_map_entries
from pyoffload.pipeline.names import check_names
from pyoffload.rules import OffloadRequest, RuleError, validate_for_vnic
from pyoffload.rules.convert import from_proto, to_proto

_log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_GENERATION = 2**53 - 1
"""The last generation a VNIC gets (exact in JSON too; the state file holds 2**63 - 1)."""
GENERATION_STEP = 2**32
"""Most generations one apply may skip (so a guest cannot use them all up in a few)."""
HANDOVER_CHUNK = 2_500
"""Connections per chunk of a streamed export (~300 KiB of JSON): small enough that
the destination is soon busy writing while the source reads the next ones."""

Kind = pb.Event.Kind


@attrs.frozen(kw_only=True)
class ApplyOutcome:
    """What an apply did."""

    generation: int
    inserted: int
    modified: int
    deleted: int
    warnings: tuple[str, ...]


@attrs.frozen(kw_only=True)
class VnicState:
    """A VNIC's configuration and the generation in force (a snapshot: replaced whole)."""

    config: VnicConfig
    generation: int = 0
    request: OffloadRequest = attrs.field(factory=OffloadRequest)
    compiled: CompiledRequest | None = None
    at_connection_quota: bool = False
    """The VNIC tracks its quota of connections: the pipeline admits no new one."""


def _claim_fields(schema: P4Schema) -> dict[int, tuple[int, str | None]]:
    """See ``Agent._claim_fields``."""
    fields: dict[int, tuple[int, str | None]] = {}
    for table in MANAGED_TABLES:
        info = schema.tables[table]
        by_name = {f.name: f.id for f in info.match_fields}
        if "vnic_id" in by_name:
            fields[info.id] = (by_name["vnic_id"], None)
        elif table == names.PORT_MAP:
            fields[info.id] = (by_name["port"], "port")
        elif table == names.CT_TIMEOUT:
            fields[info.id] = (by_name["profile"], "profile")
    return fields


def _match_value(match: p4r.FieldMatch) -> int:
    """The value a key field matches (exact, or the value of a ternary, LPM or optional
    match), as a number."""
    kind = match.WhichOneof("field_match_type")
    return int.from_bytes(getattr(match, kind).value, "big") if kind else 0


TargetStatus = SessionStatus
"""What ``Agent.target_status`` reports (the session's view of the target)."""


class Agent:
    """Drives one P4Runtime target for the VNICs of a host configuration."""

    def __init__(
        self,
        config: HostConfig,
        address: str,
        *,
        artifacts: Artifacts | None = None,
        device_id: int | None = None,
        reconnect: bool = True,
        backoff: tuple[float, float] = (0.1, 5.0),
        thrift_address: str | None = None,
        journal: Journal | None = None,
        remove_unrecorded: bool = False,
    ) -> None:
        """``journal``: the host's state file (``Journal.open(config.state.path)``); every
        accepted apply is committed to it before it is acknowledged, and the VNICs' desired
        state is read back from it here. Without one nothing survives the process. With
        one, a target that holds rules of a VNIC the state file has no record of is
        refused at start (a mistyped state path would remove every guest's rules),
        unless ``remove_unrecorded``."""
        self.config = config
        self.address = address
        self.thrift_address = thrift_address or config.target.thrift_address
        """BMv2's Thrift runtime address: its registers are not served over P4Runtime."""
        self.device_id = config.target.device_id if device_id is None else device_id
        self.artifacts = artifacts or Artifacts.packaged()
        self.const = load_constants(self.artifacts)
        self.schema = P4Schema(self.artifacts.p4info, self.artifacts.bmv2_json)
        check_names(self.schema)  # a foreign or stale program fails here, naming what it lacks
        check_constants(self.const)
        self.events = EventHub()
        self._ternary_ports = ternary_port_fields(self.schema)
        p4info = self.schema.p4info
        self._sizes = {item.preamble.name: int(item.size)
                       for group in (p4info.tables, p4info.meters, p4info.counters,
                                     p4info.action_profiles)
                       for item in group}
        """Capacity of every table, meter, counter and action profile, from the P4Info."""
        self._lock = threading.Lock()
        """Held briefly: to swap a VNIC's snapshot, to count capacity in flight."""
        self._landed = threading.Condition(self._lock)
        """Notified whenever an apply in flight ends (its capacity is known again)."""
        self._vnics = {v.name: VnicState(config=v) for v in config.vnics}
        self._vnic_locks = {name: threading.Lock() for name in self._vnics}
        """One per VNIC: its applies, withdraws, admission changes and imports in turn."""
        self._vnic_by_id = {v.id: v.name for v in config.vnics}
        self._vnic_by_port = {port: v.name for v in config.vnics
                              for port in (v.guest_port, v.uplink_port)}
        self._claim_fields = _claim_fields(self.schema)
        """Table id -> (the key field that tells whose an entry is, and how: the VNIC id,
        a port, or a timeout profile's number)."""
        self.gate = Gate()
        self._numbers_lock = threading.Lock()
        """Held while a number is taken from or given back to the pool."""
        self._in_flight: dict[str, Mapping[str, int]] = {}
        """Per table, the most entries each apply in flight may hold at once (its old ones
        and its new ones: the installer inserts before it deletes)."""
        self._pool = ResourcePool.sized(
            meters=self._size(names.FLOW_METER, "meters"),
            counters=self._size(names.FLOW_COUNTER, "counters"),
        )
        self._connections = 0
        self.journal = journal
        if journal is not None:
            self._restore(journal)
        self.slow_path = SlowPath(self.schema,
                                  on_overflow_full=self._overflow_full)
        self.conns = ConnectionKeeper(self.schema, self.slow_path,
                                      thrift_address=self.thrift_address, journal=journal)
        self.quotas = ConnectionQuotas(self)
        self.slow_path.connections.on_learned = self.quotas.poke
        self.session = TargetSession(
            address, device_id=self.device_id, schema=self.schema, gate=self.gate,
            desired=self._desired, claim=self.claim, on_connected=self._connected,
            on_lost=self._lost,
            on_fresh=self._restore_connections, on_repaired=self._repaired,
            on_first_adopt=(self._refuse_unrecorded if journal is not None
                            and not remove_unrecorded else lambda actual: None),
            reconcile_interval=config.state.reconcile_interval, backoff=backoff,
            reconnect=reconnect, tls=config.target.tls)
        self.checkpoints = None if journal is None else Checkpointer(
            journal, config.state.checkpoint_interval, self.vnic_names, self.learned,
            lambda vnic, learned: [c for chunk in self.export_chunks(vnic, learned=learned)
                                   for c in chunk])

    # -- life cycle -------------------------------------------------------

    def start(self, timeout: float = 10.0) -> Agent:
        """Connect, push the pipeline only if the target runs none (or another), and make
        the target hold every VNIC's desired state (adopting what is already there)."""
        self.session.start(timeout)
        self.quotas.start()
        if self.checkpoints is not None:
            self.checkpoints.start()
        return self

    def stop(self) -> None:
        """Disconnect; the target keeps its tables and registers and goes on forwarding."""
        if self.checkpoints is not None:
            self.checkpoints.stop()
        self.quotas.stop()
        self.events.close()
        self.session.stop()

    def _restore(self, journal: Journal) -> None:
        """The desired state the journal holds: each VNIC's request, compiled again with
        the numbers it held, so the entities are the ones installed before."""
        records = journal.load()
        unknown = sorted(set(records) - set(self._vnics))
        for name in unknown:
            _log.warning("state file %s: VNIC %s is no longer configured; its rules are "
                         "removed from the target", journal.path, name)
        try:
            for name in self._vnics:
                if name in records:
                    self._pool.hold(json.loads(records[name].resources))
            for name, state in self._vnics.items():
                record = records.get(name)
                if record is None:
                    continue
                request = from_proto(pb.OffloadRequest.FromString(record.request))
                target = VnicTarget(name=name, vnic_id=state.config.id)
                compiled = compile_request(request, target, self.const, self._pool,
                                           ternary_ports=self._ternary_ports)
                if record.entities and len(record.entities) != len(compiled.entities):
                    _log.warning("state file %s: VNIC %s: this pyoffload compiles its request "
                                 "to %d entities where %d were installed; the target is "
                                 "reconciled to this version's", journal.path, name,
                                 len(compiled.entities), len(record.entities))
                self._vnics[name] = attrs.evolve(
                    state, generation=record.generation, compiled=compiled,
                    request=attrs.evolve(request, generation=record.generation))
        except (ValueError, RuleError, ResourceExhausted) as exc:
            raise JournalError(
                f"state file {journal.path}: VNIC {name}'s journaled request cannot be "
                f"compiled for this pipeline ({exc}); restore the pyoffload version that "
                "wrote it, or move the file away to start empty") from None
        for name in unknown:
            journal.forget(name)

    def _refuse_unrecorded(self, actual: Sequence[p4r.Entity]) -> None:
        """Refuse to adopt a target holding rules of configured VNICs the state file has
        no record of: making it hold the desired state would remove them, and they are
        most likely this host's guests' rules recorded in another state file."""
        unrecorded = {name for name, state in self._vnics.items() if state.compiled is None}
        port_map = self.schema.tables[names.PORT_MAP].id
        found: Counter[str] = Counter()
        for entity in actual:
            if entity.WhichOneof("entity") == "table_entry" and \
                    entity.table_entry.table_id == port_map:
                continue  # the host's own: put there for every configured VNIC
            owner = self.claim(entity)
            if owner in unrecorded:
                found[owner] += 1
        if found:
            held = ", ".join(f"VNIC {name}: {count}" for name, count in sorted(found.items()))
            path = self.journal.path if self.journal is not None else "(none)"
            raise AgentError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"the target at {self.address} holds rules the state file {path} has no "
                f"record of ({held} entries); starting would remove them. If they are "
                "this host's guests' rules, give the state file that recorded them "
                "(state.path in the host configuration); to remove them, start once with "
                "`pyoffload up --remove-unrecorded-rules`")

    def _desired(self) -> dict[str, list[P4Entity]]:
        """Every owner's entities, rules first, port maps last (called under the lock)."""
        desired: dict[str, list[P4Entity]] = {
            name: list(state.compiled.entities) for name, state in self._vnics.items()
            if state.compiled is not None}
        for name, state in self._vnics.items():
            desired[ports_owner(name)] = self._port_entities(state)
        return desired

    def _vnic_slots(self) -> dict[str, tuple[int, CompiledRequest | None]]:
        return {name: (state.config.id, state.compiled) for name, state in self._vnics.items()}

    def _restore_connections(self, client: P4RuntimeClient, empty: bool) -> None:
        """The target came back (``empty``, or half restored) with the rules in and no
        port map yet: put the checkpoint back."""
        if not empty:  # what a restore cut short left: overflow slots in use, live slots
            self.slow_path.adopt(client)
        self.conns.restore(client, self._vnic_slots(), empty=empty)

    def _connected(self, client: P4RuntimeClient, pushed: bool) -> None:
        """A (re)connection: the slow path takes over the stream; the guests are told."""
        self.slow_path.adopt(client)
        if not pushed and not self.slow_path.connections.known():
            self.conns.relearn(self._vnic_slots())
        self.slow_path.connections.configure(client)
        self.slow_path.run(client)
        self._connections += 1
        if self._connections > 1:
            for name, state in self._vnics.items():
                self.events.publish(name, Kind.KIND_TARGET_REINSTALLED,
                                    generation=state.generation,
                                    message="rules reinstalled on the restarted data path"
                                    if pushed else "the data path was adopted as it was")

    def _repaired(self, by_owner: Mapping[str, int]) -> None:
        """Tell each VNIC's guest that its rules on the target were put right."""
        for name in self._vnics:
            count = by_owner.get(name, 0) + by_owner.get(ports_owner(name), 0)
            if count:
                self.events.publish(
                    name, Kind.KIND_TARGET_REINSTALLED, generation=self._vnics[name].generation,
                    message=f"{count} entries were changed on the data path behind the agent's "
                            "back (another controller, a lost write) and have been repaired")

    def _lost(self) -> None:
        for vnic in self._vnics:
            self.events.publish(vnic, Kind.KIND_TARGET_RESTARTED,
                                message="the data path went away; reconnecting")

    def drops(self) -> dict[str, int]:
        """Packets the pipeline dropped, by reason (the ``DROP_*`` of defines.p4), all VNICs."""
        client, _installer = self.session.live()
        return read_drops(client, self.schema)

    # -- the tracked-connection quota (see quota.py) ---------------------------

    def learned_count(self, vnic: str) -> int:
        return self.slow_path.connections.count(self.state(vnic).config.id)

    def live_count(self, vnic: str) -> int:
        """The VNIC's connections whose slots are held now (read from the pipeline)."""
        client, _installer = self.session.live()
        vnic_id = self.state(vnic).config.id
        now = self.conns.clock(client)
        registers = self.conns.registers(client)
        return self.slow_path.connections.live_count(registers, now, vnic_id)

    def connection_quota(self, vnic: str) -> tuple[int, bool]:
        """(the VNIC's tracked-connection quota, whether new connections are refused now)."""
        state = self.state(vnic)
        return state.config.quotas.tracked_connections, state.at_connection_quota

    def set_admission(self, vnic: str, admit: bool, live: int) -> None:
        """Let the pipeline track new connections of ``vnic`` again, or stop it."""
        with self._vnic_lock(vnic), self.gate.shared(vnic):
            state = attrs.evolve(self.state(vnic), at_connection_quota=not admit)
            _client, installer = self.session.writer()
            installer.install(ports_owner(vnic), self._port_entities(state))
            with self._lock:
                self._vnics[vnic] = state
        limit = state.config.quotas.tracked_connections
        if admit:
            _log.info("VNIC %s: %d of %d tracked connections: new ones admitted again",
                      vnic, live, limit)
        else:
            self.events.publish(
                vnic, Kind.KIND_QUOTA_REACHED, quota="tracked_connections",
                message=f"{live} tracked connections reach the quota of {limit}: new "
                        "connections are refused until some end")

    def _overflow_full(self, vnic_id: int) -> None:
        for name, state in self._vnics.items():
            if state.config.id == vnic_id:
                self.events.publish(
                    name, Kind.KIND_QUOTA_REACHED, quota="conntrack_overflow",
                    message="a new connection collided in the conntrack table and every "
                            "overflow slot is taken: it is not tracked")

    # -- host-owned entries -----------------------------------------------

    def claim(self, entity: p4r.Entity) -> str | None:
        """The VNIC whose applies may write ``entity`` (found on the target): named by the
        VNIC id or port in its key, or by who holds its number in the pool; None when no
        VNIC does (nobody's: an orphan any apply might take the number of)."""
        which = entity.WhichOneof("entity")
        if which == "table_entry":
            te = entity.table_entry
            field, space = self._claim_fields.get(te.table_id, (None, None))
            value = next((_match_value(m) for m in te.match if m.field_id == field), None)
            if value is None:
                return None
            if space is None:
                return self._vnic_by_id.get(value)
            if space == "port":
                return self._vnic_by_port.get(value)
            return self._holder(self._pool.ct_profiles, value)
        if which == "action_profile_member":
            return self._holder(self._pool.lb_members, entity.action_profile_member.member_id)
        if which == "action_profile_group":
            return self._holder(self._pool.lb_groups, entity.action_profile_group.group_id)
        if which == "meter_entry":
            return self._holder(self._pool.meters, entity.meter_entry.index.index)
        return None

    def _holder(self, space: NumberSpace, number: int) -> str | None:
        with self._numbers_lock:
            owner = space.holder(number)
        return owner[0] if isinstance(owner, tuple) and owner[:1] and isinstance(
            owner[0], str) else None

    def _port_entities(self, state: VnicState) -> list[P4Entity]:
        vnic = state.config
        return list(port_map_entries(vnic_id=vnic.id, guest_port=vnic.guest_port,
                                     uplink_port=vnic.uplink_port,
                                     policy=Policy[vnic.default_policy.upper()],
                                     admit_new=not state.at_connection_quota))

    # -- the offload path ---------------------------------------------------

    def state(self, vnic: str) -> VnicState:
        try:
            return self._vnics[vnic]
        except KeyError:
            raise AgentError(grpc.StatusCode.NOT_FOUND, f"no VNIC named {vnic!r}") from None

    def _vnic_lock(self, vnic: str) -> threading.Lock:
        self.state(vnic)  # NOT_FOUND for an unknown VNIC
        return self._vnic_locks[vnic]

    def apply(self, vnic: str, request: OffloadRequest, *,
              still_wanted: Callable[[], bool] | None = None) -> ApplyOutcome:
        """Install ``request`` as ``vnic``'s whole rule set, all or nothing.

        ``still_wanted``: asked once the target holds the new rules, just before they
        are committed; False (the guest's deadline passed, or it went away) undoes them
        and raises DEADLINE_EXCEEDED, so what the guest is told is what is in force."""
        with self._vnic_lock(vnic), no_cyclic_gc():
            return self._apply(vnic, request, still_wanted)

    def _apply(self, vnic: str, request: OffloadRequest,
               still_wanted: Callable[[], bool] | None) -> ApplyOutcome:
        """``apply`` with the VNIC's lock held."""
        state = self.state(vnic)
        try:
            request = validate_for_vnic(request, vnic)
        except RuleError as exc:
            raise AgentError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        generation = self._next_generation(state, request.generation)
        self.check_quotas(vnic, len(request.flows), sum(len(f.rules) for f in request.flows))
        self.session.writer()  # no compiling for a target that cannot take it
        numbers = Reservation(self._pool, vnic, self._numbers_lock)
        target = VnicTarget(name=vnic, vnic_id=state.config.id)
        try:
            try:
                compiled = compile_request(request, target, self.const, numbers,
                                           ternary_ports=self._ternary_ports)
            except ResourceExhausted as exc:
                raise AgentError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                 f"VNIC {vnic}: {exc}; nothing was installed") from None
            self._reserve_capacity(vnic, compiled)
            with self.gate.shared(vnic):
                _client, installer = self.session.writer()
                try:
                    result = installer.install(vnic, compiled.entities)
                except InstallError as exc:
                    if exc.needs_repair:
                        self.session.request_repair()
                    for line in str(exc).splitlines()[:1]:
                        self.events.publish(vnic, Kind.KIND_RULE_REJECTED, message=line)
                    raise AgentError(grpc.StatusCode.INTERNAL, str(exc)) from None
                request = attrs.evolve(request, generation=generation)
                if still_wanted is not None and not still_wanted():
                    self._take_back(vnic, state, "the guest's deadline passed (or it went "
                                    "away) before the rules were committed",
                                    grpc.StatusCode.DEADLINE_EXCEEDED)
                self._journal(vnic, state, generation, request, numbers.holdings(
                    compiled.owners))
                numbers.commit(compiled.owners)
                with self._lock:
                    self._vnics[vnic] = attrs.evolve(state, generation=generation,
                                                     request=request, compiled=compiled)
                    self._landed_now(vnic)
        except BaseException:
            numbers.abort()
            with self._lock:
                self._landed_now(vnic)
            raise
        self.events.publish(vnic, Kind.KIND_GENERATION_APPLIED, generation=generation,
                            message=f"{result.written} entities written")
        return ApplyOutcome(generation=generation, inserted=result.inserted,
                            modified=result.modified, deleted=result.deleted,
                            warnings=compiled.warnings)

    def _journal(self, vnic: str, state: VnicState, generation: int, request: OffloadRequest,
                 holdings: Mapping[str, list[list[object]]]) -> None:
        """Commit the new generation to the state file before it is acknowledged; when
        that fails, put the previous rules back: nothing is in force that is not journaled."""
        if self.journal is None:
            return
        _client, installer = self.session.live()
        installed = tuple(e.SerializeToString(deterministic=True)
                          for e in installer.installed(vnic))
        record = VnicRecord(name=vnic, generation=generation,
                            request=to_proto(request).SerializeToString(), entities=installed,
                            resources=json.dumps(holdings), updated=time.time())
        try:
            self.journal.commit(record)
        except JournalError as exc:
            self._take_back(vnic, state, str(exc), grpc.StatusCode.UNAVAILABLE)
        except Exception as exc:  # whatever it is, the target must not keep what was not
            _log.exception("VNIC %s: committing generation %d failed", vnic, generation)
            self._take_back(vnic, state, f"committing generation {generation} to the state "
                            f"file failed ({exc!r})", grpc.StatusCode.INTERNAL)

    def _take_back(self, vnic: str, state: VnicState, why: str,
                   code: grpc.StatusCode) -> NoReturn:
        """Put ``state``'s rules back on the target (an apply that may not be committed)
        and raise ``code`` saying why: nothing new is in force."""
        _client, installer = self.session.live()
        previous = state.compiled.entities if state.compiled is not None else []
        try:
            installer.install(vnic, previous)
        except InstallError as undo:
            self.session.request_repair()
            raise AgentError(code, f"VNIC {vnic}: {why}; putting the previous rules back "
                                   f"failed too ({undo}); the agent repairs the target") from None
        raise AgentError(code, f"VNIC {vnic}: {why}; nothing was installed")

    def withdraw(self, vnic: str, flow_ids: Iterable[str] | None = None, *,
                 still_wanted: Callable[[], bool] | None = None) -> list[str]:
        """Remove the named flows (all when None); returns the ids removed. Naming none
        is an error, not a new generation that changes nothing."""
        if flow_ids is not None:
            flow_ids = list(flow_ids)
            if not flow_ids:
                raise AgentError(grpc.StatusCode.INVALID_ARGUMENT,
                                 f"VNIC {vnic}: the withdraw names no flow; name the flows to "
                                 "withdraw, or withdraw all of them; nothing was withdrawn")
        with self._vnic_lock(vnic), no_cyclic_gc():
            state = self.state(vnic)
            current = state.request
            if flow_ids is None:
                remove = {f.id for f in current.flows}
            else:
                remove = set(flow_ids)
                unknown = sorted(remove - {f.id for f in current.flows})
                if unknown:
                    raise AgentError(grpc.StatusCode.NOT_FOUND,
                                     f"VNIC {vnic} has no flow {quote(unknown[0])}")
            kept = tuple(f for f in current.flows if f.id not in remove)
            self._apply(vnic, OffloadRequest(vnic=vnic, generation=0, flows=kept),
                        still_wanted)
            return [f.id for f in current.flows if f.id in remove]

    def _next_generation(self, state: VnicState, asked: int) -> int:
        """The generation an apply asking for ``asked`` (0: the next) installs. A guest
        may skip generations, by at most ``GENERATION_STEP`` at a time and up to
        ``MAX_GENERATION`` (the state file's integers are 64-bit: a generation of 2**63
        failed there, after the target had been written)."""
        if asked == 0:
            asked = state.generation + 1
        elif asked > state.generation + GENERATION_STEP:
            raise AgentError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"VNIC {state.config.name}: generation {asked} is more than "
                f"{GENERATION_STEP:,} past the installed one ({state.generation}); send "
                "0 for the next")
        if asked > MAX_GENERATION:
            raise AgentError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"VNIC {state.config.name}: generation {asked} is past the last one this "
                f"agent gives ({MAX_GENERATION:,}); the VNIC's generations are used up")
        if asked <= state.generation:
            raise AgentError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"VNIC {state.config.name}: generation {asked} is stale (generation "
                f"{state.generation} is installed); send a higher one, or 0 for the next",
            )
        return asked

    def check_quotas(self, vnic: str, flows: int, rules: int) -> None:
        """Refuse a request of ``flows`` flows and ``rules`` rules over the VNIC's quotas;
        counts are all it takes, so a channel can ask before anything is decoded."""
        quotas = self.state(vnic).config.quotas
        for name, used, limit in (("flows", flows, quotas.flows), ("rules", rules, quotas.rules)):
            if used > limit:
                self.events.publish(vnic, Kind.KIND_QUOTA_REACHED, quota=name,
                                    message=f"{used} {name} asked, quota {limit}")
                raise AgentError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"VNIC {vnic}: the request has {used} {name}, the VNIC's quota is "
                    f"{limit}; nothing was installed",
                )

    def _size(self, name: str, kind: str) -> int:
        try:
            return self._sizes[name]
        except KeyError:
            raise KeyError(f"{name} ({kind}) is not in the P4Info") from None

    def _reserve_capacity(self, vnic: str, compiled: CompiledRequest) -> None:
        """Refuse, before writing anything, a request the pipeline has no room for; else
        count it in flight until it is committed or given up.

        Alone, a request needs room for its new entries beside the other VNICs'. While
        other applies are in flight, each may hold its old and its new entries at once,
        and so may this one: when that does not fit, this apply waits for them to land
        rather than fail half-way on the target; it is refused only for what does not
        fit once they have."""
        old = self.state(vnic).compiled
        own = {table: needed + (old.usage.get(table, 0) if old else 0)
               for table, needed in compiled.usage.items()}
        with self._landed:
            while True:
                shortage = self._shortage(vnic, compiled.usage, own)
                if shortage is None:
                    break
                table, needed, free, size, concurrent = shortage
                if not concurrent:
                    raise AgentError(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"VNIC {vnic}: {table} needs {needed} entries for this request but "
                        f"only {free} of {size} are free; nothing was installed")
                self._landed.wait()
            self._in_flight[vnic] = own

    def _shortage(self, vnic: str, needed: Mapping[str, int], own: Mapping[str, int]
                  ) -> tuple[str, int, int, int, bool] | None:
        """The first table without room for ``vnic``'s request (with the lock held): (table,
        entries needed, free, size, whether other applies in flight take some); None when
        every table has room."""
        for table in sorted(needed):
            others, concurrent = 0, False
            for name, s in self._vnics.items():
                if name == vnic:
                    continue
                flying = self._in_flight.get(name, {}).get(table)
                concurrent |= bool(flying)
                others += flying if flying is not None else (
                    s.compiled.usage.get(table, 0) if s.compiled else 0)
            size = self._size(table, "table")
            wanted = own[table] if concurrent else needed[table]
            if others + wanted > size:
                return table, needed[table], size - others, size, concurrent
        return None

    def _landed_now(self, vnic: str) -> None:
        """``vnic``'s apply is no longer in flight (with the lock held)."""
        self._in_flight.pop(vnic, None)
        self._landed.notify_all()

    # -- reading back -------------------------------------------------------

    def stats(self, vnic: str) -> VnicStats:
        """Per-rule and per-flow packets/bytes, read from the target now."""
        state = self.state(vnic)  # one snapshot: counters of the rules in force
        client, _installer = self.session.live()
        try:
            stats = read_stats(client, self.schema, state.generation, state.compiled)
        except P4RuntimeError as exc:
            raise AgentError(grpc.StatusCode.UNAVAILABLE,
                             f"VNIC {vnic}: reading its counters failed: {exc.message}") from None
        if stats.missing:
            self.session.request_repair()  # the target lost some: put them back now
        return stats

    def connections(self, vnic: str | None = None) -> list[Connection]:
        """Live tracked connections (of one VNIC, or all), read from the pipeline now."""
        ids = None if vnic is None else {self.state(vnic).config.id}
        client, _installer = self.session.live()
        try:
            return self.slow_path.connections.live(
                self.conns.registers(client), lambda: self.slow_path.probe_clock(client), ids)
        except P4RuntimeError as exc:
            if exc.code == grpc.StatusCode.UNIMPLEMENTED:
                raise AgentError(grpc.StatusCode.UNIMPLEMENTED,
                                 "this target does not serve register reads over P4Runtime; "
                                 "for BMv2 give its Thrift address (target.thrift_address) "
                                 "so that tracked connections can be read") from None
            raise AgentError(grpc.StatusCode.UNAVAILABLE, str(exc)) from None

    def export_state(self, vnic: str) -> list[ExportedConnection]:
        """The VNIC's live connections, independent of this target (see handover)."""
        return [c for chunk in self.export_chunks(vnic) for c in chunk]

    def learned(self, vnic: str) -> list[Learned]:
        """The VNIC's connections the pipeline reported (live or not: exports tell)."""
        vnic_id = self.state(vnic).config.id
        return [c for c in self.slow_path.connections.known() if c.vnic_id == vnic_id]

    def export_chunks(self, vnic: str, size: int = HANDOVER_CHUNK,
                      learned: Sequence[Learned] | None = None
                      ) -> Iterator[list[ExportedConnection]]:
        """``export_state`` in chunks of up to ``size`` learned connections, read as they go,
        so that a destination can import the first while the next are read here
        (``learned``: only these of the VNIC's connections)."""
        state = self.state(vnic)
        client, _installer = self.session.live()
        compiled = state.compiled
        if compiled is None:
            return
        learned = [c for c in (self.slow_path.connections.known() if learned is None
                               else learned) if c.vnic_id == state.config.id]
        names = {number: name for name, number in compiled.flow_ids.items()}
        registers = self.conns.registers(client)
        try:
            clock = self.conns.running_clock(client)
            for start in range(0, len(learned), size):
                yield export_connections(registers, learned[start:start + size], clock(),
                                         names)
        except P4RuntimeError as exc:
            raise AgentError(exc.code, f"VNIC {vnic}: exporting its connections failed: "
                                       f"{exc.message}") from None

    def import_state(self, vnic: str, connections: list[ExportedConnection]) -> ImportResult:
        """Write exported connections into this target; apply the same rules first."""
        return self.import_chunks(vnic, [connections])

    def import_chunks(self, vnic: str, chunks: Iterable[Sequence[ExportedConnection]]
                      ) -> ImportResult:
        """Import chunk by chunk; all or nothing: any failure (a refused write, a chunk
        that does not arrive) undoes every chunk imported so far."""
        with self._vnic_lock(vnic), self.gate.shared(vnic):
            state = self.state(vnic)
            client, _installer = self.session.writer()
            compiled = state.compiled
            if compiled is None:
                raise AgentError(grpc.StatusCode.FAILED_PRECONDITION,
                                 f"VNIC {vnic} has no rules on this target: apply the same "
                                 "request here before importing its connections")
            session = self.conns.import_session(client, state.config.id, compiled)
        try:
            clock = self.conns.running_clock(client)
            for chunk in chunks:
                with self._vnic_lock(vnic), self.gate.shared(vnic):
                    session.add(chunk, clock())
        except BaseException as exc:
            with self._vnic_lock(vnic), self.gate.shared(vnic):
                session.abort()
            if isinstance(exc, P4RuntimeError):
                raise AgentError(exc.code, f"VNIC {vnic}: importing connections failed, "
                                           f"nothing was kept: {exc.message}") from None
            raise
        result = session.result()
        self.slow_path.connections.learn(result.learned)
        return result

    def names_of(self) -> dict[int, tuple[str, str]]:
        """Pipeline flow id -> (VNIC, flow id), for everything installed now."""
        with self._lock:
            return {number: (name, flow)
                    for name, state in self._vnics.items() if state.compiled is not None
                    for flow, number in state.compiled.flow_ids.items()}

    def target_status(self) -> TargetStatus:
        return self.session.status()

    def reconcile(self) -> int:
        """Read the target back now and repair any drift; the updates it took."""
        return self.session.reconcile().written

    def vnic_names(self) -> list[str]:
        return list(self._vnics)

    def occupancy(self) -> dict[str, tuple[int, int]]:
        """table -> (entries the target holds, size): read from the target now, not taken
        from the agent's own bookkeeping."""
        used = self.session.occupancy()
        used[names.CT_OVERFLOW] = self.slow_path.slots.used
        return {table: (count, self._size(table, "table")) for table, count in used.items()}

    def with_client(self, action: Callable[[P4RuntimeClient], T]) -> T:
        """``action`` run with the agent's live P4Runtime client (its connection, primary)."""
        client, _installer = self.session.live()
        return action(client)
