"""
CircuitTransport: a stream transport over one circuit of a relay link.

What a protocol writes goes as CIRCUIT_DATA lines on the link (the
outer L{p2poverlay.protocol.PeerConnection} to the relay), at most
L{MAX_CHUNK} bytes a line; what comes in CIRCUIT_DATA goes to the
protocol.  A connection of the overlay runs over it as over TCP, TLS and
all (L{p2poverlay.relay.client}): the relay forwards bytes it cannot read.

Flow control is a window of credit per direction: a writer sends at most
L{WINDOW} bytes more than its reader has granted; the reader grants
credit (CIRCUIT_CREDIT) as its protocol takes the bytes in, and takes
none while that protocol pauses it.  Past the window, writes wait here
and the registered producer is paused, so a circuit never fills the
link's send buffer (C{config.maxSendBuffer}), however fast one side
writes or slowly the other reads.
"""

from __future__ import annotations

import base64
from collections import deque
from typing import Any, Callable, Deque, Optional

from twisted.internet.address import IPv4Address
from twisted.internet.error import (
    ConnectionAborted, ConnectionDone, ConnectionLost,
)
from twisted.internet.interfaces import IConsumer, IPushProducer, ITCPTransport
from twisted.python.failure import Failure
from zope.interface import implementer

from p2poverlay.relay.circuits import ICircuitEnd
from p2poverlay.relay.wire import (
    MAX_CHUNK, CircuitClose, CircuitCredit, CircuitData, rawLength,
)

# Bytes in flight per direction, beyond what the reader has granted.
WINDOW = 256 * 1024
# Credit goes back once this much has been taken in (fewer lines).
GRANT = WINDOW // 4
# CIRCUIT_CLOSE reasons.
CLOSED = "closed"  # the end closed it cleanly: what it wrote has arrived
ABORTED = "aborted"


