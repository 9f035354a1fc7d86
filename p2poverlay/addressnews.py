"""
Address news: a node tells the peers it is connected to when what it
advertises changes (L{p2poverlay.natwire.Address}), and hears theirs.

A node learns only after its first handshakes whether others can dial it
(L{p2poverlay.reachability}); its first peers heard a listening port in
its HELLO that may lead nowhere.  The news reaches them, and through them
peer exchange and the address book: a withdrawn address (port 0) is told
of to nobody and dialed by nobody.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, List

from p2poverlay.records import CONNECTED
from p2poverlay.interfaces import ConnectionListener
from p2poverlay.message import PROBE, Peers
from p2poverlay.natwire import Address
from p2poverlay.peeraddress import PeerAddress
from p2poverlay.signing import isKeyed


# Neighbours told at once of a peer's new relayed record.
SPREAD = 8


class AddressNews(ConnectionListener):
    """
    Sends and hears L{Address} news: to every peer when the node's
    advertisement changes, and to each new peer while it differs from
    what a HELLO said before reachability was known (a HELLO sent before
    a change may be answered after it).

    @param connections: the node's L{p2poverlay.connections.Connections}.
    @param book: its L{p2poverlay.addressbook.AddressBook}.
    @param verifier: checks peers' signed records
        (L{p2poverlay.signing.Verifier}).
    """

    def __init__(self, connections: Any, book: Any, verifier: Any,
                 changed: Callable[[], bool]) -> None:
        """
        @param changed: whether the node advertises other than it did
            before it knew its reachability.
        """
        self.connections = connections
        self.book = book
        self.verifier = verifier
        self.changed = changed
        # Told the id of a peer nobody can dial directly any more (the
        # DHT's table drops it: its contacts are dialed).
        self.undialable: List[Callable[[str], object]] = []

    def tell(self) -> None:
        """Say this node's address, as a HELLO would now, on every link."""
        for connection in self.connections.peers.connections():
            self._tell(connection)

    def peerReached(self, info: Any, connection: Any) -> None:
        if self.changed():
            self._tell(connection)

    def _tell(self, connection: Any) -> None:
        if connection.closing or connection.role == PROBE:
            return
        hello = self.connections.helloFor(connection)
        relayed = (self.connections.ownAddress.relayedRecord(hello.name)
                   if not hello.port else None)
        if relayed is not None:
            news = Address(relayed.port, relayed.host, relayed.seq,
                           relayed.key, relayed.signature, relayed.relay)
        else:
            news = Address(hello.port, hello.host, hello.seq, hello.key,
                           hello.signature)
        connection.sendMessage(news)

    def received(self, connection: Any, news: Address) -> None:
        """A peer's news of its own address."""
        info = connection.info
        record = None
        if news.key:
            record = PeerAddress(info.node_id, news.host, news.port,
                                 info.name, news.seq, news.key,
                                 news.signature, news.relay)
            wrong = self.verifier.checkAddress(record)
            if wrong is not None:
                connection.protocolError(f"address record {wrong}")
                return
            if info.record is not None and record.seq <= info.record.seq:
                return  # Older than what it said before.
            record = self.verifier.shared(record)
        elif news.port and isKeyed(info.node_id):
            connection.protocolError("ADDRESS from a node with a key "
                                     "lacks its signed record")
            return
        # Reached through a relay, it still cannot be dialed itself; the
        # book keeps the relay's address, for those who can use it.
        updated = replace(info, port=0 if news.relay else news.port,
                          record=record)
        connection.peer = updated
        if self.connections.peers.connection(info.node_id) is connection:
            self.connections.peers.add(updated, connection)
        self.book.update(info.node_id,
                         news.host if news.relay else info.host, news.port,
                         info.name, CONNECTED, record=record)
        if updated.port == 0:
            for tell in self.undialable:
                tell(info.node_id)
        if record is not None and record.relay:
            self._spread(record, connection)

    def _spread(self, record: PeerAddress, source: Any) -> None:
        """
        Pass a peer's new relayed record on to this node's neighbours at
        once: peer exchange alone would take minutes to carry it, and a
        node behind a NAT is found by it or not at all.
        """
        news = Peers((record,))
        for neighbour in self.connections.peers.neighbours()[:SPREAD]:
            if neighbour is not source and not neighbour.closing:
                neighbour.sendMessage(news)
