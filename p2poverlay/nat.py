"""
NAT traversal, wired into a node: reachability (its observations, its
dial-backs and the service of dialing its peers back:
L{p2poverlay.reachability}, L{p2poverlay.dialback}) and the upgrade of
relayed connections to direct ones (L{p2poverlay.upgrade},
L{p2poverlay.holepunch}).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Tuple

from p2poverlay.addressnews import AddressNews
from p2poverlay.dialback import DialBackServer, probeThrough
from p2poverlay.natwire import Address, DialBackRequest, DialBackResult
from p2poverlay.holepunch import HolePunching
from p2poverlay.message import DIRECT
from p2poverlay.reachability import PRIVATE, Reachability
from p2poverlay.relay import RelayParts, attachRelaying
from p2poverlay.relayuse import RelayUse, connectThrough
from p2poverlay.rendezvous import Rendezvous
from p2poverlay.reuseport import allowPortReuse
from p2poverlay.upgrade import DirectUpgrade


def attachReachability(connections: Any, dispatcher: Any, metrics: Any,
                       book: Any, listenPort: Callable[[], int], rng: Any,
                       undialable: Callable[[str], object] = lambda _: None
                       ) -> Tuple[Reachability, AddressNews]:
    """
    A L{Reachability} for the node whose L{p2poverlay.connections.Connections}
    these are: it hears their HELLOs, decides what their own HELLOs
    advertise, and its peers' dial-back requests are served; and the
    L{AddressNews} that tells the peers when what they advertise changes.
    """
    reachability = Reachability(connections.clock, connections.peers,
                                listenPort, rng)
    server = DialBackServer(connections.clock, probeThrough(connections))
    dispatcher.register(DialBackRequest, server.requestReceived)
    dispatcher.register(DialBackResult, reachability.resultReceived)
    news = AddressNews(connections, book, connections.ownAddress.verifier,
                       lambda: reachability.advertised() != (True, None))
    dispatcher.register(Address, news.received)
    news.undialable.append(undialable)
    reachability.advertisedChanged.append(news.tell)
    connections.listeners.append(news)
    connections.reachability = reachability
    connections.ownAddress.reachability = reachability
    metrics.sources += [reachability.counters, server.counters]
    return reachability, news


@dataclass
class NatTraversal:
    """A node's parts for NAT traversal."""

    reachability: Reachability
    relaying: RelayParts
    relayUse: RelayUse
    upgrade: DirectUpgrade
    punching: HolePunching

    def stop(self) -> None:
        self.reachability.stop()
        self.relayUse.stop()
        self.relaying.stop()


def _undialable(node: Any, nodeId: str) -> None:
    """A peer said nobody can dial it directly: no part of the node tells
    of, or dials, the address it said before."""
    node.dht.table.failed(nodeId)
    node.topology.peerExchange.needy.forget(nodeId)


def _linkTo(node: Any, nodeId: str) -> None:
    """A direct link to C{nodeId}, where the address book or the DHT's
    table says it listens (failures are the caller's to notice)."""
    known = node.addressBook.get(nodeId) or node.dht.table.get(nodeId)
    if known is not None:
        node.connections.connect(known.host, known.port, DIRECT).addErrback(
            lambda _: None)


def listeningAddress(node: Any) -> Any:
    """C{(host, port)} the node listens at (C{("", 0)} before it does)."""
    port = node.port
    host = port.getHost() if port is not None else None
    return (getattr(host, "host", ""), getattr(host, "port", 0))


def attachNatTraversal(node: Any) -> NatTraversal:
    """Reachability and connection upgrades for C{node}, wired in."""
    connections = node.connections
    dispatcher = connections.dispatcher
    reachability, news = attachReachability(
        connections, dispatcher, node.metrics, node.addressBook,
        lambda: node.listenPort, node.random,
        partial(_undialable, node))
    reachability.linkTo = partial(_linkTo, node)
    relaying = attachRelaying(node, reachability)
    rendezvous = Rendezvous(node.values, connections.ownAddress.verifier,
                            node.addressBook)
    node.reach.rendezvous = rendezvous

    def tellPeers() -> None:  # The relay advertised changed.
        news.tell()
        record = connections.ownAddress.relayedRecord(node.config.name)
        if record is not None and node.config.dht:
            rendezvous.publish(record)
    relayUse = RelayUse(connections.clock, connections.peers,
                        relaying.client.reserve,
                        lambda: reachability.state == PRIVATE, tellPeers)
    reachability.stateChanged.append(relayUse.check)
    connections.ownAddress.relays = relayUse
    node.direct.connectThrough = partial(connectThrough, connections,
                                         relaying.client)
    upgrade = DirectUpgrade(connections, reachability, dispatcher)
    punching = HolePunching(connections, reachability, node.network,
                            lambda: listeningAddress(node), upgrade,
                            dispatcher)
    connections.listeners += [relayUse, upgrade, punching]
    node.metrics.sources.append(upgrade.counters)
    node.listening.addCallback(allowPortReuse)
    return NatTraversal(reachability, relaying, relayUse, upgrade, punching)
