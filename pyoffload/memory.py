"""Giving freed memory back to the system, for processes that run for months.

Three things keep a burst's memory resident after all of it was freed:

- glibc keeps freed memory in its arenas for reuse: 1,000 streams opened and
  closed left the target 28 MB larger, all of it free inside the heap.
  `malloc_trim` hands those free pages back (`trim`).
- Python's own small-object allocator (pymalloc, the default) takes memory from
  the system in 1 MiB arenas and gives an arena back only once every block in
  it is free; it never gives back part of one. After a burst of streams a few
  hundred blocks that outlived it (the free lists of grpc's Cython classes and
  of asyncio's future iterators, caches) keep the burst's new arenas resident:
  measured, 313 live blocks held ten arenas, some a single block each. Nothing
  in Python empties those free lists, so the target's stream handler allocates
  as little per stream as it can (fewer arenas per burst: the first burst of
  1,000 leaves +4 MiB, about 7%, and each later one ~0.2 MiB more, drifting
  toward the burst's high-water mark). Started with ``PYTHONMALLOC=malloc``
  (`on_system_malloc`), a process keeps Python's objects on the C library's
  malloc instead, where such blocks hold only their own pages and a trim gives
  back the rest once a full collection has emptied Python's own free lists:
  flat over 20 bursts, for about 10% of the embedded target's Write rate, so it
  is the operator's choice (see the README).
- Large blocks (a request of megabytes, a Write of 100,000 updates): glibc
  raises its mmap threshold each time it frees an mmap'ed block, so soon such
  blocks come from the heap, whose pages stay resident after they are freed. A
  fixed threshold (`fix_mmap_threshold`) keeps serving them by mmap, so they go
  back to the system when freed (measured on the target: ten failure-heavy
  100,000-update Writes 62 -> 91 MB, with it 62 -> 70 MB, flat from the first).

With another C library the trim and the threshold do nothing.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        function = ctypes.CDLL(None).malloc_trim  # the C library this process runs on
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return function


_MALLOC_TRIM = _malloc_trim()

MMAP_THRESHOLD_BYTES = 256 * 1024
"""Blocks this large or larger are mmap'ed (and unmapped when freed)."""

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def trim() -> bool:
    """Return the heap's free pages to the system (ctypes lets other threads run
    meanwhile); False when this C library cannot."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


def fix_mmap_threshold() -> bool:
    """Serve blocks of ``MMAP_THRESHOLD_BYTES`` or more by mmap from now on; False when
    this C library cannot (not glibc)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def on_system_malloc() -> bool:
    """Whether this process was started with Python's objects on the C library's
    malloc (``PYTHONMALLOC=malloc``) rather than on Python's own allocator."""
    return os.environ.get("PYTHONMALLOC", "") in ("malloc", "malloc_debug")


def resident_kib(pid: int | str = "self") -> int:
    """A process's resident memory (VmRSS, KiB): this one's by default. Raises OSError
    where /proc does not say."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        lines = status.read().splitlines()
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise OSError(f"/proc/{pid}/status has no VmRSS")
