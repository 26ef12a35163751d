"""Keeping freed large buffers in the process, so the next ones do not page-fault.

A Striped write allocates a few buffers of megabytes per stripe (the cut stripe,
pyeclib's fragments, its output copies) and frees them a moment later; a gateway
receiving a large upload holds its body's pieces until they are stored, then frees
them all. glibc's malloc serves blocks that large with fresh ``mmap`` pages, or gives
the top of a heap back to the kernel once more than ``M_TRIM_THRESHOLD`` bytes are
free there, so the next buffers fault in (and the kernel zeroes) every page again:
measured here, that is most of what pyeclib's encode costs (RS(4,2): 630 MB/s on fresh
pages, 2,400 MB/s on reused ones; about 230,000 minor faults per 256 MiB written), and
a third of the gateway's CPU for a 256 MiB upload (``benchmarks/README.md``).

:func:`retain_freed_buffers` sets two glibc knobs for the whole process (``mallopt``):
blocks up to ``mmap_threshold`` come from the heap, and a heap keeps up to
``trim_threshold`` free bytes instead of returning them. The cost is that much
memory held after a burst of large allocations (anyone's); the peak stays what the
work in flight needs. A library call leaves it to the caller (``Striped(...,
tune_malloc=True)``), because it changes every allocation of the process; ``storager
serve``, which owns its process, sets it. A no-op where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import platform
import threading

__all__ = ["retain_freed_buffers"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: glibc refuses an mmap threshold above half its heap size (32 MiB on 64-bit).
_MMAP_THRESHOLD_MAX = 32 << 20

_lock = threading.Lock()
_applied: tuple[int, int] | None = None


def retain_freed_buffers(
    mmap_threshold: int = _MMAP_THRESHOLD_MAX, trim_threshold: int = 256 << 20
) -> bool:
    """Have glibc keep freed blocks of up to ``mmap_threshold`` bytes for reuse.

    Args:
        mmap_threshold: Allocations up to this size come from the heap, not fresh
            ``mmap`` pages (at most 32 MiB: glibc refuses more).
        trim_threshold: Free bytes a heap keeps before it returns memory to the kernel.

    Returns:
        Whether the knobs are set (False where the C library is not glibc or refuses
        them). Calling it again with the same values does nothing more.
    """
    global _applied
    wanted = (min(mmap_threshold, _MMAP_THRESHOLD_MAX), trim_threshold)
    with _lock:
        if _applied == wanted:
            return True
        if platform.libc_ver()[0] != "glibc":
            return False
        try:
            mallopt = ctypes.CDLL(None).mallopt
        except (OSError, AttributeError):
            return False
        mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        mallopt.restype = ctypes.c_int
        if not (mallopt(_M_MMAP_THRESHOLD, wanted[0]) and mallopt(_M_TRIM_THRESHOLD, wanted[1])):
            return False
        _applied = wanted
        return True
