"""
Peer exchange: the samples of the address book a node sends (PEERS), and
what it learns from those it is sent.

A sample is sent to every new neighbour (the accepting side's is its
verdict "accepted", see docs/protocol.rst), to every newcomer turned away
for want of room, and every C{exchangeInterval} to one neighbour.  Its
size follows the recipient's need, as its HELLO said: twice as many
addresses as it lacks neighbours, at least L{SATED_SHARE} of a full one (a
node with its C{minPeers} dials nobody); a node in need gets nodes in need
among them (L{NodesInNeed}), which have room and want neighbours.  No
sample tells of the nodes that said they were full.  What is learned is
checked (only what a node signed counts for it) and rate limited per
sender.
"""

from __future__ import annotations

import random
from itertools import islice
from typing import TYPE_CHECKING, Callable, Dict, List, Optional

from p2poverlay.addressbook import AddressBook
from p2poverlay.addresses import isLoopback
from p2poverlay.admission import isLocal
from p2poverlay.config import NodeConfig
from p2poverlay.limits import TokenBucket
from p2poverlay.message import NEIGHBOUR, UNSAID, Hello, Peers
from p2poverlay.needy import NodesInNeed
from p2poverlay.ownaddress import recordOf
from p2poverlay.peeraddress import PeerAddress
from p2poverlay.records import CONNECTED, KNOWN, KnownPeer, PeerInfo
from p2poverlay.registry import PeerRegistry
from p2poverlay.signing import Verifier, isKeyed

if TYPE_CHECKING:
    from p2poverlay.protocol import PeerConnection

EXCHANGE_SAMPLE = 16  # addresses in one PEERS (an eighth of a default book)
# A node that connects is sent twice as many addresses as it lacks
# neighbours, and at least this share of a sample: one with its minPeers
# dials nobody, and peer exchange keeps its book fresh.
SATED_SHARE = 0.25
# Of a sample sent to a node in need, at most this share are nodes in
# need themselves (the rest comes from the address book, at random).
NEEDY_SHARE = 0.5
# How long a node that said it was full is left out of samples.
FULL_TIME = 30.0
# Addresses learned from one peer, per second and at once (Bitcoin Core
# takes 0.1/s; peer exchange here sends 16 every exchangeInterval).
LEARNED_PER_SECOND = 10.0
LEARNED_BURST = 1000.0


