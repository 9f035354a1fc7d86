"""
Outbox: bounded outgoing flow control for one connection.

A transport asks its registered producer to pause when its write buffer
fills (the peer reads slower than we write) and to resume once it drains.
While paused, the outbox holds lines in a queue of at most C{limit} bytes
instead of growing the transport's buffer, so a slow or stalled reader
cannot make a node's memory grow without bound.  Over TCP (and TLS over
it) a line goes to the socket at once when nothing waits before it
(L{p2poverlay.writethrough}).
"""

from __future__ import annotations

from collections import deque
from typing import Deque, List, Optional

from twisted.internet.interfaces import IPushProducer, IReactorTime
from zope.interface import implementer

from p2poverlay.writethrough import WriteThrough


@implementer(IPushProducer)
class Outbox:
    """
    Writes lines to C{transport}, queueing them while it is paused.

    @param clock: the reactor's clock, for L{pausedSince}.
    @ivar pausedSince: when the transport last paused us, or None.
    """

    def __init__(self, transport, limit: int, clock: IReactorTime,
                 delimiter: bytes = b"\n") -> None:
        self.transport = transport
        self.limit = limit
        self.delimiter = delimiter
        self._clock = clock
        self.pausedSince: Optional[float] = None
        self.queuedBytes = 0
        # Made when first needed: most connections never queue anything.
        self._queue: Optional[Deque[bytes]] = None
        self._through = WriteThrough.of(transport)
        transport.registerProducer(self, True)

    @property
    def paused(self) -> bool:
        return self.pausedSince is not None

    def write(self, line: bytes, force: bool = False) -> bool:
        """
        Send C{line}, or queue it behind earlier lines while paused.

        @param force: queue even past the limit (small control messages).
        @return: False if the queue is full and the line was not taken.
        """
        if self.pausedSince is None and not self._queue:
            self._sendLine(line)
            return True
        size = len(line) + len(self.delimiter)
        if not force and self.queuedBytes + size > self.limit:
            return False
        if self._queue is None:
            self._queue = deque()
        self._queue.append(line)
        self.queuedBytes += size
        return True

    def writeLines(self, lines: List[bytes], force: bool = False) -> int:
        """
        Send C{lines} in one write, or while paused queue as many as fit
        (L{write}).

        @return: how many were taken, from the first on.
        """
        if self.pausedSince is None and not self._queue:
            data = self.delimiter.join(lines) + self.delimiter
            if self._through is None:
                self.transport.write(data)
            else:
                self._through.write(data)
            return len(lines)
        taken = 0
        for line in lines:
            if not self.write(line, force):
                break
            taken += 1
        return taken

    def flush(self) -> None:
        """
        Hand everything queued to the transport, and from now on write
        straight to it (when closing).
        """
        while self._queue:
            self._writeQueued(self._queue)
        if self._through is not None:
            self._through.flush()

    def _writeQueued(self, queue: Deque[bytes]) -> None:
        line = queue.popleft()
        self.queuedBytes -= len(line) + len(self.delimiter)
        self._sendLine(line)

    def _sendLine(self, line: bytes) -> None:
        if self._through is None:
            self.transport.writeSequence((line, self.delimiter))
        else:
            self._through.write(line + self.delimiter)

    # IPushProducer: the transport calls these.

    def pauseProducing(self) -> None:
        if self.pausedSince is None:
            self.pausedSince = self._clock.seconds()

    def resumeProducing(self) -> None:
        self.pausedSince = None
        # Writing may pause us again at once: stop there.
        while self._queue and self.pausedSince is None:
            self._writeQueued(self._queue)

    def stopProducing(self) -> None:
        self._queue = None
        self.queuedBytes = 0
