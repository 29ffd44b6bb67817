"""Per-VNIC quota of tracked connections, enforced in the pipeline.

The pipeline cannot count a VNIC's live connections itself (they expire
lazily, by timestamp), but the agent can: it learns every new connection from
the new-connection digests. When a VNIC's learned connections reach its quota
(``quotas.tracked_connections``), the agent reads their expiry times back and
counts the live ones; at the quota it clears ``admit_new`` in the VNIC's port
map entries, so the pipeline tracks no new connection of that VNIC (the first
packet of one is dropped and counted as ``DROP_CT_QUOTA``), while established
connections carry on. It tells the guest (a QUOTA_REACHED event on Watch, and
the ``tracked_connections`` quota in stats), and keeps counting: once enough
connections have ended, new ones are admitted again.

Enforcement follows the digests: connections opened within the few
milliseconds before the agent reacts are tracked, so a VNIC can hold a few more
than its quota, never fewer.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

import grpc

_log = logging.getLogger(__name__)

RECHECK_S = 1.0
"""While a VNIC is at its quota, how often its live connections are counted again."""


class QuotaHost(Protocol):
    """What the enforcer needs from the agent."""

    def vnic_names(self) -> list[str]: ...
    def learned_count(self, vnic: str) -> int: ...
    def live_count(self, vnic: str) -> int: ...
    def connection_quota(self, vnic: str) -> tuple[int, bool]: ...
    def set_admission(self, vnic: str, admit: bool, live: int) -> None: ...


class ConnectionQuotas:
    """Watches every VNIC's tracked connections against its quota, in a thread."""

    def __init__(self, host: QuotaHost) -> None:
        self._host = host
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="pyoffload-connection-quota")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def poke(self) -> None:
        """New connections were learned: check soon."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(RECHECK_S)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.check()
            except Exception as exc:  # the target may be gone: the next round retries
                code = getattr(exc, "code", None)
                level = logging.DEBUG if code == grpc.StatusCode.UNAVAILABLE else logging.WARNING
                _log.log(level, "connection quota check failed: %s", exc)

    def check(self) -> None:
        """One round: admit or refuse new connections for each VNIC."""
        for vnic in self._host.vnic_names():
            limit, refusing = self._host.connection_quota(vnic)
            if not refusing and self._host.learned_count(vnic) < limit:
                continue  # cheap: not even the learned ones reach the quota
            live = self._host.live_count(vnic)
            if live >= limit and not refusing:
                self._host.set_admission(vnic, False, live)
            elif live < limit and refusing:
                self._host.set_admission(vnic, True, live)
