"""A failure retried until it stops, said in the log as an operator wants to read it.

While the target is away the agent retries its connection and its checkpoint over and
over; a warning per attempt would bury the log. `RepeatedFailure` says a failure when it
starts and again only when its error changes (every attempt at debug), and tells the
caller, when it ends, how many attempts failed over how long.
"""

from __future__ import annotations

import logging
import time


class RepeatedFailure:
    """One run of failed attempts (``error``: the last one's, "" when none failed)."""

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self.error = ""
        self.count = 0
        self._since = 0.0

    def failed(self, exc: BaseException, what: str) -> None:
        """An attempt failed with ``exc``; ``what`` says what failed and how it is retried."""
        error = str(exc).splitlines()[0] if str(exc) else repr(exc)
        level = logging.WARNING if error != self.error else logging.DEBUG
        self._log.log(level, "%s: %s (said again only if the error changes)", what, error)
        if not self.count:
            self._since = time.monotonic()
        self.count += 1
        self.error = error

    def ended(self) -> tuple[int, float]:
        """An attempt worked: the attempts that failed before it and over how many
        seconds (0, 0.0 when none did); the run starts afresh."""
        ran = (self.count, time.monotonic() - self._since if self.count else 0.0)
        self.error, self.count = "", 0
        return ran
