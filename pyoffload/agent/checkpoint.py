"""Connection checkpoints, so tracked connections outlive a target restart.

This is the job Linux's conntrackd does for firewall failover. The pipeline
keeps its connections in registers, which a target restart (or a pipeline
push) wipes: every established connection through the stateful firewall
would then be dropped as unsolicited. So the agent saves each VNIC's live
connections to its state file at an interval (the new-connection digests say
which slots to read; the registers give state, NAT and time left), in the
wire form of a state handover, and when a target comes back empty it imports
them, with the rules, before any port map admits traffic (``session.py``).

A connection that opened after the last checkpoint is lost with the target,
as with conntrackd; the interval bounds that window (``state.checkpoint_interval``).
Each checkpoint reads the new connections and a budget of the others, so its
cost to the data path stays bounded however many connections there are, and
writes only the rows that changed; each row keeps the time it was read, from
which its time left is counted down when it is restored.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import attrs

from pyoffload.agent.connections import Learned
from pyoffload.agent.failures import RepeatedFailure
from pyoffload.agent.handover import ExportedConnection
from pyoffload.agent.journal import Journal
from pyoffload.pipeline.constants import ConnState, CtInfo, Tuple5

_log = logging.getLogger(__name__)


def encode_row(connection: ExportedConnection) -> bytes:
    """A checkpoint row (the handover's row, as compact JSON)."""
    return json.dumps(connection.to_row(), separators=(",", ":")).encode()


def decode_chunks(rows: Sequence[tuple[bytes, float]], now: float, size: int = 10_000
                  ) -> Iterator[list[ExportedConnection]]:
    """``decode_rows`` of ``size`` rows at a time, as the caller takes them."""
    for start in range(0, len(rows), size):
        yield decode_rows(rows[start:start + size], now)


def decode_rows(rows: Sequence[tuple[bytes, float]], now: float) -> list[ExportedConnection]:
    """The checkpointed connections, (row, time it was read), with time left at ``now``."""
    parsed = json.loads(b"[" + b",".join(row for row, _read in rows) + b"]")  # one parse
    alive = []
    for row, (_raw, read) in zip(parsed, rows, strict=True):
        if not isinstance(row, list) or len(row) < 2 or type(row[1]) is not int:
            raise ValueError(f"not a checkpoint row: {row!r:.80}")
        row[1] -= int((now - read) * 1e6)  # the time it has left now
        if row[1] > 0:
            alive.append(ExportedConnection.from_row(row))
    return alive


@attrs.frozen(kw_only=True)
class CheckpointStatus:
    """The last checkpoint of one VNIC."""

    connections: int
    taken: float | None
    """``time.time()`` when it was taken; None: never."""


REFRESH_BUDGET = 1000
"""Settled connections re-read from the registers per checkpoint.

Reading a connection's registers costs the target's packet processing time; a
whole table every second cost 6-22% of a target's forwarding rate at 10,000
connections. So each checkpoint reads every connection learned since the last
one and every one still in a transient state (a handshake, a first UDP packet:
they settle or end within seconds, and restored in their old state their next
packets would be refused), and, of the settled ones, those read longest ago, up
to this many; every connection is still re-read within (connections / budget)
intervals. A settled row only lags in the time it has left, which its first
packet after a restore renews anyway."""

SETTLED = frozenset({ConnState.TCP_ESTABLISHED, ConnState.UDP_ESTABLISHED,
                     ConnState.ICMP_REPLIED})
"""States a connection stays in while it lives (the others are passed through)."""


@attrs.frozen
class _Saved:
    """A checkpointed connection: when its registers were read, and whether it settled."""

    read: float
    settled: bool


def _settled(connection: ExportedConnection) -> bool:
    return CtInfo.state_of(connection.slot.info) in SETTLED


def _key(connection: Learned) -> Tuple5:
    return Tuple5(protocol=connection.protocol, lo_addr=connection.lo_addr,
                  hi_addr=connection.hi_addr, lo_port=connection.lo_port,
                  hi_port=connection.hi_port)


class Checkpointer:
    """Saves every VNIC's live connections to the journal every ``interval`` seconds."""

    def __init__(self, journal: Journal, interval: float, vnics: Callable[[], list[str]],
                 learned: Callable[[str], list[Learned]],
                 export: Callable[[str, Sequence[Learned]], list[ExportedConnection]],
                 budget: int = REFRESH_BUDGET) -> None:
        self.journal = journal
        self.interval = interval
        self.budget = budget
        self._vnics = vnics
        self._learned = learned
        self._export = export
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._status: dict[str, CheckpointStatus] = {}
        self._saved: dict[str, dict[Tuple5, _Saved]] = {}
        """What the state file holds, per VNIC (read from it at the first checkpoint)."""
        self._failures = RepeatedFailure(_log)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="pyoffload-checkpoint")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def take(self, *, everything: bool = False) -> int:
        """Checkpoint every VNIC now (``everything``: re-read every connection, not just
        the new ones and a budget of the others); the connections saved."""
        saved = 0
        for vnic in self._vnics():
            saved += self._take(vnic, everything)
        return saved

    def _on_file(self, vnic: str) -> dict[Tuple5, _Saved]:
        """The VNIC's checkpoint as the state file holds it (an agent that restarted
        carries on from there instead of reading every connection again)."""
        saved = self._saved.get(vnic)
        if saved is None:
            rows = self.journal.read_connections(vnic)
            try:
                decoded = decode_rows([(row, read) for _key, row, read in rows], time.time())
            except (ValueError, TypeError):
                decoded = []  # unreadable: every row is written again
            reads = {key: read for key, _row, read in rows}
            saved = self._saved[vnic] = {
                c.slot.key: _Saved(read=reads.get(c.slot.key.packed(), 0.0),
                                   settled=_settled(c))
                for c in decoded}
        return saved

    def _take(self, vnic: str, everything: bool) -> int:
        known = {_key(c): c for c in self._learned(vnic)}
        saved = self._on_file(vnic)
        gone = [key for key in saved if key not in known]  # forgotten: their slots are free
        fresh = [c for key, c in known.items() if key not in saved or not saved[key].settled]
        stale = sorted((key for key in known if key in saved and saved[key].settled),
                       key=lambda k: saved[k].read)
        if not everything:
            stale = stale[:self.budget]
        chosen = fresh + [known[key] for key in stale]
        now = time.time()
        live = {c.slot.key: c for c in self._export(vnic, chosen)}
        over = [key for key in map(_key, chosen) if key not in live]  # or held by another
        self.journal.update_connections(
            vnic, ((key.packed(), encode_row(c)) for key, c in live.items()),
            [key.packed() for key in (*gone, *over)], now)
        for key in (*gone, *over):
            saved.pop(key, None)
        for key, connection in live.items():
            saved[key] = _Saved(read=now, settled=_settled(connection))
        self._status[vnic] = CheckpointStatus(connections=len(saved), taken=now)
        return len(saved)

    def status(self, vnic: str) -> CheckpointStatus:
        return self._status.get(vnic, CheckpointStatus(connections=0, taken=None))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.take()
            except Exception as exc:  # the target away, the disk full: say so, and go on
                self._failures.failed(exc, f"connection checkpoint failed (retrying every "
                                           f"{self.interval:.1f} s)")
                continue
            failed, seconds = self._failures.ended()
            if failed:
                _log.info("connection checkpoint works again, after %d failed in %.1f s",
                          failed, seconds)

    @property
    def last_error(self) -> str:
        """Why the last checkpoint failed ("" when it worked)."""
        return self._failures.error
