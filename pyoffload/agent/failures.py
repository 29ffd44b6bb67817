"""A failure retried until it stops, said in the log as an operator wants to read it.

While the target is away the agent retries its connection and its checkpoint over and
over; a warning per attempt would bury the log. `RepeatedFailure` says a failure when it
starts and again only when its error changes (every attempt at debug), and tells the
caller, when it ends, how many attempts failed over how long. `RefusalLog` does the
same for refusals a client can repeat at will: once per interval per client, then a count.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
"""Numbers in an error: the same error with other numbers is said once."""


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
        same = _NUMBER.sub("N", error) == _NUMBER.sub("N", self.error)  # (a timeout grows)
        level = logging.DEBUG if same else logging.WARNING
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


class _Window:
    __slots__ = ("began", "unsaid")

    def __init__(self, began: float) -> None:
        self.began = began
        self.unsaid = 0


class RefusalLog:
    """Refusals a client can repeat at will (a Watch stream over its limit, a certificate
    bound to another VNIC), said at most once per ``interval`` seconds per key: a guest
    that retries in a loop must not be able to flood the host's log. The ones in between
    go to debug and are counted; the count is said when the interval ends (by the event
    loop the refusal came from, if any) or with the next refusal after it."""

    def __init__(self, log: logging.Logger, interval: float = 60.0,
                 keys: int = 1024) -> None:
        self._log = log
        self.interval = interval
        self._keys = keys
        self._windows: dict[str, _Window] = {}

    def refused(self, key: str, message: str, exc_info: BaseException | None = None
                ) -> None:
        """A refusal described by ``message``; ``key`` names what is refused to whom (say
        "VNIC web-1: Watch streams from PEER"), and begins the line of the count;
        ``exc_info``: an exception whose traceback the said line carries."""
        now = time.monotonic()
        window = self._windows.get(key)
        if window is not None and now - window.began < self.interval:
            self._log.debug("%s (not said again within %g s)", message, self.interval)
            window.unsaid += 1
            if window.unsaid == 1:
                self._later(key, window)
            return
        if window is not None:
            self._say_unsaid(key, window)
        elif len(self._windows) >= self._keys:
            self._forget_ended(now)
        self._log.warning("%s (said once per %g s for this client)", message, self.interval,
                          exc_info=exc_info)
        self._windows[key] = _Window(now)

    def _later(self, key: str, window: _Window) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop here: the next refusal says it
            return
        loop.call_at(loop.time() + window.began + self.interval - time.monotonic(),
                     self._end, key, window)

    def _end(self, key: str, window: _Window) -> None:
        if self._windows.get(key) is window:
            del self._windows[key]
            self._say_unsaid(key, window)

    def _say_unsaid(self, key: str, window: _Window) -> None:
        if window.unsaid:
            self._log.warning("%s: %d more refused in %.0f s (each at debug)", key,
                              window.unsaid, time.monotonic() - window.began)
            window.unsaid = 0

    def _forget_ended(self, now: float) -> None:
        for key, window in list(self._windows.items()):
            if now - window.began >= self.interval:
                del self._windows[key]
                self._say_unsaid(key, window)
        if len(self._windows) >= self._keys:  # all recent: keep the newest half
            for key in list(self._windows)[: self._keys // 2]:
                self._say_unsaid(key, self._windows.pop(key))
