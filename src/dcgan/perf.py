"""Process-wide speed settings for CPU training that torch does not make: OpenMP's wait policy
and glibc's malloc policy.

Imports no torch, so the CLI can call it before torch is loaded (libgomp reads its environment
once, when torch loads it).
"""

from __future__ import annotations

import ctypes
import os
import sys


def openmp_env() -> bool:
    """With DCGAN_OMP_POLICY=passive, let OpenMP threads that wait at a parallel region's barrier
    sleep instead of spinning (OMP_WAIT_POLICY=PASSIVE), unless the user set a policy.

    torch's CPU kernels run dozens of short parallel regions per step, and libgomp keeps a
    waiting thread spinning; when another process wants a core, the spinning thread takes it
    from the very thread it waits for. Measured on this 2-core machine (bench/bench_load.py,
    bench/README.md "Training under load"): with one busy process the default keeps 22-25% of
    its idle speed at 28 px and passive waiting 63%, but idle passive waiting runs at 0.62x, so
    it is opt-in, not the default. Must run before torch is imported; returns whether it set
    the policy."""
    if os.environ.get("DCGAN_OMP_POLICY") != "passive" or "torch" in sys.modules:
        return False
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return False
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True


# mallopt parameters from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_INT_MAX = 2**31 - 1


def tune_malloc() -> bool:
    """Keep freed memory inside the process instead of handing it back to the kernel.

    glibc serves blocks above its mmap threshold (128 KiB, adapting up to 32 MiB) with fresh
    mmaps and trims the heap top when free: every training step then allocates its activations
    from zeroed pages again, one page fault per 4 KiB. Turning off mmap-backed blocks and heap
    trimming makes later steps reuse the same, already mapped memory; the process keeps its peak
    size. Returns True when applied; False (doing nothing) where the C library is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version.restype = ctypes.c_char_p  # only glibc has it (not musl)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _INT_MAX))
