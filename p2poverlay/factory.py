"""PeerConnectionFactory: builds the PeerConnections of one node."""

from __future__ import annotations

from twisted.internet.protocol import ServerFactory

from p2poverlay.interfaces import IPeerConnectionOwner
from p2poverlay.message import NEIGHBOUR
from p2poverlay.protocol import PeerConnection


class PeerConnectionFactory(ServerFactory):
    """
    Builds L{PeerConnection}s owned by C{owner}: inbound ones when used to
    listen, outbound ones (C{outbound=True}) when used to dial, on behalf
    of a L{p2poverlay.reconnect.PeerLink} if C{link} is given.
    """

    protocol = PeerConnection
    noisy = False

    def __init__(self, owner: IPeerConnectionOwner, outbound: bool = False,
                 link=None, role: str = NEIGHBOUR, dialed=None,
                 nonce: str = "", query=None) -> None:
        self.dialed = dialed  # the (host, port) dialed, if this one dials
        self.nonce = nonce  # a probe's (see p2poverlay.reachability)
        # A query connection's first request (see p2poverlay.queries).
        self.query = query
        self.owner = owner
        self.outbound = outbound
        self.link = link
        self.role = role

    def buildProtocol(self, addr) -> PeerConnection:
        connection = self.protocol(self.owner, outbound=self.outbound,
                                   role=self.role)
        connection.factory = self
        connection.dialed = self.dialed
        if self.query is not None:  # (else the class's False: no dict entry)
            connection.query = True
        if self.link is not None:
            connection.link = self.link
            self.link.connection = connection
            # Nobody waits on a link's handshake; the node reports failures.
            connection.handshake.addErrback(lambda _: None)
        return connection
