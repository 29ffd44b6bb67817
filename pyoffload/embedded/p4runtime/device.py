"""One P4Runtime device: its pipeline configuration and its entities.

Owns the rules of SetForwardingPipelineConfig (VERIFY ... RECONCILE_AND_COMMIT),
batch atomicity of Write, the lock discipline, and the background work of
digests and idle timeouts. It knows nothing about gRPC.

Locks: the control-plane gate (`_gate`) lets pipeline pushes and
all-or-nothing batches (ROLLBACK_ON_ERROR, DATAPLANE_ATOMIC) run alone, so a
rolled-back batch is never seen by another controller, while CONTINUE_ON_ERROR
Writes and Reads run together: each update is atomic, as P4Runtime asks of such
batches, and one controller's large batch does not hold another's small one
back. Every engine access holds the switch's (packet) lock, so packets only ever
see the state before or after an update, and the control plane takes it in turns
(`_turns`, in arrival order) slice by slice. A large Write takes it in short
slices (whole batches only for DATAPLANE_ATOMIC), so forwarding and the other
Writes go on meanwhile: a slice ends after `SLICE_S`, as soon as a frame waits
for the lock or another Write or Read waits for its turn, and between two slices
the writer lets go of the interpreter too (`Switch.yield_to_packets`). A batch
refused 100,000 times holds one error object per distinct error, not one per
update.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from finsy.proto import p4i, p4r, rpc_code

from ...gate import Gate, Turns
from ..engine.errors import EngineError
from ..switch import Switch
from .codec import decode_uint
from .engine_api import from_engine_error
from .errors import StatusError, failed_precondition, invalid, not_found
from .meters import MeterFactory
from .p4info import P4InfoIndex
from .packet_io import CpuHeaders
from .store import EntityStore, PipelineLike

_log = logging.getLogger(__name__)

Loader = Callable[[str, Callable[[], int]], PipelineLike]
"""Builds a pipeline from BMv2 JSON text and a clock; raises EngineError."""

SPFC = p4r.SetForwardingPipelineConfigRequest
GFPC = p4r.GetForwardingPipelineConfigRequest
Broadcast = Callable[[p4r.StreamMessageResponse], None]
SLICE_S = 0.002
"""Longest time a Write holds the packet lock at once (CONTINUE/ROLLBACK batches)."""


@dataclass(slots=True)
class _Config:
    """A verified forwarding pipeline config and the store of its entities."""

    p4info: p4i.P4Info
    device_config: bytes
    cookie: int | None
    store: EntityStore
    cpu_headers: CpuHeaders


def default_loader(text: str, clock: Callable[[], int]) -> PipelineLike:
    """Load BMv2 JSON with the embedded engine."""
    from ..engine import Pipeline

    pipeline: PipelineLike = Pipeline.load(text, clock=clock)
    return pipeline


def default_meter_factory(cir: int, cburst: int, pir: int, pburst: int) -> Any:
    from ..engine import MeterConfig

    return MeterConfig(cir, cburst, pir, pburst)


def cpu_headers_of(index: P4InfoIndex) -> CpuHeaders:
    def fields(name: str) -> list[tuple[int, str, int]] | None:
        header = index.controller_headers.get(name)
        if header is None:
            return None
        return [(f.id, f.name, f.bitwidth) for f in header.fields]

    return CpuHeaders.from_fields(fields("packet_in"), fields("packet_out"))


class Device:
    """The state behind one device_id of the P4Runtime server."""

    def __init__(
        self,
        switch: Switch,
        device_id: int,
        broadcast: Broadcast,
        *,
        loader: Loader = default_loader,
        meter_factory: MeterFactory = default_meter_factory,
        clock: Callable[[], int] = time.monotonic_ns,
        idle_scan_ns: int = 50_000_000,
    ) -> None:
        self.switch = switch
        self.device_id = device_id
        self._broadcast = broadcast
        self._loader = loader
        self._meter_factory = meter_factory
        self._clock = clock
        self._gate = Gate()
        self._turns = Turns()
        self._committed: _Config | None = None
        self._saved: _Config | None = None
        self._idle_scan_ns = idle_scan_ns
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        switch.on_digest(self._on_digest)

    # lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        """Start the background thread for digest timeouts and idle-timeout scans."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._background, name="p4rt-timers",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.switch.on_digest(None)

    def _background(self) -> None:
        next_scan = 0
        while not self._stop.wait(0.01):
            config = self._committed
            if config is None:
                continue
            try:
                config.store.digests.tick()
                now = self._clock()
                if now >= next_scan:
                    next_scan = now + self._idle_scan_ns
                    expired = config.store.tables.expired(now, self.switch.lock)
                    if expired:
                        msg = p4r.StreamMessageResponse()
                        msg.idle_timeout_notification.table_entry.extend(expired)
                        msg.idle_timeout_notification.timestamp = time.time_ns()
                        self._broadcast(msg)
            except Exception:  # keep the timers alive whatever a notification does
                _log.exception("background digest/idle-timeout work failed")

    # pipeline config ---------------------------------------------------------------
    @property
    def store(self) -> EntityStore | None:
        """The store Reads and Writes address (a saved, uncommitted config wins)."""
        config = self._saved or self._committed
        return config.store if config else None

    def _verify(self, config: p4r.ForwardingPipelineConfig) -> _Config:
        if not config.HasField("p4info"):
            raise invalid("config.p4info is missing")
        if not config.p4_device_config:
            raise invalid("config.p4_device_config (the BMv2 JSON) is empty")
        try:
            text = config.p4_device_config.decode("utf-8")
            json.loads(text)
        except (UnicodeDecodeError, ValueError) as exc:
            raise invalid(f"p4_device_config is not BMv2 JSON: {exc}") from None
        index = P4InfoIndex(config.p4info)
        try:
            pipeline = self._loader(text, self._clock)
        except EngineError as exc:
            raise invalid(f"p4_device_config cannot be loaded: {exc}") from None
        store = EntityStore(index, pipeline, clock=self._clock, send=self._broadcast,
                            meter_factory=self._meter_factory)
        cookie = config.cookie.cookie if config.HasField("cookie") else None
        return _Config(config.p4info, config.p4_device_config, cookie, store,
                       cpu_headers_of(index))

    def set_pipeline(self, request: SPFC) -> None:
        action = request.action
        with self._gate.exclusive():
            if action == SPFC.VERIFY:
                self._verify(request.config)
            elif action == SPFC.VERIFY_AND_SAVE:
                self._saved = self._verify(request.config)
            elif action == SPFC.VERIFY_AND_COMMIT:
                self._commit(self._verify(request.config))
            elif action == SPFC.COMMIT:
                if request.HasField("config"):
                    raise invalid("COMMIT takes no config (it commits the saved one)")
                if self._saved is None:
                    raise not_found("no saved config to commit (use VERIFY_AND_SAVE first)")
                self._commit(self._saved)
            elif action == SPFC.RECONCILE_AND_COMMIT:
                new = self._verify(request.config)
                old = self._saved or self._committed
                with self.switch.lock:  # no packet changes state between copy and swap
                    if old is not None:
                        self._reconcile(old, new)
                    self._commit(new)
            else:
                raise invalid(f"unsupported SetForwardingPipelineConfig action {action}")

    def _commit(self, config: _Config) -> None:
        self.switch.set_pipeline(config.store.pipeline, config.cpu_headers)
        self._committed = config
        self._saved = None

    @staticmethod
    def _reconcile(old: _Config, new: _Config) -> None:
        """Replay the old pipeline's entities into the new one, or refuse."""
        old_names = {ident: name for name, ident in old.store.index.names.items()}
        for name, ident in new.store.index.names.items():
            if ident in old_names and old_names[ident] != name:
                raise invalid(
                    f"cannot preserve forwarding state: id {ident} is {old_names[ident]!r} in the "
                    f"running P4Info but {name!r} in the new one"
                )
        requests = [
            p4r.Entity(action_profile_member=p4r.ActionProfileMember()),
            p4r.Entity(action_profile_group=p4r.ActionProfileGroup()),
            p4r.Entity(table_entry=p4r.TableEntry(counter_data=p4r.CounterData(),
                                                  meter_config=p4r.MeterConfig())),
            p4r.Entity(packet_replication_engine_entry=p4r.PacketReplicationEngineEntry(
                multicast_group_entry=p4r.MulticastGroupEntry())),
            p4r.Entity(packet_replication_engine_entry=p4r.PacketReplicationEngineEntry(
                clone_session_entry=p4r.CloneSessionEntry())),
            p4r.Entity(meter_entry=p4r.MeterEntry()),
            p4r.Entity(counter_entry=p4r.CounterEntry()),
            p4r.Entity(register_entry=p4r.RegisterEntry()),
            p4r.Entity(digest_entry=p4r.DigestEntry()),
        ]
        for request in requests:
            for entity in old.store.read(request):
                update = _replay_update(entity)
                if update is None:
                    continue
                try:
                    new.store.apply(update, None)
                except StatusError as exc:
                    raise invalid(f"cannot preserve forwarding state: {exc}") from None
        for table_id in old.store.tables.defaults:
            read = old.store.read(p4r.Entity(table_entry=p4r.TableEntry(
                table_id=table_id, is_default_action=True)))
            for entity in read:
                try:
                    new.store.apply(p4r.Update(type=p4r.Update.MODIFY, entity=entity), None)
                except StatusError as exc:
                    raise invalid(f"cannot preserve forwarding state: {exc}") from None

    def get_pipeline(self, response_type: int) -> p4r.GetForwardingPipelineConfigResponse:
        response = p4r.GetForwardingPipelineConfigResponse()
        config = self._saved or self._committed
        if config is None:
            return response
        out = response.config
        if config.cookie is not None:
            out.cookie.cookie = config.cookie
        if response_type in (GFPC.ALL, GFPC.P4INFO_AND_COOKIE):
            out.p4info.CopyFrom(config.p4info)
        if response_type in (GFPC.ALL, GFPC.DEVICE_CONFIG_AND_COOKIE):
            out.p4_device_config = config.device_config
        if response_type not in (GFPC.ALL, GFPC.COOKIE_ONLY, GFPC.P4INFO_AND_COOKIE,
                                 GFPC.DEVICE_CONFIG_AND_COOKIE):
            raise invalid(f"unknown response_type {response_type}")
        if out.ByteSize() == 0:
            response.config.SetInParent()
        return response

    # writes and reads ----------------------------------------------------------------
    def write(self, updates: Sequence[p4r.Update], atomicity: int
              ) -> list[StatusError | None]:
        """Apply a batch; one error (or None) per update, in order.

        CONTINUE_ON_ERROR batches run beside other such Writes and Reads;
        ROLLBACK_ON_ERROR and DATAPLANE_ATOMIC ones alone. CONTINUE_ON_ERROR and
        ROLLBACK_ON_ERROR batches take the switch's (packet) lock in slices of at
        most `SLICE_S` (shorter when a frame or another Write waits for it) and let
        them through between two slices, so forwarding goes on during a large batch
        (each update is still atomic for the data plane; ROLLBACK_ON_ERROR is still
        all or nothing for the control plane: no other Write or Read runs until it
        is done or undone). DATAPLANE_ATOMIC batches hold the packet lock for the
        whole batch.
        """
        atomic = atomicity in (p4r.WriteRequest.ROLLBACK_ON_ERROR,
                               p4r.WriteRequest.DATAPLANE_ATOMIC)
        if not atomic and atomicity != p4r.WriteRequest.CONTINUE_ON_ERROR:
            raise invalid(f"unknown atomicity {atomicity}")
        with self._gate.exclusive() if atomic else self._gate.shared():
            store = self.store
            if store is None:
                raise failed_precondition("no forwarding pipeline config has been set")
            if atomicity == p4r.WriteRequest.DATAPLANE_ATOMIC:
                with self.switch.lock:
                    return self._write_batch(store, updates, atomic=True, sliced=False)
            return self._write_batch(store, updates, atomic=atomic, sliced=True)

    def _write_batch(self, store: EntityStore, updates: Sequence[p4r.Update], *,
                     atomic: bool, sliced: bool) -> list[StatusError | None]:
        results: list[StatusError | None] = [None] * len(updates)
        undo: list[Callable[[], None]] | None = [] if atomic else None
        apply = store.apply
        lock = self._slice if sliced else self._held  # unsliced: the caller holds it
        count = len(updates)
        failed: tuple[int, StatusError] | None = None
        shared: dict[tuple[int, str], StatusError] = {}
        i = 0
        while i < count and failed is None:
            with lock():
                until = time.perf_counter() + SLICE_S
                while i < count:
                    try:
                        apply(updates[i], undo)
                    except StatusError as exc:
                        # one fresh error per (code, message), shared: no traceback keeping
                        # the batch's frames alive, and a batch refused 100,000 times holds a
                        # few objects, not 100,000 for the garbage collector to walk
                        ident = (exc.code, exc.message)
                        error = shared.get(ident)
                        if error is None:
                            error = shared[ident] = StatusError(exc.code, exc.message)
                        if undo is not None:
                            failed = (i, error)
                            break
                        results[i] = error
                    i += 1
                    if sliced and not i & 15 and self._time_to_yield(until):
                        break
            if sliced:
                self.switch.yield_to_packets()
        if failed is None:
            return results
        assert undo is not None
        self._rollback(undo, sliced)  # DATAPLANE_ATOMIC: the caller holds the lock throughout
        index, error = failed
        aborted = StatusError(rpc_code.ABORTED, f"not applied: update {index} of the batch failed")
        results = [aborted] * count
        results[index] = error
        return results

    def _rollback(self, undo: list[Callable[[], None]], sliced: bool) -> None:
        """Undo applied updates in reverse order (in slices when `sliced`)."""
        lock = self._slice if sliced else self._held
        while undo:
            with lock():
                until = time.perf_counter() + SLICE_S
                while undo:
                    step = undo.pop()
                    try:
                        step()
                    except Exception:
                        _log.exception("rolling back a batch failed; state may differ from "
                                       "before")
                    if sliced and not len(undo) & 15 and self._time_to_yield(until):
                        break
            if sliced:
                self.switch.yield_to_packets()

    @contextlib.contextmanager
    def _slice(self) -> Iterator[None]:
        """One slice of control-plane work: its turn, then the packet lock."""
        with self._turns, self.switch.lock:
            yield

    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        """The packet lock, which a DATAPLANE_ATOMIC batch holds throughout."""
        with self.switch.lock:
            yield

    def read(self, entities: Sequence[p4r.Entity]) -> tuple[list[p4r.Entity],
                                                          list[StatusError | None]]:
        found: list[p4r.Entity] = []
        errors: list[StatusError | None] = [None] * len(entities)
        # Never half an all-or-nothing batch (those run alone). Entities are read in
        # slices of the packet lock, as Writes are, so a Read of many keys or of a large
        # table lets Writes and frames in between (each entity is read whole).
        count = len(entities)
        i = 0
        reading: Iterator[p4r.Entity] | None = None  # resumed in the next slice
        with self._gate.shared():
            store = self.store
            if store is None:
                raise failed_precondition("no forwarding pipeline config has been set")
            while i < count:
                with self._slice():
                    until = time.perf_counter() + SLICE_S
                    paused = False
                    while i < count and not paused:
                        try:
                            if reading is None:
                                reading = iter(store.read_lazily(entities[i]))
                            for n, entity in enumerate(reading, 1):
                                found.append(entity)
                                if not n & 31 and self._time_to_yield(until):
                                    paused = True
                                    break
                            else:
                                reading = None
                        except StatusError as exc:
                            errors[i] = exc
                            reading = None
                        if reading is None:
                            i += 1
                            paused = self._time_to_yield(until)
        return found, errors

    def _time_to_yield(self, until: float) -> bool:
        """A slice of control-plane work ends now: another Write or Read waits for its
        turn, a frame waits for the packet lock, or the slice is over."""
        return (self._turns.waiting or self.switch.packets_waiting()
                or time.perf_counter() > until)

    # packet I/O and digests ------------------------------------------------------------
    def packet_out(self, packet: p4r.PacketOut) -> None:
        """Inject a PacketOut on the CPU port; INVALID_ARGUMENT on bad metadata."""
        config = self._committed
        if config is None:
            raise failed_precondition("no forwarding pipeline config has been set")
        layout = config.cpu_headers.packet_out
        values: dict[int, int] = {}
        if layout is not None:
            widths = {ident: (name, width) for ident, name, width in layout.fields}
            for m in packet.metadata:
                if m.metadata_id not in widths:
                    raise invalid(f"packet_out has no metadata id {m.metadata_id}")
                if m.metadata_id in values:
                    raise invalid(f"packet_out metadata id {m.metadata_id} given twice")
                name, width = widths[m.metadata_id]
                values[m.metadata_id] = decode_uint(m.value, width, f"packet_out {name!r}")
            missing = [name for ident, name, _ in layout.fields if ident not in values]
            if missing:
                raise invalid(f"packet_out metadata missing: {', '.join(missing)}")
        elif len(packet.metadata):
            raise invalid("the P4Info declares no packet_out header")
        # an empty payload is a frame of 0 bytes: BMv2 runs it through the pipeline too
        try:
            self.switch.packet_out(values, packet.payload)
        except EngineError as exc:
            raise from_engine_error(exc) from exc
        except Exception as exc:
            raise StatusError(rpc_code.FAILED_PRECONDITION, str(exc)) from exc

    def _on_digest(self, name: str, values: tuple[int, ...]) -> None:
        config = self._committed
        if config is not None:
            config.store.digests.on_digest(name, values)

    def digest_ack(self, ack: p4r.DigestListAck) -> None:
        config = self._committed
        if config is None:
            raise failed_precondition("no forwarding pipeline config has been set")
        config.store.digests.ack(ack)


def _replay_update(entity: p4r.Entity) -> p4r.Update | None:
    """The update that recreates a read entity in a fresh pipeline."""
    which = entity.WhichOneof("entity")
    if which in ("counter_entry", "register_entry", "meter_entry"):
        inner = getattr(entity, which)
        if which == "counter_entry" and not (inner.data.byte_count or inner.data.packet_count):
            return None
        if which == "register_entry" and inner.data.bitstring.strip(b"\x00") == b"":
            return None
        if which == "meter_entry" and not inner.HasField("config"):
            return None
        return p4r.Update(type=p4r.Update.MODIFY, entity=entity)
    if which == "table_entry":
        te = entity.table_entry
        if te.is_const:
            return None  # defined by the program itself
        if not te.HasField("counter_data") or te.counter_data.ByteSize() == 0:
            te.ClearField("counter_data")
    return p4r.Update(type=p4r.Update.INSERT, entity=entity)