class PeerExchange:
    """
    The peer exchange of the node C{nodeId}.

    @param learned: called after a PEERS was read (the topology looks for
        neighbours among what it brought).
    """

    def __init__(self, nodeId: str, config: NodeConfig, clock,
                 rng: random.Random, registry: PeerRegistry,
                 book: AddressBook, verifier: Verifier,
                 learned: Callable[[], None]) -> None:
        self.nodeId = nodeId
        self.config = config
        self.clock = clock
        self.random = rng
        self.peers = registry
        self.book = book
        self.verifier = verifier
        self.learned = learned
        self.needy = NodesInNeed(clock, config.minPeers)
        # Nodes that said they were full -> until when they are left out
        # of samples (a newcomer would only be turned away again).
        self._saidFull: Dict[str, float] = {}
        self._learnBudget: Dict[str, TokenBucket] = {}

    # -- sending ---------------------------------------------------------------

    def sample(self, recipient: str, recipientHost: str,
               neighbours: int = UNSAID) -> Peers:
        """
        Up to L{EXCHANGE_SAMPLE} addresses of live nodes, at random.

        @param neighbours: how many neighbours the recipient said it has
            (if it said): it gets twice as many addresses as it lacks, at
            least L{SATED_SHARE} of a sample, and if it lacks any, nodes in
            need among them (L{NodesInNeed}).
        """
        recipientIsLoopback = isLoopback(recipientHost)
        now = self.clock.seconds()
        for nodeId in [k for k, t in self._saidFull.items() if t <= now]:
            del self._saidFull[nodeId]
        saidFull = self._saidFull

        def eligible(e: KnownPeer) -> bool:
            # Only what a node signed counts for it: none other is sent.
            return bool(e.state in (CONNECTED, KNOWN) and e.port
                        and e.node_id != recipient
                        and e.node_id not in saidFull
                        and (e.record is not None or not isKeyed(e.node_id))
                        and (recipientIsLoopback
                             or not isLoopback(e.advertisedHost)))

        def eligibleInNeed(address: PeerAddress) -> bool:
            return bool(address.node_id != recipient
                        and (recipientIsLoopback
                             or not isLoopback(address.host)))

        size = min(EXCHANGE_SAMPLE, self.config.maxPeersPerExchange)
        chosen: List[PeerAddress] = []
        if neighbours != UNSAID:
            lacking = self.config.minPeers - neighbours
            size = min(size, max(2 * lacking, int(size * SATED_SHARE), 1))
            if lacking > 0:
                chosen = self.needy.take(int(size * NEEDY_SHARE),
                                         eligibleInNeed, self.random)
        told = {a.node_id for a in chosen}
        # Random entries until enough are eligible, never more than a few
        # times as many: this runs for every new neighbour, and for every
        # newcomer turned away.
        for entry in islice(self.book.randomEntries(self.random), 8 * size):
            if len(chosen) >= size:
                break
            if eligible(entry) and entry.node_id not in told:
                chosen.append(entry.peerAddress())
        return Peers(tuple(chosen))

    def sendSample(self, connection: "PeerConnection",
                   peer: Optional[PeerInfo] = None, evenEmpty: bool = False,
                   neighbours: int = UNSAID) -> None:
        """
        Send a sample of known nodes to C{peer} over C{connection}.

        @param neighbours: how many neighbours C{peer} said it has (see
            L{sample}).
        """
        peer = peer or connection.info
        message = self.sample(peer.node_id, peer.host, neighbours)
        if message.peers or evenEmpty:
            connection.sendMessage(message)

    def newNeighbour(self, info: PeerInfo,
                     connection: "PeerConnection") -> None:
        """Send the new neighbour its sample; remember it if in need."""
        count = connection.neighbourCount
        self.sendSample(connection, info, evenEmpty=not connection.outbound,
                        neighbours=count)
        # It has this node now, as well as those it said.
        self._heardNeed(connection, info.node_id, info.record, info.host,
                        info.port, info.name,
                        count + 1 if count != UNSAID else UNSAID)

    def turnAwaySample(self, connection: "PeerConnection",
                       hello: Hello) -> Peers:
        """
        The addresses a newcomer turned away is sent instead; from then
        on, it is told of to other nodes in need, if it is one.
        """
        sample = self.sample(hello.node_id, connection.remoteHost,
                             hello.neighbours)
        self._heardNeed(connection, hello.node_id,
                        self.verifier.shared(recordOf(hello)),
                        connection.remoteHost, hello.port, hello.name,
                        hello.neighbours)
        return sample

    def _heardNeed(self, connection: "PeerConnection", nodeId: str,
                   record: Optional[PeerAddress], host: str, port: int,
                   name: str, neighbours: int) -> None:
        """The node C{nodeId} said in its HELLO that it has C{neighbours};
        only what it signed is told of for a node with a key."""
        if neighbours == UNSAID or connection.role != NEIGHBOUR:
            return
        if record is None:
            if isKeyed(nodeId):
                return
            record = PeerAddress(nodeId, host, port, name)
        self.needy.heard(record, neighbours, connection.remoteHost,
                         isLocal(connection))

    def saidFull(self, nodeId: str) -> None:
        """C{nodeId} turned this node away for want of room."""
        self._saidFull[nodeId] = self.clock.seconds() + FULL_TIME

    def peerGone(self, nodeId: str) -> None:
        """C{nodeId} is no longer a peer."""
        self._learnBudget.pop(nodeId, None)
        self.needy.forget(nodeId)

    # -- receiving -------------------------------------------------------------

    def peersReceived(self, connection: "PeerConnection",
                      message: Peers) -> None:
        """Remember the nodes a neighbour told of."""
        sender = connection.info.node_id
        budget = self._learnBudget.get(sender)
        if budget is None:
            budget = self._learnBudget[sender] = TokenBucket(
                LEARNED_PER_SECOND, LEARNED_BURST, self.clock)
        entries = message.peers[:self.config.maxPeersPerExchange]
        book = self.book
        for index, entry in enumerate(entries):
            if not budget.take():
                # The rest of this peer's news can wait, and so can the
                # peer: it is read more slowly.
                connection.slowDown((len(entries) - index) / LEARNED_PER_SECOND)
                break
            if entry.node_id == self.nodeId or entry.node_id in self.peers:
                continue
            known = book.get(entry.node_id)
            if known is not None and not (entry.key and (
                    known.record is None or entry.seq > known.record.seq)):
                continue  # The book keeps what it has: nothing to check.
            if self.verifier.checkAddress(entry) is not None:
                continue  # An address its node did not sign counts for nothing.
            book.learn(entry.node_id, entry.host, entry.port, entry.name,
                       source=connection.info.host,
                       record=self.verifier.shared(entry) if entry.key
                       else None)
        self.learned()