@implementer(ITCPTransport, IConsumer, IPushProducer, ICircuitEnd)
class CircuitTransport:
    """
    The transport of circuit C{cid} on C{link}; C{onClosed} is called
    once, when it closes either way.

    @ivar bytesSent: payload bytes written to the link; C{bytesReceived}
        those that came from it.
    """

    def __init__(self, link: Any, cid: str, clock: Any,
                 onClosed: Callable[[], None], window: int = WINDOW) -> None:
        self.link = link
        self.cid = cid
        self.clock = clock
        self.onClosed = onClosed
        self.window = window
        self.protocol: Any = None
        self.connected = self.disconnecting = self.disconnected = False
        self.producer: Any = None
        self.producerPaused = False
        self.readingPaused = False
        self.bytesSent = self.bytesReceived = 0
        self._credit = window  # what may be sent now
        self._allowance = window  # what the peer may send now
        self._ungranted = 0  # taken in, not granted yet
        self._pending: Deque[bytes] = deque()
        self._received: Deque[bytes] = deque()

    def makeConnection(self, protocol: Any) -> None:
        """Connect C{protocol} to this transport."""
        self.protocol = protocol
        self.connected = True
        protocol.makeConnection(self)

    # -- ITransport ---------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not data or self.disconnecting:
            return
        self._pending.append(bytes(data))
        self._pump()

    def writeSequence(self, data) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        """Close once what was written has gone (credit allowing)."""
        if self.disconnecting:
            return
        self.disconnecting = True
        if not self._pending:
            self._finish(CLOSED, ConnectionDone())

    def abortConnection(self) -> None:
        """Close at once; what waits for credit is dropped."""
        self._pending.clear()
        self._finish(ABORTED, ConnectionAborted())

    def getPeer(self) -> IPv4Address:
        """The relay's address: a circuit comes from (and goes to) it."""
        return self._address(self.link.transport.getPeer())

    def getHost(self) -> IPv4Address:
        return self._address(self.link.transport.getHost())

    @staticmethod
    def _address(address: Any) -> IPv4Address:
        return IPv4Address("TCP", getattr(address, "host", "?"),
                           getattr(address, "port", 0))

    # -- ITCPTransport: nothing to set on a circuit ----------------------------

    def loseWriteConnection(self) -> None:
        self.loseConnection()

    def getTcpNoDelay(self) -> bool:
        return True

    def setTcpNoDelay(self, enabled: bool) -> None:
        pass

    def getTcpKeepAlive(self) -> bool:
        return False

    def setTcpKeepAlive(self, enabled: bool) -> None:
        pass

    # -- IConsumer ---------------------------------------------------------

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        if self.producer is not None:
            raise RuntimeError(f"cannot register producer {producer!r}: "
                               f"{self.producer!r} is already registered")
        if self.disconnected:
            producer.stopProducing()
            return
        self.producer = producer
        self.producerPaused = False
        if self._pending:
            self._pauseProducer()

    def unregisterProducer(self) -> None:
        self.producer = None
        self.producerPaused = False

    # -- IPushProducer: the protocol stops and starts reading ---------------------

    def pauseProducing(self) -> None:
        self.readingPaused = True

    def resumeProducing(self) -> None:
        self.readingPaused = False
        while self._received and not self.readingPaused \
                and not self.disconnected:
            self._deliver(self._received.popleft())

    def stopProducing(self) -> None:
        self.loseConnection()

    # -- sending -------------------------------------------------------------

    def _pump(self) -> None:
        """Send what credit allows; pause the producer while data waits."""
        pending = self._pending
        while pending and self._credit > 0 and not self.disconnected:
            data = pending.popleft()
            size = min(len(data), MAX_CHUNK, self._credit)
            if size < len(data):
                pending.appendleft(data[size:])
                data = data[:size]
            self._credit -= size
            self.bytesSent += size
            self.link.sendMessage(CircuitData(
                self.cid, base64.b64encode(data).decode("ascii")))
        if pending:
            self._pauseProducer()
        elif self.disconnecting:
            self._finish(CLOSED, ConnectionDone())
        elif self.producerPaused:
            self.producerPaused = False
            self.producer.resumeProducing()

    def _pauseProducer(self) -> None:
        if self.producer is not None and not self.producerPaused:
            self.producerPaused = True
            self.producer.pauseProducing()

    # -- what comes over the link (ICircuitEnd) ---------------------------------

    def circuitData(self, message: CircuitData) -> None:
        if self.disconnected:
            return
        size = rawLength(message.data)
        self._allowance -= size
        if self._allowance < 0:
            self.link.protocolError(f"more data than credit on circuit "
                                    f"{self.cid}")
            return
        self.bytesReceived += size
        data = base64.b64decode(message.data)
        if self.readingPaused or self._received:
            self._received.append(data)
        else:
            self._deliver(data)

    def _deliver(self, data: bytes) -> None:
        self.protocol.dataReceived(data)
        self._ungranted += len(data)
        if self._ungranted >= GRANT and not self.disconnected:
            self._allowance += self._ungranted
            self.link.sendMessage(CircuitCredit(self.cid, self._ungranted))
            self._ungranted = 0

    def circuitCredit(self, message: CircuitCredit) -> None:
        if self.disconnected:
            return
        self._credit += message.bytes
        if self._credit > self.window:
            self.link.protocolError(f"credit beyond the window on circuit "
                                    f"{self.cid}")
            return
        self._pump()

    def circuitClosed(self, message: CircuitClose) -> None:
        reason = ConnectionDone() if message.reason == CLOSED \
            else ConnectionLost(message.reason or "circuit closed")
        self._finish(None, reason)

    def linkLost(self) -> None:
        self._finish(None, ConnectionLost("the relay link closed"))

    # -- closing -------------------------------------------------------------

    def _finish(self, tell: Optional[str], reason: Exception) -> None:
        """Closed: tell the far end (C{tell}: why), then the protocol."""
        if self.disconnected:
            return
        self.disconnected = self.disconnecting = True
        self.connected = False
        self._pending.clear()
        self._received.clear()
        if tell is not None and not self.link.closing:
            self.link.sendMessage(CircuitClose(self.cid, tell))
        self.onClosed()
        producer, self.producer = self.producer, None
        if producer is not None:
            producer.stopProducing()
        # As TCP does, later: the protocol may be inside a call to us.
        self.clock.callLater(0, self.protocol.connectionLost, Failure(reason))
