"""
How long a node waits for an announced broadcast before it grafts.

Plumtree grafts a link when a payload announced by ``IHAVE`` has not come
within a timeout.  A fixed timeout is wrong both ways: on a slow or loaded
overlay payloads routinely come later than it, every one of them causes a
needless ``GRAFT`` and the tree keeps redundant eager links; on a fast one
a dead branch is repaired later than it could be.  L{GraftTimeout}
follows the observed lateness of payloads, as TCP's retransmission timer
(RFC 6298) follows the round-trip time: a smoothed mean and mean
deviation of how long after its first announcement each payload came,
and a timeout of the mean plus four deviations, never below the
configured floor nor above L{MAX_GRAFT_TIMEOUT}.
"""

from __future__ import annotations

# The smoothing of RFC 6298 (alpha = 1/8, beta = 1/4), and its four
# deviations of margin.
ALPHA = 0.125
BETA = 0.25
MARGIN = 4.0
# Never wait longer than this for an announced payload.
MAX_GRAFT_TIMEOUT = 10.0


class GraftTimeout:
    """
    The graft timeout of one node: at least C{floor} seconds (the
    configured C{graftTimeout}), more where payloads come later.
    """

    def __init__(self, floor: float) -> None:
        self.floor = floor
        self._mean: float | None = None
        self._deviation = 0.0

    def observed(self, lateness: float) -> None:
        """A payload came C{lateness} seconds after its first ``IHAVE``."""
        if self._mean is None:
            self._mean, self._deviation = lateness, lateness / 2
            return
        self._deviation += BETA * (abs(lateness - self._mean)
                                   - self._deviation)
        self._mean += ALPHA * (lateness - self._mean)

    @property
    def seconds(self) -> float:
        """How long to wait now for an announced payload."""
        if self._mean is None:
            return self.floor
        wait = self._mean + MARGIN * self._deviation
        return min(MAX_GRAFT_TIMEOUT, max(self.floor, wait))
