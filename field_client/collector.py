"""The process's cycle collector, tuned while a pull runs.

Rules this module owns:

- While a pull runs, the cycle collector runs after PULL_GC_THRESHOLD new
  objects, not Python's 700. A pull allocates a few hundred objects a change
  (pages, merged states, rows), freed by their reference counts, not by the
  collector; at 700 it ran every few changes, and each page lives long enough
  to be promoted, so the full collections scanned the whole process again and
  again (bench/README.md has the cost, in ``fieldsync sync`` and in a process
  holding millions of objects).
- The threshold is the whole process's (the collector has no other scope),
  so it is a module of its own rather than a detail of the pull: it is set
  when the first pull running starts and put back, as it was, when the last
  one ends, however it ends (a ``fieldsync ui`` sync may overlap another
  thread's).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

PULL_GC_THRESHOLD = 20_000  # the collector's first threshold while pulling (Python's default: 700)

_lock = threading.Lock()
_pulls = 0
_saved: tuple[int, int, int] = (700, 10, 10)


@contextmanager
def fewer_collections() -> Iterator[None]:
    """While the block runs, the collector's first threshold is at least PULL_GC_THRESHOLD."""
    global _pulls, _saved
    with _lock:
        if _pulls == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(max(_saved[0], PULL_GC_THRESHOLD), *_saved[1:])
        _pulls += 1
    try:
        yield
    finally:
        with _lock:
            _pulls -= 1
            if _pulls == 0:
                gc.set_threshold(*_saved)
