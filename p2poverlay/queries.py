"""
Query connections: one DHT request to a node this one has no link to,
its answer, and the connection closes.

A DHT lookup asks a score of nodes once each.  A direct link to each would
register a peer, tell every listener, and linger until idle; a query
connection skips all that.  The dialer sends its HELLO (with C{query=1})
and its request in one flight; the accepting node checks the HELLO as it
checks every HELLO (a private overlay's proof, the key, bans), answers
the one request, and closes.  Neither end registers the other as a peer.

A node of protocol version 2 ignores the HELLO's C{query}: it keeps a
direct link, which answers the request all the same, and the dialer
closes it with a BYE once answered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, FrozenSet, Iterable

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from p2poverlay.errors import PeerUnreachable
from p2poverlay.message import DIRECT, QUERY_VERSION, P2PMessage
from p2poverlay.reasons import ANSWERED, CloseKind, CloseReason
from p2poverlay.records import PeerInfo

if TYPE_CHECKING:
    from p2poverlay.connections import Connections
    from p2poverlay.protocol import PeerConnection


class Queries:
    """
    The query connections of one node, both ways.

    @ivar requests: the message types a query connection may carry to
        this node (the DHT's requests: see L{allow}).
    @ivar answers: those it may carry back (their answers).
    """

    def __init__(self, connections: "Connections") -> None:
        self.connections = connections
        self.requests: FrozenSet[str] = frozenset()
        self.answers: FrozenSet[str] = frozenset()
        # Accepted query connections whose request has not come yet.
        self._waiting: Dict["PeerConnection", IDelayedCall] = {}
        self.dialed = self.served = 0

    def allow(self, requests: Iterable[Any], answers: Iterable[Any]) -> None:
        """Let query connections carry these requests and answers."""
        self.requests = frozenset(kind.TYPE for kind in requests)
        self.answers = frozenset(kind.TYPE for kind in answers)

    # -- dialing ------------------------------------------------------------

    def dial(self, host: str, port: int,
             request: P2PMessage) -> "Deferred[PeerConnection]":
        """
        Send C{request} to the node at C{host:port} over a new query
        connection.

        @return: fires with the connection once the node's HELLO is in
            (its answer goes to the request's handler, as over any link),
            or fails with L{PeerUnreachable} (or L{DialLimit}).
        """
        refusal = self.connections.dialRefusal(host, port)
        if refusal is not None:
            return fail(refusal)
        self.dialed += 1
        d = self.connections.dial(host, port, DIRECT, query=request)
        d.addCallback(lambda c: c.handshake.addCallback(lambda _: c))

        def unreachable(reason: Failure) -> Failure:
            if reason.check(PeerUnreachable):
                return reason
            return Failure(PeerUnreachable(
                f"cannot query {host}:{port}: {reason.getErrorMessage()}"))
        return d.addErrback(unreachable)

    def finished(self, connection: "PeerConnection",
                 reason: CloseReason = ANSWERED) -> None:
        """
        The dialer is done with C{connection} (its answer came, or will
        not): close, with a BYE to a node that kept a link.
        """
        connection.close(reason, tellPeer=connection.version < QUERY_VERSION)

    # -- accepting ------------------------------------------------------------

    def handshaken(self, connection: "PeerConnection", info: PeerInfo) -> None:
        """
        C{connection}'s HELLO (of a query connection, either way) passed
        every check: it carries messages now, but its peer is not
        registered.  An accepted one whose request does not come within
        the handshake timeout closes.
        """
        connection.established(info)
        if not connection.outbound:
            self._waiting[connection] = self.connections.clock.callLater(
                self.connections.config.handshakeTimeout, connection.close,
                CloseReason(CloseKind.HANDSHAKE_TIMEOUT))

    def received(self, connection: "PeerConnection", message: P2PMessage,
                 handler: Callable[[Any, P2PMessage], None]) -> None:
        """
        A message on a query connection: an accepted one carries one
        request, and closes once it is handled; a dialed one, the answer
        (anything else a version 2 node says on its link is not for it).
        """
        if connection.outbound:
            if message.TYPE in self.answers:
                handler(connection, message)
            return
        if message.TYPE not in self.requests:
            connection.protocolError(
                f"{message.TYPE} on a query connection")
            return
        self._stopWaiting(connection)
        self.served += 1
        handler(connection, message)
        connection.close(ANSWERED, tellPeer=False)

    def connectionLost(self, connection: "PeerConnection") -> None:
        self._stopWaiting(connection)

    def _stopWaiting(self, connection: "PeerConnection") -> None:
        timer = self._waiting.pop(connection, None)
        if timer is not None and timer.active():
            timer.cancel()
