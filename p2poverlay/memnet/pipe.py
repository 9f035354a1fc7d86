"""
One direction of a memory connection (L{p2poverlay.memnet.transport}):
the segments in flight from one end to the other, each delivered after
the link's one-way delay, strictly in order.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any, Callable, Deque, List, Optional, Protocol

from twisted.internet.interfaces import IReactorTime

from p2poverlay.memnet.clock import Deliveries
from p2poverlay.memnet.delays import Delay


class Network(Protocol):
    """What a connection needs of its L{p2poverlay.memnet.MemoryNetwork}."""

    clock: IReactorTime
    seed: object
    jitter: Optional[Delay]
    deliveries: Deliveries
    DOWN: str
    CUT: str

    def delayBetween(self, a: str, b: str) -> float: ...

    def linkState(self, a: str, b: str) -> str: ...

    def stall(self, pipe: "Pipe") -> None: ...

    def closed(self, connection: Any) -> None: ...


class Connection(Protocol):
    """What a pipe needs of its connection."""

    network: Network
    serial: int
    delay: float

    def schedule(self, when: float, func: Callable[[], None]) -> None: ...


# Segment kinds.
DATA = 0
CONNECT = 1  # the accepting side's answer: the dialer is now connected
FIN = 2
RST = 3


class Pipe:
    """
    One direction of a connection: segments in flight from C{source} to
    C{target}, each due one C{delay} (plus jitter) after it was sent, and
    never before the segment sent ahead of it.

    @ivar queue: the segments in flight, or L{None} while there are none
        (an empty deque takes 0.6 KiB, and most pipes are idle).
    @ivar unconsumed: bytes of data sent and not yet read by the target.
    @ivar stalled: whether the pipe waits for a partition to heal.
    """

    __slots__ = ("connection", "direction", "source", "target", "delay",
                 "_clock", "_jitter", "_rng", "queue", "unconsumed",
                 "stalled", "_lastArrival", "_waiting", "_answered")

    def __init__(self, connection: Connection, direction: int,
                 source: Any, target: Any) -> None:
        self.connection = connection
        self.direction = direction
        self.source = source
        self.target = target
        self.delay = connection.delay
        network = connection.network
        self._clock = network.clock
        self._jitter = network.jitter
        self._rng = (random.Random(
            f"{network.seed}|jitter|{connection.serial}|{direction}")
            if network.jitter is not None else None)
        self.queue: Optional[Deque[List]] = None
        self.unconsumed = 0
        self.stalled = False
        self._lastArrival = 0.0
        self._waiting = False
        self._answered = False

    def send(self, kind: int, data: bytes = b"") -> None:
        """Put a segment on its way."""
        arrival = self._clock.seconds() + self.delay
        if self._rng is not None and self._jitter is not None:
            arrival += self._jitter.draw(self._rng)
        if arrival < self._lastArrival:
            arrival = self._lastArrival
        self._lastArrival = arrival
        if self.queue is None:
            self.queue = deque()
        self.queue.append([arrival, kind, data])
        if kind == DATA:
            self.unconsumed += len(data)
        self.kick()

    def drop(self) -> None:
        """Forget every segment not yet delivered."""
        if self.queue is not None:
            self.queue.clear()
        self.unconsumed = 0

    def kick(self) -> None:
        """Make sure the segment at the head gets delivered when due."""
        if self._waiting or self.stalled or not self.queue:
            return
        self._waiting = True
        self.connection.schedule(max(self.queue[0][0], self._clock.seconds()),
                                 self._deliver)

    def unstall(self) -> None:
        """The partition healed: what was held arrives one delay from now."""
        self.stalled = False
        due = self._clock.seconds() + self.delay
        for segment in self.queue or ():
            segment[0] = max(segment[0], due)
        self.kick()

    def _deliver(self) -> None:
        self._waiting = False
        network = self.connection.network
        source, target = self.source, self.target
        now = self._clock.seconds()
        state = network.linkState(source.host.host, target.host.host)
        if state == network.CUT:
            self.stalled = True
            network.stall(self)
            return
        queue = self.queue
        if queue is None:
            return
        while queue and queue[0][0] <= now:
            kind = queue[0][1]
            if state == network.DOWN:
                self._consume(1)
                source.drained()
            elif kind == DATA:
                if target.disconnecting:
                    self._refuse()
                    continue
                if target.readingPaused:
                    return  # resumeProducing kicks the pipe again
                count = 1
                while count < len(queue) and queue[count][1] == DATA \
                        and queue[count][0] <= now:
                    count += 1
                target.dataReceived(self._consume(count))
                source.drained()
            elif kind == FIN and target.readingPaused \
                    and not target.disconnecting:
                return
            else:
                queue.popleft()
                target.segmentReceived(kind)
        if not queue and self.queue is queue:
            self.queue = None
        self.kick()

    def _refuse(self) -> None:
        """
        Drop the data at the head: its end is closing, or closed and gone,
        in which case it answers a reset (once).
        """
        self._consume(1)
        self.source.drained()
        if self.target.disconnected and not self.source.disconnecting \
                and not self._answered:
            self._answered = True
            self.target.outgoing.send(RST)

    def _consume(self, count: int) -> bytes:
        """Take C{count} segments off the head; return their data."""
        queue = self.queue
        assert queue is not None
        data = b"".join([queue.popleft()[2] for _ in range(count)])
        self.unconsumed -= len(data)
        return data
