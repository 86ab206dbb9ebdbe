"""Keep memory that torch and numpy free inside the process, so the next step reuses it.

glibc's malloc hands a large block (above 128 KiB to 32 MiB, adapting) straight to the kernel
with `mmap` and returns it with `munmap` when it is freed, and gives back the heap's free top
once it passes a threshold. A training step or a scored batch frees its activations at the end
and allocates the same sizes at the next one, so every step then faults its activations in
again, one zero-filled 4 KiB page at a time, which on a virtual machine costs a noticeable part
of a step (BENCHMARKS.md "page faults"). `retain_freed_memory` turns both off, so freed blocks
stay in the heap for reuse. Peak resident memory grows a little (freed blocks of one size do
not always fit the next request; BENCHMARKS.md "memory on medium"), and what the heap holds is
handed back only by `release_freed_memory` or when the process exits.

The setting is the whole process's, so only entry points apply it: the `malt` command and the
study engine's worker processes. A program that imports malt opts in by calling
`retain_freed_memory` itself; training then hands the heap back at each day's end, where the
job passes `release_freed_memory` to the trainer (`malt.jobs.train.train_run(day_end=...)`).

Set `MALT_MALLOC=system` to keep the C library's own settings.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
"""mallopt parameter: free bytes at the heap's top before they are returned to the system."""
M_MMAP_MAX = -4
"""mallopt parameter: how many blocks may be served by their own mmap (0: none)."""
NEVER_TRIM = 2**31 - 1
"""The largest trim threshold mallopt takes (its value is a C int)."""
OPT_OUT = "MALT_MALLOC"

_applied: bool | None = None


def retain_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse, for the whole process (see the module
    docstring); True when it is in effect. Idempotent; a no-op returning False off glibc or with
    `MALT_MALLOC=system`."""
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def release_freed_memory() -> None:
    """Hand the heap's free memory back to the system (glibc's `malloc_trim`) where
    `retain_freed_memory` is in effect, else nothing: at a boundary such as the end of a
    training day, so that blocks freed by one phase (a checkpoint's buffers, a day's
    temporaries) that the next does not reuse are not held until the process exits. The next
    steps fault their pages in once."""
    if _applied:
        ctypes.CDLL(None).malloc_trim(0)


def _apply() -> bool:
    if os.environ.get(OPT_OUT, "").lower() == "system" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # a C library without mallopt: nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; a libc that only stubs it (musl) returns 0.
    applied = mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, NEVER_TRIM) == 1
    log.debug("malloc keeps freed memory: %s", applied)
    return applied
