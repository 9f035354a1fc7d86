"""
The narrow interfaces between a node's parts.

A L{p2poverlay.protocol.PeerConnection} talks only to its
L{IPeerConnectionOwner} (L{p2poverlay.connections.Connections}); the
components that care about peers coming and going (membership, topology,
broadcast, direct messages, the node's observers) are
L{IConnectionListener}s of it.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface, implementer


class IPeerConnectionOwner(Interface):
    """What a L{PeerConnection} needs from whoever manages connections."""

    config = Attribute("The node's L{p2poverlay.config.NodeConfig}.")
    clock = Attribute("An L{IReactorTime}: timers and the current time.")
    metrics = Attribute("The node's L{p2poverlay.metrics.Metrics}.")

    def helloFor(connection):
        """The C{HELLO} this node sends on C{connection} (of its role)."""

    def connectionMade(connection) -> None:
        """C{connection} is up (its handshake has not happened yet)."""

    def helloReceived(connection, hello) -> None:
        """C{connection} read the peer's C{HELLO}: accept or refuse it."""

    def messageReceived(connection, message) -> None:
        """An established connection read C{message}."""

    def connectionLost(connection, reason) -> None:
        """C{connection} has closed for C{reason} (a L{CloseReason})."""

    def misbehaved(connection, points: float, reason: str) -> None:
        """The peer of C{connection} broke the rules: count it against it."""


class IAdmission(Interface):
    """Whether a new neighbour fits: the topology's policy."""

    def hasRoomFor(connection) -> bool:
        """May C{connection}, just through its handshake, be kept?"""

    def turnAwaySample(connection, hello):
        """The C{PEERS} sent over C{connection} to the node that said
        C{hello} and is turned away."""

    def spareLink(inbound):
        """Of the C{inbound} connections, an idle direct link that may
        close to make room for a newcomer, or L{None}."""


class IConnectionListener(Interface):
    """
    Told of the peers of a node as their connections settle and close, in
    the reactor thread.  L{ConnectionListener} ignores everything.
    """

    def peerAdded(info, connection) -> None:
        """A node that was not a peer completed its handshake."""

    def peerReached(info, connection) -> None:
        """
        C{connection} is now the one connection to C{info}'s node: a new
        peer, a connection that replaced a duplicate, or the one kept when
        a duplicate was refused.
        """

    def roleChanged(nodeId: str, old, new: str) -> None:
        """
        The connection kept for C{nodeId} went from role C{old} (L{None}:
        it had none) to C{new}.
        """

    def peerTurnedAway(hello, host: str) -> None:
        """This node had no room for the node that said C{hello}."""

    def peerRemoved(info, connection, reason) -> None:
        """
        The connection to a peer closed and it is a peer no more;
        C{reason} is a L{p2poverlay.reasons.CloseReason}.
        """

    def connectionClosed(connection, reason) -> None:
        """Any connection closed (after L{peerRemoved}, if it was a peer's)."""


@implementer(IConnectionListener)
class ConnectionListener:
    """An L{IConnectionListener} that ignores everything."""

    def peerAdded(self, info, connection) -> None:
        pass

    def peerReached(self, info, connection) -> None:
        pass

    def roleChanged(self, nodeId, old, new) -> None:
        pass

    def peerTurnedAway(self, hello, host) -> None:
        pass

    def peerRemoved(self, info, connection, reason) -> None:
        pass

    def connectionClosed(self, connection, reason) -> None:
        pass
