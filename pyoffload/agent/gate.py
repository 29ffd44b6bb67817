"""Who may change the target at once: the VNICs' applies together, or one session task.

Each VNIC's requests are serialised by a lock of that VNIC's own, and applies of
different VNICs run at the same time: their entities never share a key, so they
hold the gate *shared*. A (re)connection's adoption and a reconciliation read the
whole target and make it hold every owner's desired state: they must see no apply
half done, so they hold it *exclusively*. A waiting exclusive holder keeps new
shared ones back (a stream of applies cannot starve a repair).

The gate counts every change of hands (``epoch``): a reconciliation reads the target
without holding the gate, then keeps that reading only if the epoch did not move
meanwhile, so the periodic read-back does not stop the applies while it reads.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


class ApplyGate:
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
        """Held by one VNIC's apply (its own lock keeps that VNIC's applies in order)."""
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
    def exclusive(self) -> Iterator[None]:
        """Held by a task that must see and change every owner's entries at once."""
        with self._cond:
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
