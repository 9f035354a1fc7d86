"""
WriteThrough: a line to a peer goes to its socket at once when nothing
waits before it.

Twisted sends what a protocol writes later: TCP once the reactor next
finds the socket writable, TLS (Twisted's C{BufferingTLSTransport}) a
turn before that, to gather a turn's writes into one record.  A direct
message or its confirmation would wait one or two turns of the reactor
for nothing.  L{WriteThrough} sends the first write of a turn at once
when the socket has nothing waiting (the reactor's own C{doWrite}, called
now); what is written later in the same turn is held and goes in one
write at its end, as the buffering transport would have done.  Anything
that does not go at once (a full socket, an error) stays in the
transport's buffer, where the reactor meets it as usual.

Only Twisted's TCP connections, bare or under Twisted's TLS, are written
through; other transports (in memory, in tests) are written as they are.
"""

from __future__ import annotations

from typing import Any, List, Optional

from twisted.internet.abstract import FileDescriptor
from twisted.protocols.tls import TLSMemoryBIOProtocol

__all__ = ["WriteThrough"]


class WriteThrough:
    """
    Writes to the TCP connection C{tcp}, or to the TLS connection C{tls}
    over it, sending at once what may go at once.  Build one with L{of}.
    """

    __slots__ = ("_tcp", "_tls", "_held", "_closing")

    def __init__(self, tcp: FileDescriptor,
                 tls: Optional[TLSMemoryBIOProtocol] = None) -> None:
        self._tcp: Any = tcp
        self._tls = tls
        # Writes of this turn after the one that went at once, else None.
        self._held: Optional[List[bytes]] = None
        self._closing = False

    @classmethod
    def of(cls, transport: Any) -> Optional["WriteThrough"]:
        """
        A L{WriteThrough} for C{transport}, or L{None} if it is neither a
        TCP connection of Twisted's nor Twisted's TLS over one.
        """
        if isinstance(transport, TLSMemoryBIOProtocol):
            if isinstance(transport.transport, FileDescriptor):
                return cls(transport.transport, transport)
            return None
        if isinstance(transport, FileDescriptor):
            return cls(transport)
        return None

    def write(self, data: bytes) -> None:
        """Send C{data} after everything written before it."""
        held = self._held
        if held is not None:
            held.append(data)
        elif self._closing or not self._idle():
            self._buffer(data)
        else:
            # Later writes of this turn wait for its end (and so do those
            # that sending this one may cause: a producer resumed).
            self._held = []
            self._buffer(data)
            self._sendNow()
            self._tcp.reactor.callLater(0, self._endTurn)

    def flush(self) -> None:
        """
        Hand everything held to the transport, and from now on write
        everything straight to it (the connection is closing: its
        C{loseConnection} must come after every line).
        """
        self._closing = True
        held, self._held = self._held, None
        if held:
            self._buffer(b"".join(held))

    def _endTurn(self) -> None:
        held, self._held = self._held, None
        tcp = self._tcp
        # Aborted, what is held is dropped with the transport's own buffer
        # (TLS would only fail on its shut-down session).
        if held and not (tcp.disconnected or getattr(tcp, "_aborting", False)):
            idle = not self._closing and self._idle()
            self._buffer(b"".join(held))
            if idle:
                self._sendNow()

    def _idle(self) -> bool:
        """Does nothing wait to be sent, with the connection open?"""
        tcp = self._tcp
        if (not tcp.connected or tcp.disconnecting or tcp._writeDisconnecting
                or tcp._tempDataLen or len(tcp.dataBuffer) != tcp.offset):
            return False
        tls = self._tls
        return tls is None or not (tls.disconnecting or tls._appSendBuffer)

    def _buffer(self, data: bytes) -> None:
        """Into the transport's buffer (TLS encrypts it now), in order."""
        if self._tls is not None:
            # Past BufferingTLSTransport's gathering: this gathers instead.
            TLSMemoryBIOProtocol.write(self._tls, data)
        else:
            self._tcp.write(data)

    def _sendNow(self) -> None:
        """
        Send what the transport buffered, now rather than on the reactor's
        next turn.  What the socket does not take, and any error, stay
        with the transport (still registered for writing), whose next
        C{doWrite} meets them as usual.
        """
        tcp = self._tcp
        if tcp._tempDataLen and not tcp.disconnecting:
            tcp.doWrite()
