"""
Stream connections in memory: two L{MemoryTransport}s joined by two
one-way L{Pipe}s, timed on a clock.

A pipe carries I{segments} (data, and the connection's control events)
from one transport to the other after the link's one-way delay, strictly
in order.  A transport behaves as Twisted's TCP transport does for its
protocol: C{loseConnection} delivers what was written and then closes
both ends (L{ConnectionDone}), C{abortConnection} drops what was not yet
delivered and closes both ends (L{ConnectionLost}), a paused transport
reads nothing until resumed, and a registered producer is paused while
more than C{sendBuffer} bytes written have not been read by the peer.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Optional

from twisted.internet.address import IPv4Address
from twisted.internet.error import (
    ConnectionAborted, ConnectionDone, ConnectionLost,
)
from twisted.internet.interfaces import (
    IConsumer, IPushProducer, ITCPTransport,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from p2poverlay.memnet.pipe import CONNECT, DATA, FIN, RST, Network, Pipe


class MemoryConnection:
    """
    A connection between two hosts, from the dial on: the dialing and the
    accepting L{MemoryTransport} and the pipes between them.

    @ivar serial: the network's number for it, in the order of dials.
    @ivar delay: the one-way delay between the two hosts.
    """

    __slots__ = ("network", "serial", "delay", "_events", "client", "server")

    def __init__(self, network: Network, serial: int,
                 client: IPv4Address, server: IPv4Address,
                 sendBuffer: Optional[int]) -> None:
        self.network = network
        self.serial = serial
        self.delay = network.delayBetween(client.host, server.host)
        self._events = itertools.count()
        self.client = MemoryTransport(self, client, server, sendBuffer)
        self.server = MemoryTransport(self, server, client, sendBuffer)
        self.client.outgoing = self.server.incoming = Pipe(
            self, 0, self.client, self.server)
        self.server.outgoing = self.client.incoming = Pipe(
            self, 1, self.server, self.client)

    def schedule(self, when: float, func: Callable[[], None]) -> None:
        """Run C{func} at C{when}, ordered among this connection's events."""
        self.network.deliveries.at(when, (self.serial, next(self._events)),
                                   func)

    def __repr__(self) -> str:
        client, server = self.client.host, self.server.host
        return (f"<MemoryConnection #{self.serial} {client.host}:{client.port}"
                f" -> {server.host}:{server.port}>")


