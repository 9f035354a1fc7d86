"""
Circuit relays: a node others cannot dial is reached through a relay.

A reachable node relays for others (L{RelayService}), within limits
(L{RelayLimits}); every node can keep reservations with relays and dial
through them (L{RelayClient}).  The connection over a circuit is TLS end
to end: the relay forwards bytes it can neither read nor change.  See
``docs/relay.rst``; the wire is in L{p2poverlay.relay.wire}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from p2poverlay.reachability import PRIVATE
from p2poverlay.relay.circuits import CircuitTable
from p2poverlay.relay.client import RelayClient, RelayRefused, Reservation
from p2poverlay.relay.service import RelayLimits, RelayService
from p2poverlay.relay.wire import (
    CircuitAccept, CircuitClose, CircuitCredit, CircuitData, CircuitIncoming,
    CircuitOpen, CircuitReady, Reserve, Reserved, ReserveRefused,
)

__all__ = ["RelayParts", "RelayClient", "RelayLimits", "RelayRefused",
           "RelayService", "Reservation", "attachRelaying", "limitsOf"]


@dataclass
class RelayParts:
    """A node's relaying: its circuits, the relay side and the client side."""

    table: CircuitTable
    service: RelayService
    client: RelayClient

    def busy(self, link: Any) -> bool:
        """Does C{link} carry a reservation or a circuit (it must stay)?"""
        return self.service.busy(link) or self.client.busy(link) \
            or bool(self.table.onLink(link))

    def counters(self) -> dict:
        return {**self.service.counters(), **self.client.counters()}

    def stop(self) -> None:
        self.service.stop()
        self.client.stop()


def limitsOf(config: Any) -> RelayLimits:
    """The L{RelayLimits} a node's L{p2poverlay.config.NodeConfig} sets."""
    return RelayLimits(circuits=config.relayCircuits,
                       reservations=config.relayReservations,
                       circuitBytes=config.relayCircuitBytes,
                       circuitSeconds=config.relayCircuitTime,
                       acceptTimeout=config.handshakeTimeout)


def attachRelaying(node: Any, reachability: Any) -> RelayParts:
    """
    Relaying for C{node}: its messages handled, its metrics counted, and
    its direct links kept while they carry a reservation or a circuit.
    It relays while C{reachability} does not say it is private.
    """
    connections = node.connections
    table = CircuitTable()
    service = RelayService(
        connections.clock, table, limitsOf(node.config),
        enabled=node.config.relay,
        canRelay=lambda: reachability.state != PRIVATE)
    client = RelayClient(connections, table,
                         getattr(node.network, "tls", None))
    parts = RelayParts(table, service, client)
    register = connections.dispatcher.register
    for messageType, handler in (
            (Reserve, service.reserveReceived),
            (Reserved, client.reservedReceived),
            (ReserveRefused, client.refusedReceived),
            (CircuitOpen, service.openReceived),
            (CircuitIncoming, client.incomingReceived),
            (CircuitAccept, service.acceptReceived),
            (CircuitReady, client.readyReceived),
            (CircuitData, table.dataReceived),
            (CircuitCredit, table.creditReceived),
            (CircuitClose, table.closeReceived)):
        register(messageType, handler)
    node.metrics.sources.append(parts.counters)
    connections.listeners.append(client)
    links = node.topology.directLinks
    busy = links.busy
    links.busy = lambda link: busy(link) or parts.busy(link)
    return parts
