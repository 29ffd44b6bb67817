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
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable

import attrs

from pyoffload.agent.handover import ExportedConnection
from pyoffload.agent.journal import Journal
from pyoffload.errors import PyoffloadError

_log = logging.getLogger(__name__)


def encode_rows(connections: Iterable[ExportedConnection]) -> list[bytes]:
    """One checkpoint row per connection (the handover's row, as compact JSON)."""
    return [json.dumps(c.to_row(), separators=(",", ":")).encode() for c in connections]


def decode_rows(rows: Iterable[bytes], elapsed_s: float) -> list[ExportedConnection]:
    """The checkpointed connections that have time left ``elapsed_s`` after it was taken."""
    elapsed_us = int(elapsed_s * 1e6)
    alive = []
    for row in rows:
        connection = ExportedConnection.from_row(json.loads(row))
        remaining = connection.remaining_us - elapsed_us
        if remaining > 0:
            alive.append(attrs.evolve(connection, remaining_us=remaining))
    return alive


@attrs.frozen(kw_only=True)
class CheckpointStatus:
    """The last checkpoint of one VNIC."""

    connections: int
    taken: float | None
    """``time.time()`` when it was taken; None: never."""


class Checkpointer:
    """Saves every VNIC's live connections to the journal every ``interval`` seconds."""

    def __init__(self, journal: Journal, interval: float, vnics: Callable[[], list[str]],
                 export: Callable[[str], list[ExportedConnection]]) -> None:
        self.journal = journal
        self.interval = interval
        self._vnics = vnics
        self._export = export
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._status: dict[str, CheckpointStatus] = {}
        self.last_error = ""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="pyoffload-checkpoint")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def take(self) -> int:
        """Checkpoint every VNIC now; the connections saved."""
        saved = 0
        for vnic in self._vnics():
            connections = self._export(vnic)
            taken = time.time()
            self.journal.save_connections(vnic, encode_rows(connections), taken)
            self._status[vnic] = CheckpointStatus(connections=len(connections), taken=taken)
            saved += len(connections)
        return saved

    def status(self, vnic: str) -> CheckpointStatus:
        return self._status.get(vnic, CheckpointStatus(connections=0, taken=None))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.take()
                self.last_error = ""
            except PyoffloadError as exc:  # the target away, the disk full: say so, go on
                self.last_error = str(exc).splitlines()[0]
                _log.warning("connection checkpoint failed: %s", self.last_error)
