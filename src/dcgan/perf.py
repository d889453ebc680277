"""Process-wide speed settings for CPU training that torch does not make: glibc's malloc policy.

Imports no torch, so the CLI can call it before torch allocates anything.
"""

from __future__ import annotations

import ctypes
import sys

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
