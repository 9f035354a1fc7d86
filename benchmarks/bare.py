"""
Baselines: a bare Twisted LineReceiver pair speaking the same JSON lines
(DATA/ACK, PING/PONG) with nothing else: no handshake, validation, rate
limit, flow control, statistics or observers.  L{BareProtocol.stream}
goes further: DATA lines one way with no ACK at all, as fast as the
connection takes them.
"""

from __future__ import annotations

import json
import uuid
from typing import Callable, Dict, Optional

from twisted.internet import reactor
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineReceiver
from zope.interface import implementer

_dumps = json.JSONEncoder(separators=(",", ":")).encode


class BareProtocol(LineReceiver):
    """Both ends: answers DATA with ACK and PING with PONG."""

    delimiter = b"\n"
    MAX_LENGTH = 65536

    # Whether DATA is answered with ACK (the stream baseline turns it off).
    acknowledge = True

    def __init__(self, onData: Optional[Callable[[dict], None]] = None) -> None:
        self.onData = onData
        self.pending: Dict[str, Deferred] = {}
        self.pongWaiter: Optional[Deferred] = None

    def lineReceived(self, line: bytes) -> None:
        message = json.loads(line)
        kind = message["type"]
        if kind == "DATA":
            if self.onData is not None:
                self.onData(message)
            if self.acknowledge:
                self.sendLine(_dumps({"type": "ACK",
                                      "id": message["id"]}).encode())
        elif kind == "ACK":
            self.pending.pop(message["id"]).callback(None)
        elif kind == "PING":
            self.sendLine(_dumps({"type": "PONG",
                                  "nonce": message["nonce"]}).encode())
        elif kind == "PONG":
            waiter, self.pongWaiter = self.pongWaiter, None
            waiter.callback(message["nonce"])

    def sendData(self, body: str) -> Deferred:
        """Send a DATA line; fires when its ACK comes back."""
        messageId = uuid.uuid4().hex
        done: Deferred = Deferred()
        self.pending[messageId] = done
        self.sendLine(_dumps({"type": "DATA", "id": messageId,
                              "body": body}).encode())
        return done

    def stream(self, body: str, count: int, chunk: int = 256) -> Deferred:
        """
        Write C{count} DATA lines, C{chunk} a reactor turn while the
        transport takes more; fires once all are written.
        """
        return _Stream(self, body, count, chunk).done

    def ping(self, nonce: int) -> Deferred:
        self.pongWaiter = Deferred()
        self.sendLine(_dumps({"type": "PING", "nonce": nonce}).encode())
        return self.pongWaiter


class BarePair:
    """
    A listening BareProtocol and a client connected to it over loopback.

    @param acknowledge: whether the server answers DATA with ACK.
    """

    def __init__(self, acknowledge: bool = True) -> None:
        self.acknowledge = acknowledge
        self.server: Optional[BareProtocol] = None
        self.client: Optional[BareProtocol] = None
        self.onData: Optional[Callable[[dict], None]] = None
        self._port = None

    async def start(self) -> "BarePair":
        connected: Deferred = Deferred()

        def buildServer() -> BareProtocol:
            self.server = BareProtocol(lambda m: self.onData(m))
            self.server.acknowledge = self.acknowledge
            reactor.callLater(0, connected.callback, None)
            return self.server

        self._port = await TCP4ServerEndpoint(
            reactor, 0, interface="127.0.0.1").listen(
                Factory.forProtocol(buildServer))
        port = self._port.getHost().port
        self.client = await TCP4ClientEndpoint(
            reactor, "127.0.0.1", port).connect(
                Factory.forProtocol(BareProtocol))
        await connected
        return self

    async def stop(self) -> None:
        self.client.transport.loseConnection()
        self.server.transport.loseConnection()
        await maybeDeferred(self._port.stopListening)


@implementer(IPushProducer)
class _Stream:
    """Writes DATA lines while the transport does not pause it."""

    def __init__(self, protocol: BareProtocol, body: str, count: int,
                 chunk: int) -> None:
        self.protocol = protocol
        self.body = body
        self.left = count
        self.chunk = chunk
        self.paused = False
        self.done: Deferred = Deferred()
        protocol.transport.registerProducer(self, True)
        self._next = reactor.callLater(0, self._write)

    def _write(self) -> None:
        self._next = None
        sendLine, body = self.protocol.sendLine, self.body
        for _ in range(min(self.chunk, self.left)):
            sendLine(_dumps({"type": "DATA", "id": uuid.uuid4().hex,
                             "body": body}).encode())
        self.left -= min(self.chunk, self.left)
        if not self.left:
            self.protocol.transport.unregisterProducer()
            self.done.callback(None)
        elif not self.paused:
            self._next = reactor.callLater(0, self._write)

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        if self._next is None and self.left:
            self._next = reactor.callLater(0, self._write)

    def stopProducing(self) -> None:
        self.left = 0
        if self._next is not None:
            self._next.cancel()
            self._next = None
        if not self.done.called:
            self.done.errback(ConnectionError("the stream's connection closed"))
