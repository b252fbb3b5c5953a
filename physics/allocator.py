"""Keeps the memory a ranking frees inside the process, so that the next ranking does not fault it in again.

A ranking of the whole catalog allocates and frees a few megabytes of arrays per call (19,856 rows by some forty
columns, and their temporaries). glibc's malloc serves a block above its mmap threshold with a fresh mapping and
gives the top of the heap back to the system once more than its trim threshold is free; either way the next call
touches new pages, and each first touch is a page fault. On the 2-core VM of docs/performance.md that was about
1,500 faults and a third of a ranking's time. ``keep_freed_memory`` raises both thresholds (``mallopt``): blocks up
to 32 MiB come from the heap, and up to 128 MiB of freed heap stays with the process for the next call.

The site's processes call it once at start (``gpufit.apps``: the web server, the workers, ``manage.py``);
``python -m planner.bench`` calls it too, and ``--default-allocator`` leaves glibc's defaults for comparison.
Elsewhere (macOS, musl) it does nothing and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# mallopt's parameter numbers (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# glibc caps the mmap threshold at 32 MiB on 64-bit systems; a larger value is refused.
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 128 * 1024 * 1024
# Set to 0 to keep glibc's defaults (a measurement of the difference, or a memory-starved host).
ENV_SWITCH = "GPUFIT_KEEP_FREED_MEMORY"

_applied = False


def keep_freed_memory() -> bool:
    """Raises glibc's mmap and trim thresholds for this process; returns whether they are raised (now or before)."""
    global _applied
    if _applied:
        return True
    if os.environ.get(ENV_SWITCH, "1").strip() == "0":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc is not None else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mallopt returns 1 on success, 0 when the value is refused.
    _applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied


def applied() -> bool:
    """Returns whether this process runs with the raised thresholds."""
    return _applied
