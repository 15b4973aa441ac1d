"""The heap policy (obs/heap.py): startup's objects are frozen out of later collections, and given back."""

from __future__ import annotations

import gc
import weakref

from synapse_async.obs.heap import YOUNG_THRESHOLD, release_heap, settle_heap


class _Cycle:
    """An object in a reference cycle: only the cyclic collector can free it."""

    def __init__(self) -> None:
        self.me = self


def _tracked(obj: object) -> bool:
    """Whether a collection would look at `obj` (frozen objects are in no generation)."""
    return any(o is obj for o in gc.get_objects())


def test_settle_heap_collects_the_garbage_then_freezes_the_survivors() -> None:
    garbage = weakref.ref(_Cycle())  # unreachable already: the collection inside settle_heap frees it
    kept = _Cycle()
    try:
        frozen = settle_heap()
        assert garbage() is None
        assert frozen == gc.get_freeze_count() > 0
        assert not _tracked(kept)
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    finally:
        release_heap()
    assert gc.get_freeze_count() == 0
    assert _tracked(kept)
    assert gc.get_threshold()[0] == 700


def test_frozen_garbage_waits_for_release_heap() -> None:
    obj = _Cycle()
    ref = weakref.ref(obj)
    try:
        settle_heap()
        del obj
        gc.collect()
        assert ref() is not None  # frozen: no collection looks at it
    finally:
        release_heap()
    gc.collect()
    assert ref() is None
