"""
Python's cyclic garbage collector, tuned for a process that serves a node.

A node makes a few container objects for every line it reads or writes
(the decoded JSON, the message, its Deferreds), nearly all of them freed
at once by reference counting; what lives long (connections, the address
book, the DHT table) lives for hours and holds no garbage.  CPython's
default thresholds collect the young generation every 700 allocations and,
while the heap grows, every long-lived object again each time it has grown
by a quarter: a formation worker's 250 nodes spent a fifth of their CPU in
the collector, and each full collection stopped the reactor for half a
second.

L{tuneCollector} does what long-running servers do: what exists when the
node starts (modules, its configuration) is frozen out of every later
collection, and the young generation is collected every
L{YOUNG_THRESHOLD} allocations.  Cycles are still found and freed.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000


def tuneCollector() -> None:
    """Tune this process's collector for serving (see the module)."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
