"""
How long a node waits for an announced broadcast before it grafts.

Plumtree grafts a link when a payload announced by ``IHAVE`` has not come
within a timeout.  A fixed timeout is wrong both ways: on a slow or loaded
overlay payloads routinely come later than it, every one of them causes a
needless ``GRAFT`` and the tree keeps redundant eager links; on a fast one
a dead branch is repaired later than it could be.  L{GraftTimeout}
follows how long after its first announcement each payload came
(L{p2poverlay.rtt.AdaptiveTimeout}), never below the configured floor nor
above L{MAX_GRAFT_TIMEOUT}.
"""

from __future__ import annotations

from p2poverlay.rtt import AdaptiveTimeout

# Never wait longer than this for an announced payload.
MAX_GRAFT_TIMEOUT = 10.0


class GraftTimeout(AdaptiveTimeout):
    """
    The graft timeout of one node: at least C{floor} seconds (the
    configured C{graftTimeout}), more where payloads come later.
    """

    def __init__(self, floor: float) -> None:
        super().__init__(floor, MAX_GRAFT_TIMEOUT)