@implementer(ITCPTransport, IConsumer, IPushProducer)
class MemoryTransport:
    """
    One end of a L{MemoryConnection}.

    @ivar host: this end's address; C{peer}: the other end's.
    @ivar sendBuffer: bytes written and not yet read by the peer past
        which a registered producer is paused (L{None}: no limit); it is
        resumed once they fall to half of that.
    @ivar onConnected: called with this transport when a dial completes
        (the dialing end only).
    """

    log = Logger()
    __slots__ = ("connection", "host", "peer", "sendBuffer", "protocol",
                 "outgoing", "incoming", "connected", "disconnecting",
                 "disconnected", "readingPaused", "noDelay", "keepAlive",
                 "producer", "producerPaused", "onConnected", "_closePending",
                 "_aborted")

    def __init__(self, connection: MemoryConnection, host: IPv4Address,
                 peer: IPv4Address, sendBuffer: Optional[int]) -> None:
        self.connection = connection
        self.host = host
        self.peer = peer
        self.sendBuffer = sendBuffer
        self.protocol: Any = None
        self.outgoing: Pipe
        self.incoming: Pipe
        self.connected = False
        self.disconnecting = False
        self.disconnected = False
        self.readingPaused = False
        self.noDelay = False
        self.keepAlive = False
        self.producer: Any = None
        self.producerPaused = False
        self.onConnected: Optional[Callable[["MemoryTransport"], None]] = None
        self._closePending = False
        self._aborted = False

    def makeConnection(self, protocol) -> None:
        """Connect C{protocol} to this transport."""
        self.protocol = protocol
        self.connected = True
        protocol.makeConnection(self)

    # -- ITransport ------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not data or not self.connected or self._aborted:
            return
        self.outgoing.send(DATA, data)
        if self.sendBuffer is not None and self.producer is not None \
                and not self.producerPaused \
                and self.outgoing.unconsumed > self.sendBuffer:
            self.producerPaused = True
            self.producer.pauseProducing()

    def writeSequence(self, data) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        """Close once what was written has left: see L{drained}."""
        if self.disconnecting or self.disconnected:
            return
        self.disconnecting = True
        self._scheduleClose()

    def abortConnection(self) -> None:
        """Close at once; what was not delivered either way is lost."""
        if self.disconnected or self._aborted:
            return
        self.disconnecting = True
        self._aborted = True
        self.outgoing.drop()
        self.outgoing.send(RST)
        self.connection.schedule(self.connection.network.clock.seconds(),
                                 lambda: self._lose(ConnectionAborted()))

    def getPeer(self) -> IPv4Address:
        return self.peer

    def getHost(self) -> IPv4Address:
        return self.host

    # -- ITCPTransport ---------------------------------------------------

    def loseWriteConnection(self) -> None:
        self.loseConnection()

    def getTcpNoDelay(self) -> bool:
        return self.noDelay

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.noDelay = bool(enabled)

    def getTcpKeepAlive(self) -> bool:
        return self.keepAlive

    def setTcpKeepAlive(self, enabled: bool) -> None:
        self.keepAlive = bool(enabled)

    # -- IConsumer -------------------------------------------------------

    def registerProducer(self, producer, streaming: bool) -> None:
        if self.producer is not None:
            raise RuntimeError(
                f"cannot register producer {producer!r}: {self.producer!r} "
                f"is already registered")
        if self.disconnected:
            producer.stopProducing()
            return
        self.producer = producer
        self.producerPaused = False

    def unregisterProducer(self) -> None:
        self.producer = None
        self.producerPaused = False

    # -- IPushProducer: the protocol stops and starts reading ----------

    def pauseProducing(self) -> None:
        self.readingPaused = True

    def resumeProducing(self) -> None:
        self.readingPaused = False
        self.incoming.kick()

    def stopProducing(self) -> None:
        self.loseConnection()

    # -- what the pipes report -------------------------------------------

    def drained(self) -> None:
        """The peer read (or dropped) some of what this end wrote."""
        if self.producerPaused and (
                self.sendBuffer is None
                or self.outgoing.unconsumed <= self.sendBuffer // 2):
            self.producerPaused = False
            self.producer.resumeProducing()
        if self.disconnecting and not self.disconnected:
            self._scheduleClose()

    def dataReceived(self, data: bytes) -> None:
        """
        Hand data from the peer to the protocol.  As with TCP, an exception
        in the protocol is logged and the connection dropped.
        """
        try:
            self.protocol.dataReceived(data)
        except Exception:
            self.log.failure("{protocol!r} failed to handle data; dropping "
                             "the connection", protocol=self.protocol)
            self.abortConnection()

    def segmentReceived(self, kind: int) -> None:
        """A control segment came through the pipe from the peer."""
        if kind == CONNECT:
            if self.onConnected is not None:
                self.onConnected(self)
        elif not self.disconnected:
            self.outgoing.drop()
            self._lose(ConnectionDone() if kind == FIN else ConnectionLost())

    # -- closing ---------------------------------------------------------

    def _scheduleClose(self) -> None:
        if not self._closePending:
            self._closePending = True
            self.connection.schedule(self.connection.network.clock.seconds(),
                                     self._closeIfSent)

    def _closeIfSent(self) -> None:
        """
        Close cleanly once no more than C{sendBuffer} bytes are unread (the
        rest fits in the kernel's buffers, as it were).
        """
        self._closePending = False
        if self.disconnected or self._aborted:
            return
        if self.sendBuffer is None \
                or self.outgoing.unconsumed <= self.sendBuffer:
            self.outgoing.send(FIN)
            self._lose(ConnectionDone())

    def _lose(self, reason: Exception) -> None:
        if self.disconnected:
            return
        self.disconnected = True
        self.disconnecting = True
        wasConnected, self.connected = self.connected, False
        # What the peer still had on its way here is gone; it may write
        # again (and hear a reset).
        self.incoming.drop()
        peer = self.incoming.source
        if not peer.disconnected:
            peer.drained()
        producer, self.producer = self.producer, None
        if producer is not None:
            producer.stopProducing()
        self.connection.network.closed(self.connection)
        if wasConnected:
            self.protocol.connectionLost(Failure(reason))

    def __repr__(self) -> str:
        return (f"<MemoryTransport {self.host.host}:{self.host.port} -> "
                f"{self.peer.host}:{self.peer.port}>")
