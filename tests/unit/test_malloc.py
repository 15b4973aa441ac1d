"""obs/malloc.py: glibc hands freed heap pages back to the OS when asked (issue 27's memory target relies on it)."""

from __future__ import annotations

import gc
import sys

import pytest

from synapse_async.obs import malloc

pytestmark = pytest.mark.skipif(malloc._LIBC is None, reason="not glibc: the calls are absent and do nothing")


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))


def test_trim_returns_freed_heap_pages_to_the_os() -> None:
    assert sys.platform == "linux"
    # 60 MB in 100 KB blocks (below the mmap threshold: they come from the heap), then all freed but the last,
    # which pins the top of the heap so that only a trim (not the automatic top trim) can give the rest back.
    blocks = [bytearray(100 * 1024) for _ in range(600)]
    for b in blocks:
        b[::4096] = b"\x01" * len(b[::4096])  # touch every page: resident for sure
    keep = blocks[-1]
    del blocks
    gc.collect()
    before = _rss_kib()
    malloc.trim()
    after = _rss_kib()
    assert keep[0] == 1
    assert before - after > 30 * 1024, (before, after)


def test_the_mmap_threshold_is_accepted() -> None:
    assert malloc.fix_mmap_threshold() is True
