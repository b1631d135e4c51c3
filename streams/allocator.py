"""glibc's allocator, set up for a process that runs torch on the CPU.

Why: torch allocates each layer's output afresh (megabytes per image at
640x360) and frees it a moment later.  glibc serves blocks above its mmap
threshold with ``mmap`` and returns them with ``munmap``, and it trims the
top of the heap back to the system; the threshold moves with what was freed
before.  So the same model, on the same frames, either reuses heap memory or
takes a page fault on every fresh page, depending on the process's history.
On the 2-core development machine SSDLite ran at 62 to 105 frames/s with
glibc's defaults (30 % of the time in the kernel), in different processes
minutes apart: the "spells" earlier benchmarks blamed on the machine.
With the threshold held at its maximum and the trim and top pad raised, it
ran at 93 to 106 frames/s in every process, with the same peak memory
(``bench/cpu_runtime.py``; docs/benchmarks.md, "CPU runtime").

The settings are process-wide and harmless to code that does not use torch.
They are applied with ``mallopt(3)`` as every ``secmlops`` command starts
(the worker, ``calibrate``, ``evaluate`` and the demo run models in their own
process) and by the benchmarks; a C library other than glibc is left alone.
``SECMLOPS_TUNE_MALLOC=0`` turns it off (e.g. to use jemalloc through
``LD_PRELOAD`` instead).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

__all__ = ["MALLOC_OPTIONS", "tune_allocator"]

log = logging.getLogger(__name__)

# mallopt(3) parameters (malloc.h) and the values measured above.  32 MiB is the largest
# mmap threshold glibc accepts on 64-bit; setting any of these also stops glibc moving
# the threshold by itself.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
MALLOC_OPTIONS: dict[str, tuple[int, int]] = {
    "mmap_threshold": (_M_MMAP_THRESHOLD, 32 * 2**20),
    "trim_threshold": (_M_TRIM_THRESHOLD, 128 * 2**20),
    "top_pad": (_M_TOP_PAD, 32 * 2**20),
}


def tune_allocator(enabled: bool = True) -> bool:
    """Apply :data:`MALLOC_OPTIONS` to this process; True when they are in effect.

    Does nothing (and returns False) when ``enabled`` is false, or when the C
    library is not glibc: ``mallopt`` parameters are glibc's own.  Applying
    them again is harmless.
    """
    if not enabled:
        return False
    if platform.libc_ver()[0] != "glibc":
        log.info("C library is not glibc: allocator left at its defaults")
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    refused = [
        name for name, (param, value) in MALLOC_OPTIONS.items() if libc.mallopt(param, value) != 1
    ]
    if refused:
        log.warning("glibc refused mallopt %s; allocator partly at its defaults", refused)
        return False
    return True
