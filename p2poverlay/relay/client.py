"""
RelayClient: the ends of circuits, and reservations with relays.

A node nobody can dial keeps a reservation with a relay (L{reserve}),
renewed at half its lifetime while the link lasts; a circuit the relay
announces on that link is accepted, and an inbound connection of the
overlay runs over it (the server side of TLS).  A dialer asks a relay it
has a link to for a circuit to a node (L{dial}) and runs an outbound
connection over it (the client side of TLS): the target proves its key
end to end, as over TCP, and the relay sees only TLS records.

A connection over a circuit has C{relayedBy}: the relay's node id; one
this node dialed, C{circuitRoundTrip}: the seconds from asking the relay
for the circuit until it was ready (a round trip to the other end).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, List, Optional

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from p2poverlay.errors import HandshakeFailed, OverlayError, PeerUnreachable
from p2poverlay.factory import PeerConnectionFactory
from p2poverlay.interfaces import ConnectionListener
from p2poverlay.message import DIRECT, newMessageId
from p2poverlay.reasons import CloseKind, CloseReason
from p2poverlay.records import PeerInfo
from p2poverlay.relay.circuits import CircuitTable, ICircuitEnd
from p2poverlay.relay.transport import ABORTED, CircuitTransport
from p2poverlay.relay.wire import (
    CircuitAccept, CircuitClose, CircuitCredit, CircuitData, CircuitIncoming,
    CircuitOpen, CircuitReady, Reserve, Reserved, ReserveRefused,
)

NOT_RESERVED = "no reservation here"


class RelayRefused(OverlayError):
    """A relay would not keep a reservation; the reason in one line."""


@dataclass
class Reservation:
    """
    A reservation with the relay C{relay} (a node id) on C{link}: it
    lasts until C{expires} (the clock's time), and each circuit through
    it may carry C{bytes} bytes for C{seconds} seconds.
    """

    relay: str
    link: Any
    ttl: int
    bytes: int
    seconds: int
    expires: float


@implementer(ICircuitEnd)
class _Dial:
    """A circuit asked for, not yet ready."""

    def __init__(self, client: "RelayClient", link: Any, cid: str,
                 target: str, role: str) -> None:
        self.client = client
        self.link = link
        self.cid = cid
        self.target = target
        self.role = role
        self.result: Deferred[PeerInfo] = Deferred()
        self.timer: Optional[IDelayedCall] = None
        self.opened = client.clock.seconds()

    def fail(self, reason: str) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        if not self.result.called:
            self.result.errback(PeerUnreachable(
                f"no circuit to {self.target[:8]} through "
                f"{self.link.describe()}: {reason}"))

    def timedOut(self) -> None:
        self.timer = None
        self.client.table.remove(self.link, self.cid)
        self.link.sendMessage(CircuitClose(self.cid, ABORTED))
        self.fail("the relay did not answer in time")

    def circuitData(self, message: CircuitData) -> None:
        self.link.protocolError(f"data before circuit {self.cid} is ready")

    def circuitCredit(self, message: CircuitCredit) -> None:
        self.link.protocolError(f"credit before circuit {self.cid} is ready")

    def circuitClosed(self, message: CircuitClose) -> None:
        self.fail(message.reason or "closed")

    def linkLost(self) -> None:
        self.fail("the relay link closed")


class RelayClient(ConnectionListener):
    """
    Reservations with relays and circuits through them, for the node
    whose L{p2poverlay.connections.Connections} these are.

    @param tls: the node's L{p2poverlay.tls.NodeTLS}, or None (plaintext
        or in memory: connections over circuits are plain too).
    """

    # Empty for most nodes, so one empty set the class holds until a
    # node needs its own (each is replaced, never changed in place).
    _moving: FrozenSet[str] = frozenset()

    def __init__(self, connections: Any, table: CircuitTable,
                 tls: Any = None) -> None:
        self.connections = connections
        self.clock = connections.clock
        self.table = table
        self.tls = tls
        self.reservations: Dict[Any, Reservation] = {}
        self._asked: Dict[Any, List[Deferred]] = {}
        self._renewals: Dict[Any, IDelayedCall] = {}
        # Relays whose reservation waits for the connection the pair keeps.
        table.linkListeners.append(self._linkClosed)

    def counters(self) -> Dict[str, int]:
        """Metrics: reservations held, and circuits this node is an end of."""
        return {"relay_reservations_held": len(self.reservations),
                "relay_circuits_here": sum(
                    1 for end in self.table
                    if isinstance(end, (CircuitTransport, _Dial)))}

    def busy(self, link: Any) -> bool:
        """Does this node hold a reservation on C{link}, or ask for one?"""
        return link in self.reservations or link in self._asked

    # -- reservations ---------------------------------------------------------

    def reserve(self, link: Any) -> "Deferred[Reservation]":
        """
        Ask the peer on C{link} to relay for this node, and keep the
        reservation renewed for as long as the link lasts (or until
        L{release}).

        @return: fires with the L{Reservation}; fails with L{RelayRefused}
            or, should the link close first, L{PeerUnreachable}.
        """
        if link.closing:
            return fail(PeerUnreachable(f"{link.describe()} is closing"))
        waiter: Deferred[Reservation] = Deferred()
        asking = link in self._asked
        self._asked.setdefault(link, []).append(waiter)
        if not asking:
            self.table.watch(link)
            link.sendMessage(Reserve())
        return waiter

    def release(self, link: Any) -> None:
        """Renew the reservation on C{link} no more (it lapses)."""
        self.reservations.pop(link, None)
        renewal = self._renewals.pop(link, None)
        if renewal is not None and renewal.active():
            renewal.cancel()

    def _renew(self, link: Any) -> None:
        self._renewals.pop(link, None)
        if link in self.reservations:
            self.reserve(link).addErrback(lambda _: None)

    def reservedReceived(self, link: Any, message: Reserved) -> None:
        waiters = self._asked.pop(link, None)
        if waiters is None:
            return  # Not asked for (or released since): let it lapse.
        reservation = Reservation(
            link.info.node_id, link, message.ttl, message.bytes,
            message.seconds, self.clock.seconds() + message.ttl)
        self.reservations[link] = reservation
        old = self._renewals.pop(link, None)
        if old is not None and old.active():
            old.cancel()
        self._renewals[link] = self.clock.callLater(
            max(message.ttl / 2, 1.0), self._renew, link)
        for waiter in waiters:
            waiter.callback(reservation)

    def refusedReceived(self, link: Any, message: ReserveRefused) -> None:
        waiters = self._asked.pop(link, None)
        self.release(link)
        for waiter in waiters or ():
            waiter.errback(RelayRefused(
                f"{link.describe()} will not relay: {message.reason}"))

    def _linkClosed(self, link: Any) -> None:
        held = link in self.reservations
        self.release(link)
        for waiter in self._asked.pop(link, ()):
            waiter.errback(PeerUnreachable(
                f"{link.describe()} closed before it reserved"))
        peer, why = link.peer, getattr(link, "closeReason", None)
        if held and peer is not None and why is not None \
                and why.kind == CloseKind.DUPLICATE:
            # The pair keeps another connection (a neighbour's over a
            # direct link): the reservation moves to it, once it is there.
            successor = self.connections.peers.connection(peer.node_id)
            if successor is not None and not successor.closing:
                self.reserve(successor).addErrback(lambda _: None)
            else:
                self._moving |= {peer.node_id}

    def peerReached(self, info: PeerInfo, connection: Any) -> None:
        """A connection to C{info}'s node is settled: one a reservation
        moves to?"""
        if info.node_id in self._moving:
            self._moving -= {info.node_id}
            self.reserve(connection).addErrback(lambda _: None)

    # -- circuits to this node ------------------------------------------------------

    def incomingReceived(self, link: Any, message: CircuitIncoming) -> None:
        if self.table.inUse(link, message.cid):
            link.protocolError(f"circuit id {message.cid} in use")
        elif link not in self.reservations:
            link.sendMessage(CircuitClose(message.cid, NOT_RESERVED))
        else:
            link.sendMessage(CircuitAccept(message.cid))
            self._run(link, message.cid, self.connections.factory, False)

    # -- circuits from this node ------------------------------------------------

    def dial(self, link: Any, target: str,
             role: str = DIRECT) -> "Deferred[PeerInfo]":
        """
        Reach the node C{target} through the relay on C{link}: a circuit,
        and a connection of C{role} over it.

        @return: fires with the target's L{PeerInfo} once its handshake is
            through (its key proven, over TLS); fails with
            L{PeerUnreachable} (no circuit) or L{HandshakeFailed}.
        """
        if link.closing:
            return fail(PeerUnreachable(f"{link.describe()} is closing"))
        cid = newMessageId()
        dial = _Dial(self, link, cid, target, role)
        self.table.add(link, cid, dial)
        dial.timer = self.clock.callLater(
            self.connections.config.connectTimeout, dial.timedOut)
        link.sendMessage(CircuitOpen(cid, target))
        return dial.result

    def readyReceived(self, link: Any, message: CircuitReady) -> None:
        dial = self.table.get(link, message.cid)
        if dial is None and self.table.inUse(link, message.cid):
            return  # Given up on already: the relay is told.
        if not isinstance(dial, _Dial):
            link.protocolError(f"unexpected CIRCUIT_READY {message.cid}")
            return
        if dial.timer is not None and dial.timer.active():
            dial.timer.cancel()
        factory = PeerConnectionFactory(self.connections, outbound=True,
                                        role=dial.role)
        connection = self._run(link, message.cid, factory, True)
        connection.circuitRoundTrip = self.clock.seconds() - dial.opened
        connection.handshake.addCallback(self._reached, connection, dial)
        connection.handshake.chainDeferred(dial.result)

    @staticmethod
    def _reached(info: PeerInfo, connection: Any, dial: _Dial) -> PeerInfo:
        if info.node_id != dial.target:
            connection.close(CloseReason(CloseKind.NOT_PINNED))
            raise HandshakeFailed(f"the circuit through {dial.link.describe()}"
                                  f" reached {info.node_id[:8]}, not "
                                  f"{dial.target[:8]}")
        return info

    def _run(self, link: Any, cid: str, factory: Any, isClient: bool) -> Any:
        """Run a connection made by C{factory} over circuit C{cid}."""
        transport = CircuitTransport(
            link, cid, self.clock, lambda: self.table.remove(link, cid))
        self.table.add(link, cid, transport)
        address = transport.getPeer()
        if self.tls is None:
            protocol = connection = factory.buildProtocol(address)
        else:
            protocol = TLSMemoryBIOFactory(
                self.tls, isClient, factory, self.clock).buildProtocol(address)
            connection = protocol.wrappedProtocol
        connection.relayedBy = link.info.node_id
        transport.makeConnection(protocol)
        return connection

    def stop(self) -> None:
        """Renew nothing more; circuits close with their connections."""
        for link in list(self._renewals):
            self.release(link)
        self._moving = frozenset()

