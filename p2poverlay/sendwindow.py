"""
Flow control of direct messages: a window per connection, a bound for the
node.

A L{SendWindow} holds the C{DATA} messages written over one connection and
not yet confirmed (at most C{size} of them, and, unless it is one alone,
at most C{maxBytes} of their lines) and, in order, those waiting for room.
Each written message has a deadline for its ACK; one timer a window, set
for the oldest, stands for all of them.
L{Backlog} counts the messages a node has accepted and not yet written,
over all its connections and dials: past its limit a new one is refused,
and front ends ask it when to stop feeding messages and when to go on.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Deque, Dict, Iterable, Iterator, List, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall

from p2poverlay.errors import SendQueueFull
from p2poverlay.message import Data
from p2poverlay.records import SLOTS, PeerInfo


@dataclass(**SLOTS)
class Outgoing:
    """
    One direct message on its way: its C{DATA}, encoded as C{line}, and
    the Deferred told how it ends.

    @ivar deadline: when it fails unconfirmed, once it is written.
    """

    message: Data
    line: bytes
    done: "Deferred[PeerInfo]"
    deadline: float = field(default=0.0)


# A deadline this close counts as reached: a timer set for one fires at a
# time that the clock's float arithmetic may put a hair before it.
DEADLINE_SLACK = 1e-6


class SendWindow:
    """
    The direct messages of one connection: those written and unconfirmed,
    and, in order, those waiting their turn.

    @param size: most messages unconfirmed at once.
    @param maxBytes: most bytes of unconfirmed lines at once (a single
        longer message still goes, alone).
    @ivar timer: set for the oldest deadline, or L{None}; its owner sets
        it (L{DirectMessages}), and it may be late: a deadline of a
        message since confirmed.
    @ivar holding: whether its owner holds writes back for now, to make
        one write of many.
    """

    def __init__(self, size: int, maxBytes: int) -> None:
        self.size = size
        self.maxBytes = maxBytes
        # In the order written (a dict keeps it).
        self.unconfirmed: Dict[str, Outgoing] = {}
        self.waiting: Deque[Outgoing] = deque()
        self.bytesUnconfirmed = 0
        self.timer: Optional[IDelayedCall] = None
        self.holding = False

    def __bool__(self) -> bool:
        return bool(self.unconfirmed or self.waiting)

    def writeReady(self, deadline: float) -> List[Outgoing]:
        """
        Take the waiting messages, from the first, that the window has
        room for: they are written now and wait for their ACK until
        C{deadline}.
        """
        waiting, unconfirmed = self.waiting, self.unconfirmed
        ready = []
        while waiting:
            outgoing = waiting[0]
            if unconfirmed and (
                    len(unconfirmed) >= self.size or self.bytesUnconfirmed
                    + len(outgoing.line) > self.maxBytes):
                break
            waiting.popleft()
            outgoing.deadline = deadline
            unconfirmed[outgoing.message.id] = outgoing
            self.bytesUnconfirmed += len(outgoing.line)
            ready.append(outgoing)
        return ready

    def oldestDeadline(self) -> Optional[float]:
        """The deadline of the message written first, if any waits."""
        for outgoing in self.unconfirmed.values():
            return outgoing.deadline
        return None

    def expired(self, now: float) -> List[Outgoing]:
        """Take the unconfirmed messages whose deadline is C{now} or past."""
        gone = []
        unconfirmed = self.unconfirmed
        while unconfirmed:
            outgoing = next(iter(unconfirmed.values()))
            if outgoing.deadline > now + DEADLINE_SLACK:
                break
            del unconfirmed[outgoing.message.id]
            self.bytesUnconfirmed -= len(outgoing.line)
            gone.append(outgoing)
        return gone

    def stopTimer(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None

    def confirmed(self, messageId: str) -> Optional[Outgoing]:
        """Take the unconfirmed message C{messageId}, if it is one."""
        outgoing = self.unconfirmed.pop(messageId, None)
        if outgoing is not None:
            self.bytesUnconfirmed -= len(outgoing.line)
        return outgoing

    def confirmedAll(self, ids: Iterable[str]) -> List[Outgoing]:
        """Take those of C{ids} that are unconfirmed messages, in order."""
        pop = self.unconfirmed.pop
        taken = []
        for messageId in ids:
            outgoing = pop(messageId, None)
            if outgoing is not None:
                self.bytesUnconfirmed -= len(outgoing.line)
                taken.append(outgoing)
        return taken

    def takeAll(self) -> List[Outgoing]:
        """Empty the window: the unconfirmed messages first, in order."""
        self.stopTimer()
        everything = list(self.unconfirmed.values()) + list(self.waiting)
        self.unconfirmed.clear()
        self.waiting.clear()
        self.bytesUnconfirmed = 0
        return everything

    def __iter__(self) -> Iterator[Outgoing]:
        yield from self.unconfirmed.values()
        yield from self.waiting


class Backlog:
    """
    The number of direct messages a node accepted and has not written yet.

    Front ends stop feeding messages once it reaches C{highWater} and go on
    once it is down to C{lowWater} (L{whenRoom}).

    @param limit: most messages waiting; past it L{add} refuses.
    @param clock: what tells the front ends to go on, on its next turn:
        by then every message that waited on one dial is in its window,
        so that a new one cannot overtake them.
    """

    def __init__(self, limit: int, highWater: int, clock) -> None:
        self.limit = limit
        self.highWater = max(1, min(highWater, limit))
        self.lowWater = self.highWater // 2
        self.count = 0
        self.clock = clock
        self._waiters: List[Deferred[None]] = []
        self._release: Optional[IDelayedCall] = None

    def add(self) -> None:
        """
        Count one more waiting message.

        @raise SendQueueFull: if C{limit} are already waiting.
        """
        if self.count >= self.limit:
            raise SendQueueFull.of(self.limit)
        self.count += 1

    def readd(self, n: int) -> None:
        """Count C{n} messages waiting again (to be resent): never refused."""
        self.count += n

    def remove(self, n: int = 1) -> None:
        """C{n} waiting messages were written or failed."""
        self.count -= n
        if self.count <= self.lowWater and self._waiters \
                and self._release is None:
            self._release = self.clock.callLater(0, self._goOn)

    def _goOn(self) -> None:
        self._release = None
        if self.count <= self.lowWater:
            waiters, self._waiters = self._waiters, []
            for d in waiters:
                d.callback(None)

    @property
    def high(self) -> bool:
        """Whether front ends should stop feeding messages."""
        return self.count >= self.highWater

    def whenRoom(self) -> "Deferred[None]":
        """
        Fire at once if the backlog is below C{highWater}, else once it is
        down to C{lowWater}.
        """
        if not self.high:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiters.append(d)
        return d
