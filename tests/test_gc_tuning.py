"""The collector settings the server applies once running (msnp6.gc_tuning)."""
from __future__ import annotations

import gc
import weakref

from msnp6 import gc_tuning


class Node:
    other: "Node | None" = None


def test_tune_freezes_what_exists_and_raises_the_thresholds_and_cycles_still_go():
    before = gc.get_threshold()
    try:
        gc_tuning.tune()
        assert gc.get_threshold() == gc_tuning.THRESHOLDS
        assert gc.get_freeze_count() > 0
        # Made after the freeze: a reference cycle is still collected.
        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
