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

from typing import Callable, Optional

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.interfaces import (
    IProtocolFactory, IStreamClientEndpoint,
)

from p2poverlay.config import NodeConfig
from p2poverlay.protocol import PeerConnection


class PeerLink(ClientService):
    """
    Keeps dialing C{nodeId} at C{host:port} through C{endpoint}.

    @ivar lostAt: when the peer was last lost; the link gives up once it
        has failed to reach the peer for C{forgetAfter} seconds after that.
    @ivar nextAttempt: when the next dial is due, while waiting.
    @ivar connection: the link's latest connection, if any.
    @param makeFactory: makes the factory of the link's connections, given
        the link.
    @param jitter: a random extra delay, in seconds, for each wait.
    @param waiting: called with the link when a dial failed and it waits.
    @param gaveUp: called with the link (on a later turn of the clock) when
        it has failed for C{forgetAfter} seconds.
    """

    def __init__(self, nodeId: str, host: str, port: int, clock,
                 config: NodeConfig, endpoint: IStreamClientEndpoint,
                 makeFactory: Callable[["PeerLink"], IProtocolFactory],
                 jitter: Callable[[], float],
                 waiting: Callable[["PeerLink"], None],
                 gaveUp: Callable[["PeerLink"], None],
                 lostAt: Optional[float] = None) -> None:
        self.nodeId = nodeId
        self.host = host
        self.port = port
        self.config = config
        self.lostAt = clock.seconds() if lostAt is None else lostAt
        self.nextAttempt: Optional[float] = None
        self.connection: Optional[PeerConnection] = None
        # Tries since the link last reached its peer.  ClientService counts
        # failed TCP connects only; a refused handshake counts here too.
        self.attempts = 0
        self._clock = clock
        self._waiting = waiting
        self._gaveUp = gaveUp
        self._delay = backoffPolicy(
            initialDelay=config.reconnectInitialDelay,
            maxDelay=config.reconnectMaxDelay, factor=2.0, jitter=jitter)
        super().__init__(endpoint, makeFactory(self),
                         retryPolicy=self._retryDelay, clock=clock)

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
        now = self._clock.seconds()
        self.attempts += 1
        delay = self._delay(self.attempts - 1)
        if now - self.lostAt >= self.config.forgetAfter:
            # Stopping from inside the retry machinery is not allowed:
            # the owner stops the link on the next turn of the clock.
            self._clock.callLater(0, self._gaveUp, self)
        self.nextAttempt = now + delay
        self._waiting(self)
        return delay

    def __repr__(self) -> str:
        return f"<PeerLink {self.nodeId[:8]} {self.host}:{self.port}>"
