"""Two locks the standard library lacks: a readers-writer gate and a lock taken in turns.

``Gate``: many holders at once (*shared*) or one alone (*exclusive*); a waiting
exclusive holder keeps new shared ones back, so a stream of shared holders cannot
starve it. Holders may name a key (what they touch): an exclusive holder of a key
stops only the shared holders of that key (and those that name none). It counts every
change of hands per key (``stamp``), so a reader can tell
whether anyone who may touch a key came or went while it looked, without holding it.
The agent's applies hold it shared under their VNIC's name (each VNIC's own lock keeps
that VNIC's in order), its repair of one VNIC's entries exclusively under that name,
and its adoption of a target exclusively whole; the embedded target's Writes and Reads
hold it shared and its pipeline pushes and all-or-nothing batches exclusively.

``Turns``: a lock granted in the order it was asked for. ``threading.Lock`` is not: a
thread that lets go and asks again at once usually gets it back, so a large job
taken in slices would starve a small one waiting between them.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Hashable, Iterator


class Gate:
    """A readers-writer gate whose writers go first, whole or per key (see the module
    docstring)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._shared = 0
        self._shared_by: collections.Counter[Hashable] = collections.Counter()
        """Shared holders per key (those without one count under None)."""
        self._exclusive = False
        self._exclusive_waiting = 0
        self._keys_held: set[Hashable] = set()
        self._keys_waiting: collections.Counter[Hashable] = collections.Counter()
        self._epochs: collections.Counter[Hashable] = collections.Counter()
        """Per key (None: holders without a key and whole exclusive ones), how often a
        holder that may touch it came or went."""

    def stamp(self, key: Hashable) -> int | None:
        """None while someone who may touch ``key`` holds the gate; else a number that
        moves as soon as one takes it. Two equal stamps: no such holder in between."""
        with self._cond:
            if (self._exclusive or key in self._keys_held or self._shared_by[key]
                    or self._shared_by[None]):
                return None
            return self._epochs[key] + self._epochs[None]

    def untouched_since(self, key: Hashable, stamp: int) -> bool:
        """For the exclusive holder of ``key``: whether no one else who may touch it came
        or went since ``stamp`` (only this hold did)."""
        with self._cond:
            return self._epochs[key] + self._epochs[None] == stamp + 1

    def _moved(self, key: Hashable) -> None:
        self._epochs[key] += 1

    @contextlib.contextmanager
    def shared(self, key: Hashable = None) -> Iterator[None]:
        """Held together with other shared holders; ``key`` names what it may touch
        (None: anything), so an exclusive holder of another key does not stop it."""
        with self._cond:
            while (self._exclusive or self._exclusive_waiting or (
                    key is None and (self._keys_held or self._keys_waiting)) or (
                    key is not None and (key in self._keys_held or self._keys_waiting[key]))):
                self._cond.wait()
            self._shared += 1
            self._shared_by[key] += 1
            self._moved(key)
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._shared_by[key] -= 1
                self._moved(key)
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self, patience: float = 0.0, key: Hashable = None) -> Iterator[None]:
        """Held alone: waits for the shared holders to leave, and holds new ones back;
        for the first ``patience`` seconds it only waits for a moment when none holds
        it (between two holders' turns) and holds none back. With a ``key``, alone only
        with respect to that key: holders of other keys go on."""
        def busy() -> bool:
            if key is None:
                return bool(self._exclusive or self._shared or self._keys_held)
            return bool(self._exclusive or self._exclusive_waiting or key in self._keys_held
                        or self._shared_by[key] or self._shared_by[None])

        with self._cond:
            if patience > 0:
                self._cond.wait_for(lambda: not busy(), patience)
            if key is None:
                self._exclusive_waiting += 1
            else:
                self._keys_waiting[key] += 1
            try:
                while busy():
                    self._cond.wait()
            finally:
                if key is None:
                    self._exclusive_waiting -= 1
                else:
                    self._keys_waiting[key] -= 1
                    if not self._keys_waiting[key]:
                        del self._keys_waiting[key]  # an empty Counter is falsy
                self._cond.notify_all()  # whoever the waiting held back may go
            if key is None:
                self._exclusive = True
            else:
                self._keys_held.add(key)
            self._moved(key)
        try:
            yield
        finally:
            with self._cond:
                if key is None:
                    self._exclusive = False
                else:
                    self._keys_held.discard(key)
                self._moved(key)
                self._cond.notify_all()


class Turns:
    """A lock granted in the order it was asked for (see the module docstring)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._next = 0
        self._serving = 0

    @property
    def waiting(self) -> bool:
        """Someone waits for their turn (read without locking: a hint)."""
        return self._next - self._serving > 1

    def __enter__(self) -> None:
        with self._cond:
            ticket = self._next
            self._next += 1
            while self._serving != ticket:
                self._cond.wait()

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._serving += 1
            self._cond.notify_all()
