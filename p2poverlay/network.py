"""
Where a node's connections come from: the network it listens on and dials.

A L{Node} asks its L{INetwork} for endpoints and does everything else
itself.  L{TCPNetwork} is the real one; L{p2poverlay.memnet} provides one
in memory, on a virtual clock, for tests and simulation.
"""

from __future__ import annotations

from typing import Optional

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.endpoints import (
    HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint,
    serverFromString, wrapClientTLS,
)
from twisted.internet.interfaces import (
    IStreamClientEndpoint, IStreamServerEndpoint,
)
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import Interface, implementer

from p2poverlay.tls import NodeTLS

# Connections the kernel holds for a TCP listener until the node accepts
# them (Twisted's default is 50).  Many nodes joining at once, or a
# lookup's requests arriving together, overflow a short queue, and each
# dropped SYN costs its dialer a retransmission a second or more later.
# The kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 1024


def withBacklog(description: str) -> str:
    """A TCP server endpoint C{description} with L{LISTEN_BACKLOG}, unless
    it gives a backlog of its own; any other kind as it is."""
    kind = description.split(":", 1)[0].strip().lower()
    if kind not in ("tcp", "tcp6") or "backlog=" in description:
        return description
    return f"{description}:backlog={LISTEN_BACKLOG}"


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
    """
    TCP through C{reactor}: C{serverFromString} (L{withBacklog}) and
    L{HostnameEndpoint} (an IP address is dialed as it is, with no name
    lookup in a thread); with C{tls}, TLS over them both ways
    (L{p2poverlay.tls}).
    """

    def __init__(self, reactor, tls: Optional[NodeTLS] = None) -> None:
        self.reactor = reactor
        self.tls = tls

    def serverEndpoint(self, description: str) -> IStreamServerEndpoint:
        endpoint = serverFromString(self.reactor, withBacklog(description))
        if self.tls is None:
            return endpoint
        return _TLSServerEndpoint(endpoint, self.tls)

    def clientEndpoint(self, host: str, port: int,
                       timeout: float) -> IStreamClientEndpoint:
        endpoint: IStreamClientEndpoint
        if isIPAddress(host):
            endpoint = TCP4ClientEndpoint(self.reactor, host, port,
                                          timeout=timeout)
        elif isIPv6Address(host):
            endpoint = TCP6ClientEndpoint(self.reactor, host, port,
                                          timeout=timeout)
        else:
            endpoint = HostnameEndpoint(self.reactor, host, port,
                                        timeout=timeout)
        if self.tls is None:
            return endpoint
        return wrapClientTLS(self.tls, endpoint)


@implementer(IStreamServerEndpoint)
class _TLSServerEndpoint:
    """A server endpoint whose connections speak TLS first."""

    def __init__(self, endpoint: IStreamServerEndpoint, tls: NodeTLS) -> None:
        self._endpoint = endpoint
        self._tls = tls

    def listen(self, factory):
        return self._endpoint.listen(
            TLSMemoryBIOFactory(self._tls, False, factory))
