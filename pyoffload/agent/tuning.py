"""The agent's process, tuned so that guests do not wait on each other's bulk work.

Every guest's requests run in one interpreter. A thread that lets the interpreter
lock go (to wait for the target, the state file, a socket) waits up to the switch
interval to get it back while another guest's large request computes, and a
single-rule apply does that about ten times: at the default 5 ms that alone is
tens of milliseconds. A 0.5 ms interval keeps those waits short (measured: a guest's
p99 under a neighbour's undecodable-body flood 180 -> 26 ms). Guests may send
requests of megabytes: blocks that large go back to the system when freed
(``pyoffload.memory``).
"""

from __future__ import annotations

import logging
import sys

from pyoffload.memory import fix_mmap_threshold

_log = logging.getLogger(__name__)

SWITCH_INTERVAL_S = 0.0005
"""The interpreter's switch interval in the agent's process (Python's default: 5 ms)."""


def tune_agent_process() -> None:
    """Apply both settings to this process (``pyoffload up`` does, once, at start)."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    if not fix_mmap_threshold():
        _log.info("this C library has no mallopt: large request bodies may stay resident "
                  "after they are freed")
