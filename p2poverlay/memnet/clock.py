"""
SimulationClock: a L{task.Clock} for many nodes and long runs.

L{twisted.internet.task.Clock} sorts its whole list of pending calls on
every insertion and runs every call that falls due within one C{advance}
at the time the clock was advanced to.  This clock keeps its calls in a
heap and runs each one at its own scheduled time, so that what a call
schedules in turn is timed from when it ran, as in a real reactor.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from twisted.internet.base import DelayedCall
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import Clock
from zope.interface import implementer


class Livelock(RuntimeError):
    """Calls kept scheduling more calls for the same instant."""


@implementer(IReactorTime)
class SimulationClock(Clock):
    """
    A L{Clock} whose pending calls live in a heap.

    Calls due at the same time run in the order they were scheduled.

    @ivar maxCallsPerInstant: how many calls may run without the time moving
        on before L{advanceTo} raises L{Livelock}.
    """

    def __init__(self, start: float = 0.0,
                 maxCallsPerInstant: int = 1_000_000) -> None:
        self.rightNow = start
        self.maxCallsPerInstant = maxCallsPerInstant
        self._heap: List[Tuple[float, int, DelayedCall]] = []
        self._current: Dict[DelayedCall, int] = {}
        self._order = itertools.count()
        # What every DelayedCall is given, bound once rather than per call.
        self._hooks = (self._cancelled, self._push, self.seconds)

    # Clock's own list of calls is replaced by the heap: a read-only view.
    @property
    def calls(self) -> List[IDelayedCall]:  # type: ignore[override]
        """The pending calls, soonest first."""
        return sorted(self._current, key=lambda call: call.getTime())

    def callLater(self, delay: float, callable: Callable[..., object],
                  *args: object, **kw: object) -> IDelayedCall:
        call = DelayedCall(self.rightNow + delay, callable, args, kw,
                           *self._hooks)
        self._push(call)
        return call

    def getDelayedCalls(self) -> Sequence[IDelayedCall]:
        return self.calls

    def _push(self, call: DelayedCall) -> None:
        order = next(self._order)
        self._current[call] = order
        heapq.heappush(self._heap, (call.time, order, call))

    def _cancelled(self, call: DelayedCall) -> None:
        self._current.pop(call, None)

    def nextCallTime(self) -> Optional[float]:
        """When the next pending call is due, or L{None} if there is none."""
        heap = self._heap
        while heap:
            when, order, call = heap[0]
            if self._current.get(call) != order:
                heapq.heappop(heap)
            elif call.delayed_time:
                heapq.heappop(heap)
                call.activate_delay()
                self._push(call)
            else:
                return when
        return None

    def advance(self, amount: float) -> None:
        """Move time on by C{amount} seconds, running what falls due."""
        self.advanceTo(self.rightNow + amount)

    def advanceTo(self, when: float) -> int:
        """
        Run every call due by C{when}, each at its own time, then set the
        time to C{when} (time never goes back).

        @return: how many calls ran.
        @raise Livelock: if more than C{maxCallsPerInstant} calls run at
            one instant.
        """
        ran = sameInstant = 0
        while True:
            due = self.nextCallTime()
            if due is None or due > when:
                break
            _, _, call = heapq.heappop(self._heap)
            del self._current[call]
            if due > self.rightNow:
                self.rightNow = due
                sameInstant = 0
            sameInstant += 1
            if sameInstant > self.maxCallsPerInstant:
                raise Livelock(
                    f"more than {self.maxCallsPerInstant} calls at "
                    f"t={self.rightNow:.6f}; the last one: {call!r}")
            call.called = 1
            call.func(*call.args, **call.kw)
            ran += 1
        self.rightNow = max(self.rightNow, when)
        return ran


class Deliveries:
    """
    Runs the network's events at their time.  Events due at the same
    time run in the order of their keys, not in the order they were
    scheduled, so that a run does not depend on the order in which a node
    happens to walk its connections.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self._slots: Dict[float, List[Tuple[tuple, Callable[[], None]]]] = {}

    def at(self, when: float, key: tuple, func: Callable[[], None]) -> None:
        """
        Call C{func} at time C{when} (or now, if that is past).

        @param key: orders the events of one instant; unique per event.
        """
        slot = self._slots.get(when)
        if slot is None:
            slot = self._slots[when] = []
            self.clock.callLater(max(0.0, when - self.clock.seconds()),
                                 self._run, when)
        heapq.heappush(slot, (key, func))

    def _run(self, when: float) -> None:
        slot = self._slots.pop(when)
        while slot:
            _, func = heapq.heappop(slot)
            func()
