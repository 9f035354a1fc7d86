"""
Direct messages to any node by its id: those this node never heard of are
found by a DHT lookup first.

A target that is a peer, a node of the address book, a name or an address
goes straight to L{p2poverlay.direct.DirectMessages}; a full node id that
is none of these is looked up (L{Kademlia.findNode}), reached over a
direct link, and sent to.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure

from p2poverlay.addressbook import AddressBook
from p2poverlay.dht.lookup import LookupResult
from p2poverlay.dht.service import Kademlia
from p2poverlay.direct import DirectMessages
from p2poverlay.errors import PeerUnreachable, UnknownPeer
from p2poverlay.message import DIRECT
from p2poverlay.records import PeerInfo
from p2poverlay.registry import PeerRegistry
from p2poverlay.wirevalues import isNodeId

Sent = Tuple[PeerInfo, Optional[LookupResult]]


class Reach:
    """Sends direct messages, looking unknown node ids up first."""

    def __init__(self, direct: DirectMessages, dht: Kademlia,
                 registry: PeerRegistry, book: AddressBook,
                 connect) -> None:
        self.direct = direct
        self.dht = dht
        self.peers = registry
        self.book = book
        self.connect = connect
        # Finds the relayed record of a node no lookup can end at
        # (p2poverlay.rendezvous), if the node has one.
        self.rendezvous: Any = None

    def needsLookup(self, target: str) -> bool:
        """Is C{target} a node id this node knows no way to yet?"""
        return isNodeId(target) and target != self.dht.nodeId and \
            target not in self.peers and self.book.get(target) is None

    def send(self, target: str, body: str) -> "Deferred[PeerInfo]":
        """L{DirectMessages.send}, after a lookup if L{needsLookup}."""
        return self.sendTelling(target, body).addCallback(lambda sent: sent[0])

    def sendTelling(self, target: str, body: str) -> "Deferred[Sent]":
        """
        As L{send}, and tell how the target was found.

        @return: fires with the recipient's L{PeerInfo} and the
            L{LookupResult} (L{None} when no lookup was needed).
        """
        if not self.needsLookup(target):
            d = self.direct.send(target, body)
            known = self.book.get(target) if self.rendezvous is not None \
                and isNodeId(target) and target not in self.peers else None
            if known is not None:
                d.addErrback(self._moved, target, body, known.record)
            return d.addCallback(lambda info: (info, None))
        return self.dht.findNode(target).addCallback(
            self._found, target, body)

    def _recordOf(self, target: str) -> Any:
        known = self.book.get(target)
        return known.record if known is not None else None

    def _moved(self, failure: Failure, target: str, body: str,
               tried: Any) -> "Deferred[PeerInfo]":
        """
        The address book's way to C{target} led nowhere (the message was
        not written): an address from before it was found private, or a
        relay that holds no reservation for it now.  If it published a
        newer relayed record, send once more, the way that one says.
        """
        failure.trap(PeerUnreachable)

        def found(address: Any) -> "Deferred[PeerInfo]":
            if address is None or self._recordOf(target) == tried:
                return fail(failure)
            return self.direct.send(target, body)
        return self.rendezvous.find(target).addCallback(found)

    def _found(self, result: LookupResult, target: str,
               body: str) -> "Deferred[Sent]":
        found = result.found
        if found is None:
            return self._throughRelay(result, target, body)

        def reached(info: PeerInfo) -> "Deferred[Sent]":
            if info.node_id != target:
                raise UnknownPeer(f"{found.host}:{found.port} is another "
                                  f"node now ({info.shortId})")
            return self.direct.send(target, body).addCallback(
                lambda delivered: (delivered, result))

        return self.connect(found.host, found.port, DIRECT).addCallback(
            reached)

    def _throughRelay(self, result: LookupResult, target: str,
                      body: str) -> "Deferred[Sent]":
        """No lookup ends at a node nobody can dial: its relayed record,
        if it published one, leads to it."""
        def unknown() -> UnknownPeer:
            return UnknownPeer(
                f"no node with id {target[:16]}... was found: the lookup "
                f"asked {result.asked} nodes in {result.rounds} rounds")
        if self.rendezvous is None:
            return fail(unknown())

        def found(address: Any) -> "Deferred[Sent]":
            if address is None:
                raise unknown()
            return self.direct.send(target, body).addCallback(
                lambda delivered: (delivered, result))
        return self.rendezvous.find(target).addCallback(found)
