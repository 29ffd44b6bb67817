"""Two locks the standard library lacks: a readers-writer gate and a lock taken in turns.

``Gate``: many holders at once (*shared*) or one alone (*exclusive*); a waiting
exclusive holder keeps new shared ones back, so a stream of shared holders cannot
starve it. It counts every change of hands (``epoch``), so a reader can tell whether
anyone came or went while it looked without holding it. The agent's applies hold it
shared (each VNIC's own lock keeps that VNIC's in order) and its adoption and repairs
exclusively; the embedded target's Writes and Reads hold it shared and its pipeline
pushes and all-or-nothing batches exclusively.

``Turns``: a lock granted in the order it was asked for. ``threading.Lock`` is not: a
thread that lets go and asks again at once usually gets it back, so a large job
taken in slices would starve a small one waiting between them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


class Gate:
    """A readers-writer gate whose writers go first (see the module docstring)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._shared = 0
        self._exclusive = False
        self._exclusive_waiting = 0
        self._epoch = 0

    @property
    def epoch(self) -> int:
        """Moves whenever a holder comes or goes."""
        with self._cond:
            return self._epoch

    def quiet_epoch(self) -> int | None:
        """The epoch, when no one holds the gate now; else None."""
        with self._cond:
            if self._shared or self._exclusive:
                return None
            return self._epoch

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        """Held together with other shared holders."""
        with self._cond:
            while self._exclusive or self._exclusive_waiting:
                self._cond.wait()
            self._shared += 1
            self._epoch += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._epoch += 1
                if not self._shared:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self, patience: float = 0.0) -> Iterator[None]:
        """Held alone: waits for the shared holders to leave, and holds new ones back;
        for the first ``patience`` seconds it only waits for a moment when none holds
        it (between two holders' turns) and holds none back."""
        with self._cond:
            if patience > 0:
                self._cond.wait_for(lambda: not (self._exclusive or self._shared), patience)
            self._exclusive_waiting += 1
            try:
                while self._exclusive or self._shared:
                    self._cond.wait()
            finally:
                self._exclusive_waiting -= 1
            self._exclusive = True
            self._epoch += 1
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._epoch += 1
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
