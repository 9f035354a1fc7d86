"""
One-way delays of memory links.

A delay model is any object with C{draw(rng) -> float}, the one-way delay
in seconds drawn from C{rng} (a L{random.Random}).  The network draws one
delay per pair of hosts, the same both ways and for every connection
between them, and optionally a I{jitter} per segment on top of it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Protocol


class Delay(Protocol):
    """A delay model."""

    def draw(self, rng: random.Random) -> float:
        """A one-way delay, in seconds, drawn from C{rng}."""
        ...


@dataclass(frozen=True)
class FixedDelay:
    """Every link has the same one-way delay of C{seconds}."""

    seconds: float

    def draw(self, rng: random.Random) -> float:
        return self.seconds


@dataclass(frozen=True)
class UniformDelay:
    """One-way delays uniform between C{low} and C{high} seconds."""

    low: float
    high: float

    def draw(self, rng: random.Random) -> float:
        return rng.uniform(self.low, self.high)


@dataclass(frozen=True)
class LogNormalDelay:
    """
    One-way delays with a long tail: C{minimum} plus a log-normal part of
    median C{median - minimum}, capped at C{maximum}.
    """

    minimum: float
    median: float
    maximum: float
    sigma: float = 0.5

    def draw(self, rng: random.Random) -> float:
        extra = rng.lognormvariate(math.log(self.median - self.minimum),
                                   self.sigma)
        return min(self.maximum, self.minimum + extra)


# The delay of a wide-area overlay: 5 to 150 ms one way.
WAN = UniformDelay(0.005, 0.150)
