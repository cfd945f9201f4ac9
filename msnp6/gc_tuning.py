"""The garbage collector's settings for a long-running server holding many sessions.

Python's default thresholds (700, 10, 10) suit short scripts. A server with 10,000 sessions keeps
millions of long-lived objects (sessions, their lists, the modules of Twisted and SQLAlchemy), and
every older-generation collection walks them again: in a login storm of 10,000 accounts that was
a fifth of the server's CPU (benchmarks/ storm, docs/performance.md). So, once the server runs:
  - what start-up made (modules, the listeners, the store) is frozen out of collection for good
    (``gc.freeze``): it lives as long as the process;
  - the young generation is collected every 10,000 allocations, not 700, and the older ones less
    often. Reference cycles are still collected; they just wait a little longer.
"""
from __future__ import annotations

import gc

#: gc.set_threshold's three values (young, middle, old generation).
THRESHOLDS = (10_000, 20, 100)


def tune() -> None:
    """Freeze what exists now and set the thresholds; call once the server is up."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
