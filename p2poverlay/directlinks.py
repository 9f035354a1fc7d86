"""
Direct links: the connections to nodes that are not neighbours, made on
demand for direct messages and DHT requests.

At most C{maxDirectLinks} are kept: past that, the least recently used
idle ones close, but never one that still waits for an answer or one
younger than L{GRACE} seconds (it was made for a request that may still be
on its way, as libp2p's connection manager keeps new connections for a
grace period).  Each closes after C{directLinkIdle} seconds unused.  (The node calls
L{DirectLinks.closeIdle} every C{pingInterval}.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable, List, Optional

from p2poverlay.config import NodeConfig
from p2poverlay.message import DIRECT
from p2poverlay.reasons import CloseKind, CloseReason
from p2poverlay.registry import PeerRegistry

if TYPE_CHECKING:
    from p2poverlay.protocol import PeerConnection

GRACE = 5.0


class DirectLinks:
    """
    The direct links of one node.

    @param busy: whether a connection still waits for an answer (ACKs of
        direct messages, a DHT request's answer); such a link stays.
    """

    def __init__(self, config: NodeConfig, clock, registry: PeerRegistry,
                 busy: Callable[["PeerConnection"], bool]) -> None:
        self.config = config
        self.clock = clock
        self.peers = registry
        self.busy = busy

    def links(self) -> List["PeerConnection"]:
        return [c for c in self.peers.connections() if c.role == DIRECT]

    def idle(self, now: float) -> List["PeerConnection"]:
        """The settled links unused for L{GRACE} seconds, waiting for nothing."""
        return [c for c in self.links() if c.peer is not None and not c.closing
                and now - c.lastUsed >= GRACE and not self.busy(c)]

    def spare(self, inbound: Iterable["PeerConnection"]
              ) -> Optional["PeerConnection"]:
        """
        The least recently used of the settled direct links among
        C{inbound} that wait for nothing, if any: it may go to make room
        for a new connection (a neighbour, perhaps) rather than turn that
        away.  Its peer, asking again, dials again.
        """
        idle = [c for c in inbound if c.role == DIRECT and c.peer is not None
                and not c.closing and not self.busy(c)]
        return min(idle, key=lambda c: c.lastUsed, default=None)

    def closeIdle(self) -> None:
        """
        Close the links unused for C{directLinkIdle} seconds, and those
        beyond the bound once out of their grace period.
        """
        self.makeRoom()
        now = self.clock.seconds()
        for connection in self.links():
            if now - connection.lastUsed >= self.config.directLinkIdle \
                    and not self.busy(connection):
                connection.close(CloseReason(CloseKind.IDLE))

    def makeRoom(self) -> None:
        """Close the least recently used idle links beyond the bound."""
        # The link being settled has no peer yet: it is the newest.
        links = [c for c in self.links()
                 if not c.closing and c.peer is not None]
        excess = len(links) - self.config.maxDirectLinks
        if excess <= 0:
            return
        settled = self.clock.seconds() - GRACE
        idle = sorted((c for c in links if c.info.since <= settled
                       and not self.busy(c)), key=lambda c: c.lastUsed)
        for connection in idle[:excess]:
            connection.close(CloseReason(CloseKind.DIRECT_LIMIT))
