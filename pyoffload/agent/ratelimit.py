"""A guest's request rate: a token bucket, checked before its request is even decoded.

Every call a guest makes on its channel takes a token, whatever it carries (an
apply, a read, bytes that decode to nothing); the bucket holds ``burst`` tokens and
gains ``rate`` a second. A guest over its rate is refused at once, told how long
to wait, and costs the agent nothing more; other guests have buckets of their own.
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

    def take(self) -> float:
        """Take a token: 0.0 when there was one, else the seconds until there is."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            self.refused += 1
            return (1.0 - self._tokens) / self.rate
