"""
Reachability, wired into a node: its observations, its dial-backs and the
service of dialing its peers back (L{p2poverlay.reachability},
L{p2poverlay.dialback}).
"""

from __future__ import annotations

from typing import Any, Callable

from p2poverlay.addressnews import AddressNews
from p2poverlay.dialback import DialBackServer, probeThrough
from p2poverlay.natwire import Address, DialBackRequest, DialBackResult
from p2poverlay.reachability import Reachability


def attachReachability(connections: Any, dispatcher: Any, metrics: Any,
                       book: Any, listenPort: Callable[[], int], rng: Any
                       ) -> Reachability:
    """
    A L{Reachability} for the node whose L{p2poverlay.connections.Connections}
    these are: it hears their HELLOs, decides what their own HELLOs
    advertise (and tells the peers when that changes: L{AddressNews}), and
    its peers' dial-back requests are served.
    """
    reachability = Reachability(connections.clock, connections.peers,
                                listenPort, rng)
    server = DialBackServer(connections.clock, probeThrough(connections))
    dispatcher.register(DialBackRequest, server.requestReceived)
    dispatcher.register(DialBackResult, reachability.resultReceived)
    news = AddressNews(connections, book, connections.ownAddress.verifier,
                       lambda: reachability.advertised() != (True, None))
    dispatcher.register(Address, news.received)
    reachability.advertisedChanged.append(news.tell)
    connections.listeners.append(news)
    connections.reachability = reachability
    connections.ownAddress.reachability = reachability
    metrics.sources += [reachability.counters, server.counters]
    return reachability
