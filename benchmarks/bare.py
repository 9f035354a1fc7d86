"""
Baselines: a bare Twisted LineReceiver pair speaking the same JSON lines
(DATA/ACK, PING/PONG) with nothing else: no handshake, validation, rate
limit, flow control, statistics or observers.
"""

from __future__ import annotations

import json
import uuid
from typing import Callable, Dict, Optional

from twisted.internet import reactor
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineReceiver

_dumps = json.JSONEncoder(separators=(",", ":")).encode


class BareProtocol(LineReceiver):
    """Both ends: answers DATA with ACK and PING with PONG."""

    delimiter = b"\n"
    MAX_LENGTH = 65536

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
            self.sendLine(_dumps({"type": "ACK", "id": message["id"]}).encode())
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

    def ping(self, nonce: int) -> Deferred:
        self.pongWaiter = Deferred()
        self.sendLine(_dumps({"type": "PING", "nonce": nonce}).encode())
        return self.pongWaiter


class BarePair:
    """A listening BareProtocol and a client connected to it over loopback."""

    def __init__(self) -> None:
        self.server: Optional[BareProtocol] = None
        self.client: Optional[BareProtocol] = None
        self.onData: Optional[Callable[[dict], None]] = None
        self._port = None

    async def start(self) -> "BarePair":
        connected: Deferred = Deferred()

        def buildServer() -> BareProtocol:
            self.server = BareProtocol(lambda m: self.onData(m))
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
