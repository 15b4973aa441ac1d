"""Freed memory handed back to the operating system (issue 27: RSS ≤ 250 MB with 100,000 cached members, and
flat under load).

CPython frees its objects, but glibc's malloc keeps freed memory mapped, and two of its defaults cost this process
resident memory it no longer uses (measured with bench/memory.py, 100,000 members):
- the mmap threshold is dynamic: after the first big buffer is freed it rises (up to 32 MiB), so later big
  buffers, such as the gateway's member chunks (1,000 members, a few hundred KB of JSON each), come from the heap
  and leave it fragmented. Fixed at 256 KiB, they are mapped and unmapped on their own: 10 MB less resident once
  100,000 members are cached.
- free pages inside the heap (not at its top) stay resident until `malloc_trim(0)` returns them; it takes well
  under a few milliseconds on this heap, so the runtime calls it every `TRIM_SECONDS`.
Both are glibc calls found through ctypes; with another C library (musl, macOS) they are absent and these
functions do nothing and say so.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
MMAP_THRESHOLD_BYTES = 256 * 1024
TRIM_SECONDS = 30.0


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


_LIBC = _libc()


def fix_mmap_threshold() -> bool:
    """Keep big allocations out of the heap from now on (call once, early); True when glibc accepted it."""
    return _LIBC is not None and _LIBC.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1


def trim() -> bool:
    """Return the heap's free pages to the OS; True when glibc released some memory."""
    return _LIBC is not None and _LIBC.malloc_trim(0) == 1


async def trim_job() -> None:
    """`trim` as a periodic job of the task supervisor (cheap enough for the event loop: no I/O, < 2 ms)."""
    trim()
