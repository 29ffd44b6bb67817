"""The agent's process, tuned so that guests do not wait on each other's bulk work.

Every guest's requests run in one interpreter. A thread that lets the interpreter
lock go (to wait for the target, the state file, a socket) waits up to the switch
interval to get it back while another guest's large request computes, and a
single-rule apply does that about ten times: at the default 5 ms that alone is
tens of milliseconds. A 0.5 ms interval keeps those waits short (measured: a guest's
p99 under a neighbour's undecodable-body flood 180 -> 26 ms).

Large request bodies (a guest may send megabytes) are received by grpc into
blocks that glibc's malloc serves from the heap once its adaptive mmap threshold
has grown past them, and the heap keeps those pages resident after they are
freed; a fixed threshold serves such blocks by mmap, so they go back to the
system as soon as they are freed.
"""

from __future__ import annotations

import ctypes
import logging
import platform
import sys

_log = logging.getLogger(__name__)

SWITCH_INTERVAL_S = 0.0005
"""The interpreter's switch interval in the agent's process (Python's default: 5 ms)."""

MMAP_THRESHOLD_BYTES = 256 * 1024
"""Blocks this large or larger are mmap'ed (and unmapped when freed)."""

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def tune_agent_process() -> None:
    """Apply both settings to this process (``pyoffload up`` does, once, at start)."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    if platform.libc_ver()[0] != "glibc":
        return
    try:
        libc = ctypes.CDLL(None)
        if not libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES):
            _log.warning("mallopt(M_MMAP_THRESHOLD) was refused: large request bodies "
                         "may stay resident after they are freed")
    except (OSError, AttributeError) as exc:
        _log.warning("cannot set glibc's mmap threshold (%s): large request bodies may "
                     "stay resident after they are freed", exc)
