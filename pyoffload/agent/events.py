"""Per-VNIC event fan-out for the guest channel's Watch stream."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator

from guest_shim import offload_pb2 as pb

SUBSCRIBER_BACKLOG = 1024
"""Events kept for a slow watcher before the oldest are dropped."""


class EventHub:
    """Delivers each VNIC's events to whoever watches that VNIC, and no one else."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, list[queue.Queue[pb.Event | None]]] = {}

    def publish(self, vnic: str, kind: int, *, generation: int = 0, flow_id: str = "",
                rule_id: str = "", quota: str = "", message: str = "") -> None:
        event = pb.Event(kind=kind, generation=generation, flow_id=flow_id,  # type: ignore[arg-type]
                         rule_id=rule_id, quota=quota, message=message,
                         time_unix_ns=time.time_ns())
        with self._lock:
            targets = list(self._subscribers.get(vnic, ()))
        for q in targets:
            if q.qsize() >= SUBSCRIBER_BACKLOG:
                with contextlib.suppress(queue.Empty):
                    q.get_nowait()
            q.put(event)

    def subscribe(self, vnic: str, stop: threading.Event) -> Iterator[pb.Event]:
        """Events of ``vnic`` until ``stop`` is set (or ``close`` is called)."""
        q: queue.Queue[pb.Event | None] = queue.Queue()
        with self._lock:
            self._subscribers.setdefault(vnic, []).append(q)
        try:
            while not stop.is_set():
                try:
                    item = q.get(timeout=0.5)
                except queue.Empty:
                    continue
                if item is None:
                    return
                yield item
        finally:
            with self._lock:
                self._subscribers.get(vnic, []).remove(q)

    def close(self) -> None:
        with self._lock:
            for subscribers in self._subscribers.values():
                for q in subscribers:
                    q.put(None)
