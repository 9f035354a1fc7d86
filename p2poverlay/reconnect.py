"""
PeerLink: redial a lost peer with exponential backoff and jitter.

A link is a Twisted C{ClientService} aimed at one node's listening address.
The node starts one when a peer is lost without saying BYE, and for each
saved peer when it starts.  The link keeps the connection it makes and
redials whenever that connection drops, until the peer says BYE, is
reached through some other connection, or stays unreachable past the
node's C{forgetAfter}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from twisted.application.internet import ClientService, backoffPolicy

from p2poverlay.factory import PeerConnectionFactory
from p2poverlay.protocol import PeerConnection

if TYPE_CHECKING:
    from p2poverlay.node import Node


class PeerLink(ClientService):
    """
    Keeps dialing C{nodeId} at C{host:port} for C{node}.

    @ivar lostAt: when the peer was last lost; the link gives up once it
        has failed to reach the peer for C{forgetAfter} seconds after that.
    @ivar nextAttempt: when the next dial is due, while waiting.
    """

    def __init__(self, node: "Node", nodeId: str, host: str, port: int,
                 lostAt: Optional[float] = None) -> None:
        self.node = node
        self.nodeId = nodeId
        self.host = host
        self.port = port
        self.lostAt = node.reactor.seconds() if lostAt is None else lostAt
        self.nextAttempt: Optional[float] = None
        self.connection: Optional[PeerConnection] = None
        # Tries since the link last reached its peer.  ClientService counts
        # failed TCP connects only; a refused handshake counts here too.
        self.attempts = 0
        config = node.config
        self._delay = backoffPolicy(
            initialDelay=config.reconnectInitialDelay,
            maxDelay=config.reconnectMaxDelay, factor=2.0,
            jitter=lambda: node.random.uniform(0, config.reconnectInitialDelay))
        endpoint = node.network.clientEndpoint(host, port,
                                               config.connectTimeout)
        super().__init__(
            endpoint, PeerConnectionFactory(node, outbound=True, link=self),
            retryPolicy=self._retryDelay, clock=node.reactor)

    @property
    def handshaking(self) -> bool:
        """Whether a connection of this link is waiting for its HELLO."""
        connection = self.connection
        return (connection is not None and connection.peer is None
                and not connection.closing)

    def reached(self) -> None:
        """The link's connection is now the connection to its peer."""
        self.attempts = 0

    def _retryDelay(self, failedAttempts: int) -> float:
        now = self.node.reactor.seconds()
        self.attempts += 1
        delay = self._delay(self.attempts - 1)
        if now - self.lostAt >= self.node.config.forgetAfter:
            # Stopping from inside the retry machinery is not allowed:
            # the node stops the link on the next turn of the reactor.
            self.node.reactor.callLater(0, self.node.membership.linkGaveUp, self)
        self.nextAttempt = now + delay
        self.node.membership.linkWaiting(self)
        return delay

    def __repr__(self) -> str:
        return f"<PeerLink {self.nodeId[:8]} {self.host}:{self.port}>"
