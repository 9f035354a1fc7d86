"""
LineFraming: a L{LineReceiver} that splits each read once.

L{LineReceiver}'s own loop splits the rest of the buffer again for every
line it hands over, which makes a read of many lines cost time quadratic
in their number; at the rates peers send, that is most of the work.
What the lines of one read ask for together (one answer for many) waits
for the end of the read: L{LineFraming.afterRead}.
"""

from __future__ import annotations

from typing import Callable, List, Optional

from twisted.protocols.basic import LineReceiver


class LineFraming(LineReceiver):
    """
    Frames lines like L{LineReceiver} (C{delimiter}, C{MAX_LENGTH},
    C{pauseProducing}), with one split per read; it stops handing lines
    over once C{closing} is true.
    """

    closing = False
    _afterRead: Optional[List[Callable[[], None]]] = None

    def afterRead(self, call: Callable[[], None]) -> None:
        """
        Call C{call()} once the lines of the read being handled are
        (at once outside a read).
        """
        if not self._busyReceiving:
            call()
        elif self._afterRead is None:
            self._afterRead = [call]
        else:
            self._afterRead.append(call)

    def settleRead(self) -> None:
        """Call now what waits for the end of the read (L{afterRead})."""
        calls, self._afterRead = self._afterRead, None
        for call in calls or ():
            call()

    def dataReceived(self, data: bytes) -> None:
        """
        Frame lines: split everything that arrived at once and keep the
        unfinished tail.
        """
        if self._busyReceiving:
            # From inside lineReceived (a resume): the running loop sees it.
            self._buffer += data
            return
        self._busyReceiving = True
        try:
            buffered = self._buffer + data if self._buffer else data
            while not self.closing:
                lines = buffered.split(self.delimiter)
                self._buffer = lines.pop()
                for index, line in enumerate(lines):
                    if self.paused or self.closing:
                        # Throttled: keep the rest for resumeProducing.
                        self._buffer = self.delimiter.join(
                            lines[index:] + [self._buffer])
                        return
                    if len(line) > self.MAX_LENGTH:
                        self.lineLengthExceeded(line)
                        return
                    self.lineReceived(line)
                if len(self._buffer) > self.MAX_LENGTH:
                    self.lineLengthExceeded(self._buffer)
                    return
                # Data that arrived while lines were handled, if any.
                if self.delimiter not in self._buffer or self.paused:
                    return
                buffered = self._buffer
        finally:
            self._busyReceiving = False
            self.settleRead()
