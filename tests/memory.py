"""
Drive a Node's PeerConnections by hand: each one over a StringTransport,
fed whole lines and read back as messages.
"""

from __future__ import annotations

from typing import List, Tuple

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from p2poverlay.factory import PeerConnectionFactory
from p2poverlay.message import PROTOCOL_VERSION, Hello, P2PMessage
from p2poverlay import Node
from p2poverlay.protocol import PeerConnection

BOB = "b0b" + "0" * 29
CAROL = "ca201" + "0" * 27
# Where a connection comes from unless a test says otherwise.
PEER = IPv4Address("TCP", "127.0.0.1", 5555)


def connect(node: Node, outbound: bool = False, peer: IPv4Address = PEER
            ) -> Tuple[PeerConnection, StringTransport]:
    """A new connection of C{node}'s, from (or to) C{peer}."""
    connection = PeerConnectionFactory(node.connections,
                                       outbound=outbound).buildProtocol(None)
    transport = StringTransport(peerAddress=peer)
    connection.makeConnection(transport)
    return connection, transport


def send(connection: PeerConnection, *messages: P2PMessage) -> None:
    """Feed C{messages} to C{connection} in one chunk."""
    connection.dataReceived(b"".join(m.encode() + b"\n" for m in messages))


def written(transport: StringTransport) -> List[P2PMessage]:
    """The messages written to C{transport}, each one a complete line."""
    data = transport.value()
    assert data == b"" or data.endswith(b"\n")
    return [P2PMessage.decode(line) for line in data.split(b"\n")[:-1]]


def established(node: Node, nodeId: str = BOB, port: int = 9000,
                name: str = "bob", outbound: bool = False,
                peer: IPv4Address = PEER
                ) -> Tuple[PeerConnection, StringTransport]:
    """A connection that completed its handshake; its transport is cleared."""
    connection, transport = connect(node, outbound=outbound, peer=peer)
    send(connection, Hello(nodeId, PROTOCOL_VERSION, port, name))
    assert connection.peer is not None
    transport.clear()
    return connection, transport


def lose(connection: PeerConnection) -> None:
    """What the reactor does once a closed or aborted transport is gone."""
    connection.connectionLost(Failure(ConnectionDone()))


def resultOf(deferred):
    """The result C{deferred} has already fired with."""
    results = []
    deferred.addBoth(results.append)
    assert len(results) == 1, "the Deferred has not fired"
    assert not isinstance(results[0], Failure), results[0]
    return results[0]


def failureOf(deferred) -> Failure:
    """The Failure C{deferred} has already failed with (and handle it)."""
    failures = []
    deferred.addErrback(failures.append)
    assert len(failures) == 1, "the Deferred has not failed"
    return failures[0]
