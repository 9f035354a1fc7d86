"""
RelayService: a reachable node relays circuits for nodes others cannot dial.

A node reserves a place with the relay (RESERVE) over an ordinary link;
the reservation lasts L{RelayLimits.reservationTTL} seconds unless renewed
and ends when that link closes.  A dialer asks for a circuit to a reserved
node (CIRCUIT_OPEN) over its own link; the relay tells the reserved node
(CIRCUIT_INCOMING) and, once it accepts, the dialer (CIRCUIT_READY).  Then
the relay forwards each CIRCUIT_DATA and CIRCUIT_CREDIT to the other leg,
payload untouched (the ends speak TLS inside it), keeping to the window
of credit (L{p2poverlay.relay.transport.WINDOW}) so that its own send
buffers stay bounded.  A circuit past its bytes or its time is closed,
both ends told why; so is a circuit whose leg's link closes.  Anything a
link sends out of turn is a protocol error of that link only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from zope.interface import implementer

from p2poverlay.message import newMessageId
from p2poverlay.relay.circuits import CircuitTable, ICircuitEnd
from p2poverlay.relay.transport import WINDOW
from p2poverlay.relay.wire import (
    CircuitAccept, CircuitClose, CircuitCredit, CircuitData, CircuitIncoming,
    CircuitOpen, CircuitReady, Reserve, Reserved, ReserveRefused, rawLength,
)

# CIRCUIT_CLOSE and RESERVE_REFUSED reasons.
NOT_RELAYING = "not relaying"
NO_RESERVATION = "no reservation"
TOO_MANY_CIRCUITS = "too many circuits"
TOO_MANY_RESERVATIONS = "too many reservations"
BYTE_LIMIT = "circuit byte limit"
TIME_LIMIT = "circuit time limit"
NOT_ACCEPTED = "not accepted in time"
LINK_CLOSED = "the other end's link closed"
SELF = "that is the dialer itself"
STOPPED = "the relay stopped"


@dataclass
class RelayLimits:
    """
    What a relay gives: circuits and reservations at most, and per circuit
    bytes (both ways together) and seconds; a reservation's lifetime; how
    long a reserved node has to accept a circuit.
    """

    circuits: int = 64
    reservations: int = 128
    circuitBytes: int = 64 << 20
    circuitSeconds: float = 3600.0
    reservationTTL: int = 600
    acceptTimeout: float = 10.0


@dataclass
class _Reservation:
    link: Any
    expiry: IDelayedCall


@implementer(ICircuitEnd)
class _Leg:
    """One side of a relayed circuit: its link, and its id there."""

    def __init__(self, circuit: "_Circuit", link: Any, cid: str) -> None:
        self.circuit = circuit
        self.link = link
        self.cid = cid
        self.window = WINDOW  # what this side may still send
        self.other: "_Leg"

    def circuitData(self, message: CircuitData) -> None:
        self.circuit.service.forwardData(self, message)

    def circuitCredit(self, message: CircuitCredit) -> None:
        self.circuit.service.forwardCredit(self, message)

    def circuitClosed(self, message: CircuitClose) -> None:
        self.circuit.service.closeCircuit(self.circuit, message.reason,
                                          quiet=self)

    def linkLost(self) -> None:
        self.circuit.service.closeCircuit(self.circuit, LINK_CLOSED,
                                          quiet=self)


class _Circuit:
    def __init__(self, service: "RelayService", dialer: Any, dialerCid: str,
                 target: Any, targetCid: str) -> None:
        self.service = service
        self.dialer = _Leg(self, dialer, dialerCid)
        self.target = _Leg(self, target, targetCid)
        self.dialer.other, self.target.other = self.target, self.dialer
        self.accepted = False
        self.bytes = 0
        self.timer: Optional[IDelayedCall] = None


class RelayService:
    """
    The relaying of one node.

    @param enabled: whether it relays for others at all.
    @param canRelay: whether it may now (a node nobody can dial would
        relay for nobody).
    """

    log = Logger()

    def __init__(self, clock: Any, table: CircuitTable, limits: RelayLimits,
                 enabled: bool = True,
                 canRelay: Callable[[], bool] = lambda: True) -> None:
        self.clock = clock
        self.table = table
        self.limits = limits
        self.enabled = enabled
        self.canRelay = canRelay
        self.reservations: Dict[str, _Reservation] = {}
        self.circuits: Dict[_Circuit, None] = {}
        self.bytesRelayed = 0
        self.circuitsOpened = 0
        self.circuitsRefused = 0
        table.linkListeners.append(self._linkClosed)

    def counters(self) -> Dict[str, int]:
        """Metrics: reservations and circuits now, circuits and bytes so far."""
        return {"relay_reservations": len(self.reservations),
                "relay_circuits": len(self.circuits),
                "relay_circuits_opened": self.circuitsOpened,
                "relay_circuits_refused": self.circuitsRefused,
                "relay_bytes": self.bytesRelayed}

    def busy(self, link: Any) -> bool:
        """Does C{link} hold a reservation or carry a circuit here?"""
        peer = link.peer
        reservation = self.reservations.get(peer.node_id) if peer else None
        return (reservation is not None and reservation.link is link) or any(
            link in (c.dialer.link, c.target.link) for c in self.circuits)

    # -- reservations ---------------------------------------------------------

    def reserveReceived(self, link: Any, message: Reserve) -> None:
        nodeId = link.info.node_id
        old = self.reservations.get(nodeId)
        refusal = self._reserveRefusal(old is None)
        if refusal is not None:
            link.sendMessage(ReserveRefused(refusal))
            return
        if old is not None:
            old.expiry.cancel()
        ttl = self.limits.reservationTTL
        self.reservations[nodeId] = _Reservation(
            link, self.clock.callLater(ttl, self._expire, nodeId))
        self.table.watch(link)
        link.sendMessage(Reserved(ttl, self.limits.circuitBytes,
                                  int(self.limits.circuitSeconds)))

    def _reserveRefusal(self, new: bool) -> Optional[str]:
        if not self.enabled or not self.canRelay():
            return NOT_RELAYING
        if new and len(self.reservations) >= self.limits.reservations:
            return TOO_MANY_RESERVATIONS
        return None

    def _expire(self, nodeId: str) -> None:
        del self.reservations[nodeId]

    def _drop(self, nodeId: str) -> None:
        reservation = self.reservations.pop(nodeId, None)
        if reservation is not None and reservation.expiry.active():
            reservation.expiry.cancel()

    def _linkClosed(self, link: Any) -> None:
        peer = link.peer
        reservation = self.reservations.get(peer.node_id) if peer else None
        if reservation is not None and reservation.link is link:
            self._drop(peer.node_id)

    # -- opening circuits ---------------------------------------------------------

    def openReceived(self, link: Any, message: CircuitOpen) -> None:
        if self.table.inUse(link, message.cid):
            link.protocolError(f"circuit id {message.cid} in use")
            return
        reservation = self.reservations.get(message.target)
        refusal = self._openRefusal(link, message, reservation)
        if refusal is not None or reservation is None:
            self.circuitsRefused += 1
            link.sendMessage(CircuitClose(message.cid, refusal or ""))
            return
        circuit = _Circuit(self, link, message.cid, reservation.link,
                           newMessageId())
        self.circuits[circuit] = None
        self.table.add(link, message.cid, circuit.dialer)
        self.table.add(circuit.target.link, circuit.target.cid, circuit.target)
        circuit.timer = self.clock.callLater(
            self.limits.acceptTimeout, self.closeCircuit, circuit,
            NOT_ACCEPTED)
        circuit.target.link.sendMessage(
            CircuitIncoming(circuit.target.cid, link.info.node_id))

    def _openRefusal(self, link: Any, message: CircuitOpen,
                     reservation: Optional[_Reservation]) -> Optional[str]:
        if not self.enabled:
            return NOT_RELAYING
        if message.target == link.info.node_id:
            return SELF
        if reservation is None or reservation.link.closing:
            return NO_RESERVATION
        if len(self.circuits) >= self.limits.circuits:
            return TOO_MANY_CIRCUITS
        return None

    def acceptReceived(self, link: Any, message: CircuitAccept) -> None:
        leg = self.table.get(link, message.cid)
        if leg is None and self.table.inUse(link, message.cid):
            return  # Closed before the answer came (not accepted in time).
        if not isinstance(leg, _Leg) or leg is not leg.circuit.target \
                or leg.circuit.accepted:
            link.protocolError(f"unexpected CIRCUIT_ACCEPT {message.cid}")
            return
        circuit = leg.circuit
        circuit.accepted = True
        self.circuitsOpened += 1
        if circuit.timer is not None:
            circuit.timer.cancel()
        circuit.timer = self.clock.callLater(
            self.limits.circuitSeconds, self.closeCircuit, circuit, TIME_LIMIT)
        circuit.dialer.link.sendMessage(CircuitReady(circuit.dialer.cid))

    # -- forwarding -----------------------------------------------------------

    def forwardData(self, leg: _Leg, message: CircuitData) -> None:
        circuit = leg.circuit
        if not circuit.accepted:
            leg.link.protocolError(f"data before circuit {leg.cid} is open")
            return
        size = rawLength(message.data)
        if size > leg.window:
            leg.link.protocolError(f"more data than credit on circuit "
                                   f"{leg.cid}")
            return
        if circuit.bytes + size > self.limits.circuitBytes:
            self.closeCircuit(circuit, BYTE_LIMIT)
            return
        leg.window -= size
        circuit.bytes += size
        self.bytesRelayed += size
        leg.other.link.sendMessage(CircuitData(leg.other.cid, message.data))

    def forwardCredit(self, leg: _Leg, message: CircuitCredit) -> None:
        other = leg.other
        if not leg.circuit.accepted:
            leg.link.protocolError(f"credit before circuit {leg.cid} is open")
            return
        if other.window + message.bytes > WINDOW:
            leg.link.protocolError(f"credit beyond the window on circuit "
                                   f"{leg.cid}")
            return
        other.window += message.bytes
        other.link.sendMessage(CircuitCredit(other.cid, message.bytes))

    # -- closing --------------------------------------------------------------

    def closeCircuit(self, circuit: _Circuit, reason: str,
                     quiet: Optional[_Leg] = None) -> None:
        """
        Close C{circuit}, telling both ends C{reason} (but not C{quiet},
        the leg that closed it).
        """
        if circuit not in self.circuits:
            return
        del self.circuits[circuit]
        if circuit.timer is not None and circuit.timer.active():
            circuit.timer.cancel()
        for leg in (circuit.dialer, circuit.target):
            self.table.remove(leg.link, leg.cid)
            if leg is not quiet and not leg.link.closing:
                leg.link.sendMessage(CircuitClose(leg.cid, reason))

    def stop(self) -> None:
        """Close every circuit and forget every reservation."""
        for circuit in list(self.circuits):
            self.closeCircuit(circuit, STOPPED)
        for nodeId in list(self.reservations):
            self._drop(nodeId)
