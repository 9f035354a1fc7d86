"""
The clock and delay models of the memory network, L{p2poverlay.memnet}.
"""

from __future__ import annotations

import random

import pytest

from p2poverlay.memnet import (
    FixedDelay, Livelock, LogNormalDelay, SimulationClock, UniformDelay,
)


# -- the clock ---------------------------------------------------------------


def test_clockRunsEachCallAtItsOwnTime():
    clock = SimulationClock()
    seen = []

    def first():
        seen.append(("first", clock.seconds()))
        clock.callLater(0.5, lambda: seen.append(("then", clock.seconds())))

    clock.callLater(1.0, first)
    clock.callLater(1.0, lambda: seen.append(("same time", clock.seconds())))
    clock.advance(10)
    assert seen == [("first", 1.0), ("same time", 1.0), ("then", 1.5)]
    assert clock.seconds() == 10


def test_clockHonoursCancelResetAndDelay():
    clock = SimulationClock()
    seen = []

    def note(what):
        return lambda: seen.append((what, clock.seconds()))

    cancelled = clock.callLater(1, note("cancelled"))
    earlier = clock.callLater(5, note("earlier"))
    later = clock.callLater(2, note("later"))
    cancelled.cancel()
    earlier.reset(3)
    later.delay(2)
    assert [c.getTime() for c in clock.getDelayedCalls()] == [3, 4]
    clock.advance(5)
    assert seen == [("earlier", 3), ("later", 4)]
    assert clock.getDelayedCalls() == []


def test_clockStopsALivelock():
    clock = SimulationClock(maxCallsPerInstant=100)

    def again():
        clock.callLater(0, again)

    clock.callLater(1, again)
    with pytest.raises(Livelock):
        clock.advance(2)


# -- delays ------------------------------------------------------------------


def test_delayModelsStayInTheirBounds():
    rng = random.Random(1)
    uniform = [UniformDelay(0.005, 0.150).draw(rng) for _ in range(1000)]
    assert 0.005 <= min(uniform) < 0.02 and 0.135 < max(uniform) <= 0.150
    tail = [LogNormalDelay(0.005, 0.04, 0.5).draw(rng) for _ in range(1000)]
    assert all(0.005 <= d <= 0.5 for d in tail)
    assert FixedDelay(0.02).draw(rng) == 0.02
