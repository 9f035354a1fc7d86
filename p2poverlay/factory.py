"""PeerConnectionFactory: builds the PeerConnections of one Node."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred
from twisted.internet.protocol import ServerFactory

from p2poverlay.message import NEIGHBOUR
from p2poverlay.protocol import PeerConnection

if TYPE_CHECKING:
    from p2poverlay.node import Node


class PeerConnectionFactory(ServerFactory):
    """
    Builds L{PeerConnection}s for C{node}: inbound ones when used to
    listen, outbound ones (C{outbound=True}) when used to dial, on behalf
    of a L{p2poverlay.reconnect.PeerLink} if C{link} is given.
    """

    protocol = PeerConnection
    noisy = False

    def __init__(self, node: "Node", outbound: bool = False,
                 link=None, role: str = NEIGHBOUR) -> None:
        self.node = node
        self.outbound = outbound
        self.link = link
        self.role = role

    def buildProtocol(self, addr) -> PeerConnection:
        connection = self.protocol(self.node, outbound=self.outbound,
                                   role=self.role)
        connection.factory = self
        if self.link is not None:
            connection.link = self.link
            self.link.connection = connection
            # Nobody waits on a link's handshake; the node reports failures.
            connection.handshake.addErrback(lambda _: None)
        return connection


def dial(node: "Node", host: str, port: int,
         role: str = NEIGHBOUR) -> "Deferred[PeerConnection]":
    """Open a TCP connection to C{host:port} for C{node}."""
    endpoint = node.network.clientEndpoint(host, port,
                                           node.config.connectTimeout)
    return endpoint.connect(
        PeerConnectionFactory(node, outbound=True, role=role))
