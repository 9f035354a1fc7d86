"""
Where a node's connections come from: the network it listens on and dials.

A L{Node} asks its L{INetwork} for endpoints and does everything else
itself.  L{TCPNetwork} is the real one; L{p2poverlay.memnet} provides one
in memory, on a virtual clock, for tests and simulation.
"""

from __future__ import annotations

from twisted.internet.endpoints import HostnameEndpoint, serverFromString
from twisted.internet.interfaces import (
    IStreamClientEndpoint, IStreamServerEndpoint,
)
from zope.interface import Interface, implementer


class INetwork(Interface):
    """Makes the endpoints a node listens on and dials."""

    def serverEndpoint(description: str) -> IStreamServerEndpoint:
        """
        The server endpoint for a Twisted endpoint C{description}.

        @raise ValueError: (or C{KeyError}, C{TypeError}) if it is not one.
        """

    def clientEndpoint(host: str, port: int,
                       timeout: float) -> IStreamClientEndpoint:
        """An endpoint that connects to C{host:port} within C{timeout} s."""


@implementer(INetwork)
class TCPNetwork:
    """TCP through C{reactor}: C{serverFromString} and L{HostnameEndpoint}."""

    def __init__(self, reactor) -> None:
        self.reactor = reactor

    def serverEndpoint(self, description: str) -> IStreamServerEndpoint:
        return serverFromString(self.reactor, description)

    def clientEndpoint(self, host: str, port: int,
                       timeout: float) -> IStreamClientEndpoint:
        return HostnameEndpoint(self.reactor, host, port, timeout=timeout)
