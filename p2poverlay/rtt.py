"""
A timeout that follows observed delays, as TCP's retransmission timer
(RFC 6298) follows the round-trip time.

A fixed timeout is wrong both ways: on a slow or loaded network answers
routinely come later than it, and each one that does is work done for
nothing (and done again elsewhere); on a fast one a dead peer is noticed
later than it could be.  L{AdaptiveTimeout} keeps a smoothed mean and
mean deviation of the delays seen, and waits the mean plus four
deviations, never below its floor (the configured timeout) nor above its
ceiling.
"""

from __future__ import annotations

from typing import Optional

# The smoothing of RFC 6298 (alpha = 1/8, beta = 1/4), and its four
# deviations of margin.
ALPHA = 0.125
BETA = 0.25
MARGIN = 4.0


class AdaptiveTimeout:
    """
    How long to wait for something that took the observed delays: at
    least C{floor} seconds, at most C{ceiling}.
    """

    def __init__(self, floor: float, ceiling: float) -> None:
        self.floor = floor
        self.ceiling = max(floor, ceiling)
        self._mean: Optional[float] = None
        self._deviation = 0.0

    def observed(self, delay: float) -> None:
        """What was waited for came C{delay} seconds after the wait began."""
        if self._mean is None:
            self._mean, self._deviation = delay, delay / 2
            return
        self._deviation += BETA * (abs(delay - self._mean) - self._deviation)
        self._mean += ALPHA * (delay - self._mean)

    @property
    def seconds(self) -> float:
        """How long to wait now."""
        if self._mean is None:
            return self.floor
        wait = self._mean + MARGIN * self._deviation
        return min(self.ceiling, max(self.floor, wait))
