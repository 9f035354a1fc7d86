"""Fake links for the relay's tests: what a PeerConnection offers a part."""

from __future__ import annotations

from typing import List, Optional

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred

from p2poverlay.message import P2PMessage
from p2poverlay.records import PeerInfo


class FakeTransport:
    def __init__(self, host: str) -> None:
        self.host = host

    def getPeer(self) -> IPv4Address:
        return IPv4Address("TCP", self.host, 9000)

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "10.0.0.1", 9000)


class FakeLink:
    """An established link to node C{nodeId}: records what is sent on it."""

    def __init__(self, nodeId: str, host: str = "10.0.0.2") -> None:
        self.peer: Optional[PeerInfo] = PeerInfo(
            node_id=nodeId, host=host, port=9000, name="", direction="inbound",
            since=0.0)
        self.transport = FakeTransport(host)
        self.sent: List[P2PMessage] = []
        self.errors: List[str] = []
        self.closing = False
        self._waiters: List[Deferred] = []

    @property
    def info(self) -> PeerInfo:
        assert self.peer is not None
        return self.peer

    def describe(self) -> str:
        return self.info.node_id[:8]

    def sendMessage(self, message: P2PMessage) -> None:
        # Every message goes through the codec, as on the wire.
        if not self.closing:
            self.sent.append(P2PMessage.decode(message.encode()))

    def protocolError(self, reason: str) -> None:
        self.errors.append(reason)
        self.lose()

    def whenClosed(self) -> Deferred:
        waiter: Deferred = Deferred()
        self._waiters.append(waiter)
        return waiter

    def lose(self) -> None:
        """The link closes."""
        if self.closing:
            return
        self.closing = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def take(self, kind: type = P2PMessage) -> List[P2PMessage]:
        """What was sent (of C{kind}) since the last take."""
        taken = [m for m in self.sent if isinstance(m, kind)]
        self.sent = [m for m in self.sent if not isinstance(m, kind)]
        return taken
