"""A guest's request rate: token buckets, checked before its request is even decoded.

Every call a guest makes on its channel takes a token, whatever it carries (an
apply, a read, bytes that decode to nothing), and as many byte tokens as its body
has bytes (decoding a 4 MB body costs the agent tens of milliseconds); a bucket
holds ``burst`` tokens and gains ``rate`` a second. A guest over its rate is refused
at once, told how long to wait, and costs the agent nothing more; other guests have
buckets of their own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimit:
    """``rate`` calls a second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a rate limit needs rate > 0 and burst >= 1 (got {rate}, {burst})")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()
        self._lock = threading.Lock()
        self.refused = 0
        """Calls refused since start (reported in the log)."""

    def take(self, amount: float = 1.0) -> float:
        """Take ``amount`` tokens (at most ``burst``): 0.0 when there were as many, else
        the seconds until there are."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= amount:
                self._tokens -= amount
                return 0.0
            self.refused += 1
            return (amount - self._tokens) / self.rate
