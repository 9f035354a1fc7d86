"""Joining the overlay through one member, and saying how it went."""

from __future__ import annotations

from typing import Optional

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from p2poverlay.addresses import formatAddress
from p2poverlay.errors import SelfConnection
from p2poverlay.records import PeerInfo

log = Logger("p2poverlay.node")


def joinThrough(connections, host: str, port: int,
                nodeId: Optional[str] = None) -> "Deferred[PeerInfo]":
    """
    Connect to the member at C{host:port} (which must be C{nodeId}, if
    given; else the first node met there over TLS is trusted from then
    on), and log the outcome.
    """
    pins = connections.pins
    if nodeId is not None:
        pins.pin(host, port, nodeId)
    d = connections.connect(host, port)

    def joined(peer: PeerInfo) -> PeerInfo:
        log.info("joined the overlay through {peer}, key {key}",
                 peer=peer.describe(), key=peer.fingerprint)
        pins.trustFirstMet(host, port, peer)
        return peer

    def failed(reason: Failure) -> Failure:
        if reason.check(SelfConnection):
            log.warn("not joining {address}: that address is this node "
                     "itself", address=formatAddress(host, port))
        else:
            log.error("could not join {address}: {why}",
                      address=formatAddress(host, port),
                      why=reason.getErrorMessage())
        return reason

    return d.addCallbacks(joined, failed)


def joinConfigured(node) -> None:
    """Have C{node} join through every address its configuration names."""
    for host, port in node.config.join:
        # join() logs a failure; a node that cannot join keeps serving.
        node.join(host, port, node.connections.pins.pinnedAt(host, port)
                  ).addErrback(lambda _: None)
