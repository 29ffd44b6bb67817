"""Per-VNIC event fan-out for the guest channel's Watch stream.

A subscriber is an async iterator (``stream``) on its event loop, which holds no
thread while it waits: a hundred watchers cost a hundred queues, not a hundred
workers. ``publish`` may be called from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator

from guest_shim import offload_pb2 as pb

SUBSCRIBER_BACKLOG = 1024
"""Events kept for a slow watcher before the oldest are dropped."""


class _LoopQueue:
    """An asyncio queue fed from other threads, dropping its oldest event when full."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[pb.Event | None] = asyncio.Queue()

    def _put(self, item: pb.Event | None) -> None:  # on the loop
        if item is not None and self.queue.qsize() >= SUBSCRIBER_BACKLOG:
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
        self.queue.put_nowait(item)

    def put(self, item: pb.Event | None) -> None:  # from any thread
        with contextlib.suppress(RuntimeError):  # the loop is closed: its watcher is gone
            self.loop.call_soon_threadsafe(self._put, item)


class EventHub:
    """Delivers each VNIC's events to whoever watches that VNIC, and no one else."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: dict[str, list[_LoopQueue]] = {}

    def publish(self, vnic: str, kind: int, *, generation: int = 0, flow_id: str = "",
                rule_id: str = "", quota: str = "", message: str = "") -> None:
        event = pb.Event(kind=kind, generation=generation, flow_id=flow_id,  # type: ignore[arg-type]
                         rule_id=rule_id, quota=quota, message=message,
                         time_unix_ns=time.time_ns())
        with self._lock:
            streams = list(self._streams.get(vnic, ()))
        for stream in streams:
            stream.put(event)

    async def stream(self, vnic: str) -> AsyncIterator[pb.Event]:
        """Events of ``vnic`` on the running event loop, until ``close`` is called or the
        consumer stops iterating (closing the generator unsubscribes)."""
        q = _LoopQueue(asyncio.get_running_loop())
        with self._lock:
            self._streams.setdefault(vnic, []).append(q)
        try:
            while (item := await q.queue.get()) is not None:
                yield item
        finally:
            with self._lock:
                self._streams.get(vnic, []).remove(q)

    def watchers(self, vnic: str) -> int:
        """How many subscribers ``vnic`` has now."""
        with self._lock:
            return len(self._streams.get(vnic, ()))

    def close(self) -> None:
        with self._lock:
            for streams in self._streams.values():
                for stream in streams:
                    stream.put(None)
