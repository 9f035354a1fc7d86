"""
Query connections: DHT requests to a node this one has no link to, and
their answers, without a peer registered at either end.

A DHT lookup asks a score of nodes once each.  A direct link to each would
register a peer and tell every listener; a query connection skips all
that.  The dialer sends its HELLO (with C{query=1}) and its request in
one flight; the accepting node checks the HELLO as it checks every HELLO
(a private overlay's proof, the key, bans) and answers.  Neither end
registers the other as a peer.  The dialer keeps the connection
L{LINGER} seconds after an answer, for its next request to that node,
then closes it with a BYE; the accepting node closes one that brings no
request within the handshake timeout.

A node of protocol version 2 ignores the HELLO's C{query}: it keeps a
direct link, which answers the request all the same.  Its own DHT
requests on it are answered too; anything else it sends closes it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import (
    TYPE_CHECKING, Any, Callable, Dict, FrozenSet, Iterable, Optional,
)

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from p2poverlay.errors import PeerUnreachable
from p2poverlay.message import DIRECT, P2PMessage, Peers
from p2poverlay.reasons import ANSWERED, CloseKind, CloseReason
from p2poverlay.records import PeerInfo

if TYPE_CHECKING:
    from p2poverlay.protocol import PeerConnection

# Seconds a dialer keeps a query connection after its answer, for another
# request to the same node (a lookup's next round, a table's check of its
# oldest contact), and how many it keeps so at most (they do not count
# towards maxOutbound: idle, they close soon).
LINGER = 5.0
MAX_LINGERING = 16


class Queries:
    """
    The query connections of one node, both ways.

    @param connections: the node's L{p2poverlay.connections.Connections}
        (its clock, config, C{dialRefusal} and C{dial}).

    @ivar requests: the message types a query connection may carry to
        this node (the DHT's requests: see L{allow}).
    @ivar answers: those it may carry back (their answers).
    """

    def __init__(self, connections: Any) -> None:
        self.connections = connections
        self.requests: FrozenSet[str] = frozenset()
        self.answers: FrozenSet[str] = frozenset()
        # Accepted query connections waiting for a request.
        self._waiting: Dict["PeerConnection", IDelayedCall] = {}
        # Dialed ones whose answer came, by node id (the oldest first).
        self._lingering: "OrderedDict[str, Any]" = OrderedDict()
        self.dialed = self.served = self.reused = 0

    def allow(self, requests: Iterable[Any], answers: Iterable[Any]) -> None:
        """Let query connections carry these requests and answers."""
        self.requests = frozenset(kind.TYPE for kind in requests)
        self.answers = frozenset(kind.TYPE for kind in answers)

    def counters(self) -> dict:
        """Query connections dialed, reused and served, for the metrics."""
        return {"dht_queries_dialed": self.dialed,
                "dht_queries_reused": self.reused,
                "dht_queries_served": self.served}

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

    @property
    def lingering(self) -> int:
        """How many answered query connections are kept for now."""
        return len(self._lingering)

    def take(self, nodeId: str) -> Optional["PeerConnection"]:
        """A query connection to C{nodeId} kept after its answer, to carry
        another request (it is this caller's until L{finished})."""
        kept = self._lingering.pop(nodeId, None)
        if kept is None:
            return None
        connection, timer = kept
        timer.cancel()
        if connection.closing:
            return None
        self.reused += 1
        return connection

    def finished(self, connection: "PeerConnection",
                 reason: CloseReason = ANSWERED) -> None:
        """
        The dialer is done with C{connection} for now: once answered it is
        kept L{LINGER} seconds (unless one to the node is kept already, or
        L{MAX_LINGERING}); else, or when that time is up, it closes with a
        BYE (the node asked counts it as a goodbye, not as lost).
        """
        nodeId = connection.info.node_id
        if reason is not ANSWERED or connection.closing or \
                nodeId in self._lingering:
            connection.close(reason)
            return
        self._lingering[nodeId] = (connection, self.connections.clock.callLater(
            LINGER, self._expire, nodeId, connection))
        if len(self._lingering) > MAX_LINGERING:
            _, (oldest, timer) = self._lingering.popitem(last=False)
            timer.cancel()
            oldest.close(ANSWERED)

    def _expire(self, nodeId: str, connection: "PeerConnection") -> None:
        if self._forget(nodeId, connection):
            connection.close(ANSWERED)

    def _forget(self, nodeId: str, connection: "PeerConnection") -> bool:
        """Keep C{connection} no longer, if it is the one kept for
        C{nodeId}: was it?"""
        kept = self._lingering.get(nodeId)
        if kept is None or kept[0] is not connection:
            return False
        del self._lingering[nodeId]
        if kept[1].active():
            kept[1].cancel()
        return True

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
            self._wait(connection, CloseReason(CloseKind.HANDSHAKE_TIMEOUT))

    def _wait(self, connection: "PeerConnection", reason: CloseReason) -> None:
        """An accepted one closes if no request comes within the handshake
        timeout (longer than the dialer's L{LINGER})."""
        self._waiting[connection] = self.connections.clock.callLater(
            self.connections.config.handshakeTimeout, connection.close, reason)

    def received(self, connection: "PeerConnection", message: P2PMessage,
                 handler: Callable[[Any, P2PMessage], None]) -> None:
        """
        A message on a query connection: on an accepted one, a request; on
        a dialed one, an answer.  A version 2 node takes a dialed one for a
        direct link: its requests are answered as well, its greeting (an
        empty C{PEERS}) passed over, and anything else closes it, so that
        the node sends that again over a link of its own.
        """
        if connection.outbound:
            if message.TYPE in self.answers or message.TYPE in self.requests:
                handler(connection, message)
            elif message.TYPE != Peers.TYPE:
                connection.close(ANSWERED)
            return
        if message.TYPE not in self.requests:
            connection.protocolError(
                f"{message.TYPE} on a query connection")
            return
        self._stopWaiting(connection)
        self.served += 1
        handler(connection, message)
        if not connection.closing:
            self._wait(connection, CloseReason(CloseKind.IDLE))

    def connectionLost(self, connection: "PeerConnection") -> None:
        self._stopWaiting(connection)
        if connection.peer is not None:
            self._forget(connection.peer.node_id, connection)

    def _stopWaiting(self, connection: "PeerConnection") -> None:
        timer = self._waiting.pop(connection, None)
        if timer is not None and timer.active():
            timer.cancel()
