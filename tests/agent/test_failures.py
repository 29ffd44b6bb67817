"""What the log says of failures that repeat: once, then a count or when they end."""

from __future__ import annotations

import logging
import time

import pytest

from pyoffload.agent.failures import RefusalLog, RepeatedFailure

LOG = logging.getLogger("tests.failures")


def _said(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


def test_a_failure_that_repeats_is_said_once_even_as_its_numbers_change(
        caplog: pytest.LogCaptureFixture) -> None:
    """A reconnect's error names its growing timeout ("within 1 s", "within 1.6 s"): still
    the same failure, said once; another error is said again."""
    caplog.set_level(logging.DEBUG, logger=LOG.name)
    failures = RepeatedFailure(LOG)
    for timeout in (1, 1.6, 3.2, 5):
        failures.failed(OSError(f"no server answered within {timeout:g} s"), "reconnecting")
    failures.failed(OSError("permission denied"), "reconnecting")
    assert _said(caplog) == [
        "reconnecting: no server answered within 1 s (said again only if the error changes)",
        "reconnecting: permission denied (said again only if the error changes)"]
    assert len(_said(caplog, logging.DEBUG)) == 3
    count, seconds = failures.ended()
    assert count == 5 and seconds >= 0
    assert failures.ended() == (0, 0.0)


def test_refusals_are_said_once_per_interval_then_counted(
        caplog: pytest.LogCaptureFixture) -> None:
    """Without an event loop the count is said with the first refusal after the
    interval; keys are bounded (the oldest say their counts when dropped)."""
    caplog.set_level(logging.DEBUG, logger=LOG.name)
    refusals = RefusalLog(LOG, interval=0.2, keys=4)
    for _ in range(5):
        refusals.refused("VNIC a: Watch streams from p", "VNIC a: refused a Watch stream")
    assert _said(caplog) == ["VNIC a: refused a Watch stream (said once per 0.2 s for this "
                             "client)"]
    time.sleep(0.25)
    refusals.refused("VNIC a: Watch streams from p", "VNIC a: refused a Watch stream")
    said = _said(caplog)
    assert len(said) == 3 and said[1].startswith("VNIC a: Watch streams from p: 4 more "
                                                 "refused in 0 s (each at debug)"), said
    caplog.clear()
    for peer in range(10):  # more clients than keys: the table stays bounded
        refusals.refused(f"from {peer}", f"refused {peer}")
    assert len(refusals._windows) <= 4
    assert len(_said(caplog)) == 10
