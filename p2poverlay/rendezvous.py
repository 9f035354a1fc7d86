"""
Meeting a node nobody can dial, through the DHT.

A private node is in nobody's routing table (it cannot be dialed), so a
lookup of its id cannot end at it, and peer exchange may take long to
carry its relayed record across a sparse overlay.  So it publishes that
record, as it signed it, as a DHT value under a key of its own id
(L{keyOf}); a node that looks it up in vain gets the value, checks that
the private node wrote it and signed the record, and reaches it through
the relay the record names.
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from p2poverlay.peeraddress import PeerAddress
from p2poverlay.wirejson import dumps, loads
from p2poverlay.wirevalues import MessageError

PREFIX = "p2p/relayed/"


def keyOf(nodeId: str) -> str:
    """The DHT key under which C{nodeId} publishes its relayed record."""
    return PREFIX + nodeId


class Rendezvous:
    """
    Publishes this node's relayed record, and finds other nodes' ones.

    @param values: the node's L{p2poverlay.dht.values.DHTValues}.
    @param verifier: checks address records (L{p2poverlay.signing}).
    @param book: the address book, which learns what is found.
    """

    log = Logger()

    def __init__(self, values: Any, verifier: Any, book: Any) -> None:
        self.values = values
        self.verifier = verifier
        self.book = book
        # The last record the DHT took: a lookup can find this node.
        self.published: Optional[PeerAddress] = None

    def publish(self, record: PeerAddress) -> None:
        """Store C{record} (this node's, through a relay) in the DHT."""
        d = self.values.put(keyOf(record.node_id), dumps(record.toDict()))

        def stored(_: Any) -> None:
            self.published = record

        d.addCallback(stored)
        d.addErrback(lambda failure: self.log.info(
            "relayed record not published: {why}",
            why=failure.getErrorMessage()))

    def find(self, nodeId: str) -> "Deferred[Optional[PeerAddress]]":
        """
        The relayed record C{nodeId} published, if the DHT holds one that
        checks; the address book learns it.
        """
        d = self.values.get(keyOf(nodeId))
        d.addCallback(lambda result: self._read(nodeId, result.records))
        return d.addErrback(lambda _: None)

    def _read(self, nodeId: str, records: Any) -> Optional[PeerAddress]:
        for record in records:
            if record.writer != nodeId:
                continue  # Only the node itself says where it is.
            try:
                address = PeerAddress.fromDict("relayed record",
                                               loads(record.value))
            except (MessageError, ValueError, RecursionError):
                continue
            if address.node_id != nodeId or not address.relay or \
                    self.verifier.checkAddress(address) is not None:
                continue
            self.book.learn(nodeId, address.host, address.port, address.name,
                            record=address)
            return address
        return None
