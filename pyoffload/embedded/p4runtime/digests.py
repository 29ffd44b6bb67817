"""Digest lists: buffering, de-duplication and acknowledgement (spec "DigestEntry").

The data plane hands over one digest message at a time; they are buffered per
digest until `max_list_size` distinct messages are waiting or the oldest has
waited `max_timeout_ns`, then sent as one DigestList to the primary. Messages
sent but not acknowledged within `ack_timeout_ns` stay in a cache that
suppresses duplicates. Digests for which no DigestEntry was inserted are
dropped, as learning is off until the controller enables it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from finsy.proto import p4d, p4r

from .errors import already_exists, invalid, not_found
from .p4info import DigestInfo, P4InfoIndex
from .resources import encode_data

Undo = list[Callable[[], None]] | None
INSERT, MODIFY, DELETE = p4r.Update.INSERT, p4r.Update.MODIFY, p4r.Update.DELETE
Sender = Callable[[p4r.StreamMessageResponse], None]


@dataclass(slots=True)
class _Digest:
    info: DigestInfo
    config: p4r.DigestEntry.Config
    buffer: list[tuple[int, ...]] = field(default_factory=list)
    first_ns: int = 0
    cache: dict[int, tuple[int, set[tuple[int, ...]]]] = field(default_factory=dict)
    """list_id -> (sent at, messages) awaiting acknowledgement."""
    next_list_id: int = 1


class DigestManager:
    """Digest configuration entities and the delivery of digest lists."""

    def __init__(self, index: P4InfoIndex, send: Sender, clock: Callable[[], int]) -> None:
        self._index = index
        self._send = send
        self._clock = clock
        self._lock = threading.Lock()
        self._by_name = {d.name: d for d in index.digests.values()}
        self._active: dict[int, _Digest] = {}

    # DigestEntry -------------------------------------------------------------
    def write(self, kind: int, msg: p4r.DigestEntry, undo: Undo) -> None:
        info = self._index.digest(msg.digest_id)
        config = msg.config
        if kind != DELETE and (config.max_timeout_ns < 0 or config.max_list_size < 0
                               or config.ack_timeout_ns < 0):
            raise invalid(f"{info.name}: digest config values must not be negative")
        with self._lock:
            old = self._active.get(info.id)
            if kind == INSERT:
                if old is not None:
                    raise already_exists(f"{info.name}: digest is already configured")
                self._active[info.id] = _Digest(info, _copy(config))
            elif kind == MODIFY:
                if old is None:
                    raise not_found(f"{info.name}: digest is not configured")
                self._active[info.id] = _Digest(info, _copy(config), old.buffer, old.first_ns,
                                                old.cache, old.next_list_id)
            elif kind == DELETE:
                if old is None:
                    raise not_found(f"{info.name}: digest is not configured")
                del self._active[info.id]
            else:
                raise invalid("update type must be INSERT, MODIFY or DELETE")
        if undo is not None:
            undo.append(lambda: self._restore(info.id, old))

    def _restore(self, ident: int, old: _Digest | None) -> None:
        with self._lock:
            if old is None:
                self._active.pop(ident, None)
            else:
                self._active[ident] = old

    def read(self, msg: p4r.DigestEntry) -> Iterator[p4r.Entity]:
        if msg.digest_id:
            self._index.digest(msg.digest_id)
        with self._lock:
            items = sorted((i, d.config) for i, d in self._active.items())
        for ident, config in items:
            if msg.digest_id in (0, ident):
                entity = p4r.Entity()
                entity.digest_entry.digest_id = ident
                entity.digest_entry.config.CopyFrom(config)
                yield entity

    # data plane and stream -----------------------------------------------------
    def on_digest(self, name: str, values: tuple[int, ...]) -> None:
        """One digest message from the pipeline (called by the switch's threads)."""
        info = self._by_name.get(name)
        if info is None:
            return
        with self._lock:
            digest = self._active.get(info.id)
            if digest is None:
                return
            if values in digest.buffer or any(values in msgs for _, msgs in digest.cache.values()):
                return
            if not digest.buffer:
                digest.first_ns = self._clock()
            digest.buffer.append(values)
            size = digest.config.max_list_size
            ready = (size and len(digest.buffer) >= size) or digest.config.max_timeout_ns == 0
            message = self._flush(digest) if ready else None
        if message is not None:
            self._send(message)

    def ack(self, ack: p4r.DigestListAck) -> None:
        """A DigestListAck from the primary; unknown digests raise INVALID_ARGUMENT."""
        info = self._index.digests.get(ack.digest_id)
        if info is None:
            raise invalid(f"DigestListAck: unknown digest id {ack.digest_id}")
        with self._lock:
            digest = self._active.get(ack.digest_id)
            if digest is not None:
                digest.cache.pop(ack.list_id, None)

    def tick(self) -> None:
        """Send buffers that waited long enough; forget unacknowledged lists past their timeout."""
        now = self._clock()
        messages = []
        with self._lock:
            for digest in self._active.values():
                if digest.buffer and now - digest.first_ns >= digest.config.max_timeout_ns:
                    messages.append(self._flush(digest))
                timeout = digest.config.ack_timeout_ns
                for list_id in [i for i, (t, _) in digest.cache.items() if now - t >= timeout]:
                    del digest.cache[list_id]
        for message in messages:
            self._send(message)

    def _flush(self, digest: _Digest) -> p4r.StreamMessageResponse:
        response = p4r.StreamMessageResponse()
        out = response.digest
        out.digest_id = digest.info.id
        out.list_id = digest.next_list_id
        digest.next_list_id += 1
        out.timestamp = time.time_ns()
        for values in digest.buffer:
            self._encode(digest.info, values, out.data.add())
        if digest.config.ack_timeout_ns:
            digest.cache[out.list_id] = (self._clock(), set(digest.buffer))
        digest.buffer = []
        return response

    @staticmethod
    def _encode(info: DigestInfo, values: tuple[int, ...], out: p4d.P4Data) -> None:
        if not info.is_struct:
            encode_data(values[0], info.fields[0], out)
            return
        for leaf, value in zip(info.fields, values, strict=False):
            encode_data(value, leaf, out.struct.members.add())


def _copy(config: p4r.DigestEntry.Config) -> p4r.DigestEntry.Config:
    out = p4r.DigestEntry.Config()
    out.CopyFrom(config)
    return out
