"""
Standard input and output for a console on a pipe or a file, printing
each line as soon as it is written.

Twisted's L{stdio.StandardIO} buffers every write until the reactor's
next turn.  A console that prints a delivered message and then sends its
acknowledgement would print it only after the acknowledgement went out
(and after whatever else that turn holds).  L{ConsoleIO} writes at once
when nothing is waiting to be written before it; what the pipe does not
take then is buffered and written as Twisted always does, in order.
"""

from __future__ import annotations

from twisted.internet import process
from twisted.internet.stdio import StandardIO
from twisted.internet.interfaces import IProtocol

__all__ = ["ConsoleIO", "ImmediateWriter"]


class ImmediateWriter(process.ProcessWriter):
    """
    A pipe writer that writes at once when its buffer is empty, and
    otherwise buffers, as L{process.ProcessWriter} does.
    """

    def write(self, data: bytes) -> None:
        if data and self._idle():
            written = self.writeSomeData(data)
            # A failure (or nothing taken) goes the buffered way, where
            # doWrite meets it again and handles it as usual.
            if isinstance(written, int) and written > 0:
                if written == len(data):
                    return
                data = data[written:]
        process.ProcessWriter.write(self, data)

    def writeSequence(self, iovec) -> None:
        self.write(b"".join(iovec))

    def _idle(self) -> bool:
        """Whether a write now would go before nothing else."""
        return (bool(self.connected) and not self.disconnecting
                and not self._writeDisconnected
                and len(self.dataBuffer) == self.offset
                and not self._tempDataLen)


class ConsoleIO(StandardIO):
    """
    L{StandardIO} whose standard output is an L{ImmediateWriter}.
    """

    def __init__(self, proto: IProtocol, stdin: int = 0, stdout: int = 1,
                 reactor=None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        # As StandardIO.__init__, with the one writer changed.
        self.protocol = proto
        self._writer = ImmediateWriter(reactor, self, "write", stdout)
        self._reader = process.ProcessReader(reactor, self, "read", stdin)
        self._reader.startReading()
        self.protocol.makeConnection(self)
