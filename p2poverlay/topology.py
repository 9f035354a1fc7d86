"""
Topology: which nodes are this node's neighbours.

A node keeps between C{minPeers} and C{maxPeers} neighbour connections.
Below the minimum it dials nodes picked at random from its address book
(those it has seen before first); a node that already has C{maxPeers}
neighbours turns a new one away with a sample of its address book (PEERS,
then BYE "full"), so that the newcomer finds nodes with room.  Every
C{exchangeInterval} it sends such a sample to one neighbour, which keeps
address books fresh.  No node ends up holding everyone, and the graph stays
close to a random regular one.

Direct messages to a node that is not a neighbour go over a I{direct}
connection, dialed on demand: at most C{maxDirectLinks} of them, each
closed after C{directLinkIdle} seconds without a direct message.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Dict, List, Optional, Set, Tuple

from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from p2poverlay.records import CONNECTED, DEAD, KNOWN, KnownPeer
from p2poverlay.errors import PeerFull, SelfConnection
from p2poverlay.message import DIRECT, NEIGHBOUR, Peers
from p2poverlay.addresses import formatAddress, isLoopback
from p2poverlay.records import PeerInfo

if TYPE_CHECKING:
    from p2poverlay.node import Node
    from p2poverlay.protocol import PeerConnection

# Addresses sent in one PEERS message (within maxPeersPerExchange).
EXCHANGE_SAMPLE = 32
# How long a node that turned this one away ("full") is not dialed again;
# one that did not answer waits reconnectMaxDelay.
FULL_COOLDOWN = 30.0
# Addresses joined through that are kept to join through again.
MAX_SEEDS = 16
# Close reason of the one of two connections between a pair that goes.
DUPLICATE_CONNECTION = "duplicate connection"
# Close reason of a connection turned away for want of room.
FULL = "full"


def isTurnedAway(reason: str) -> bool:
    """Does this close reason mean "no room now", not "gone"?"""
    return reason == FULL or reason.startswith("too many ")


class Topology:
    log = Logger()

    def __init__(self, node: "Node", rng: Optional[random.Random] = None) -> None:
        self.node = node
        self.config = node.config
        self.random = rng or random.Random()
        self._dialing: Set[str] = set()
        # Where to join again when alone: --join, and every join() since.
        self.seeds: List[Tuple[str, int]] = [tuple(s) for s in node.config.join]
        self._rejoinAt = 0.0
        self._rejoinCount = 0
        self._rejoinDelay = node.config.reconnectInitialDelay
        self._cooldown: Dict[str, float] = {}
        self._maintainCall = None
        self._tick = LoopingCall(self._periodic)
        self._tick.clock = node.reactor
        self._exchange = LoopingCall(self.exchange)
        self._exchange.clock = node.reactor

    # -- life -------------------------------------------------------------

    def start(self) -> None:
        self._tick.start(self.config.pingInterval, now=False)
        self._exchange.start(self.config.exchangeInterval, now=False)
        self.schedule()

    def stop(self) -> None:
        for loop in (self._tick, self._exchange):
            if loop.running:
                loop.stop()
        if self._maintainCall is not None and self._maintainCall.active():
            self._maintainCall.cancel()
        self._maintainCall = None

    def _periodic(self) -> None:
        self.closeIdleDirectLinks()
        self.maintain()

    # -- counting -----------------------------------------------------------

    def neighbours(self) -> List["PeerConnection"]:
        return [c for c in self.node.peers.connections()
                if c.role == NEIGHBOUR]

    def directLinks(self) -> List["PeerConnection"]:
        return [c for c in self.node.peers.connections() if c.role == DIRECT]

    @property
    def dialing(self) -> int:
        """How many neighbour dials are under way."""
        return len(self._dialing)

    def hasRoomFor(self, connection: "PeerConnection") -> bool:
        """May C{connection}, just through its handshake, be kept?"""
        if connection.role == DIRECT:
            return True
        return len(self.neighbours()) < self.config.maxPeers

    # -- keeping enough neighbours -------------------------------------------

    def schedule(self) -> None:
        """Look for neighbours soon (once, however often it is asked)."""
        if self._maintainCall is None and self.node.running:
            self._maintainCall = self.node.reactor.callLater(0, self.maintain)

    def maintain(self) -> None:
        """Dial random known nodes while there are fewer than C{minPeers}."""
        if self._maintainCall is not None and self._maintainCall.active():
            self._maintainCall.cancel()
        self._maintainCall = None
        node = self.node
        if not self.config.autoConnect or node._stopping or not node.running:
            return
        neighbours = len(self.neighbours())
        if neighbours:
            self._rejoinDelay = self.config.reconnectInitialDelay
        missing = self.config.minPeers - neighbours - len(self._dialing)
        if missing <= 0:
            return
        candidates = self._candidates(missing)
        for entry in candidates:
            self._dial(entry)
        if not (candidates or neighbours or node._dials):
            self._rejoin()

    def addSeed(self, host: str, port: int) -> None:
        """Remember an address to join through again (the last 16 kept)."""
        if (host, port) not in self.seeds:
            self.seeds.append((host, port))
            del self.seeds[:-MAX_SEEDS]

    def _rejoin(self) -> None:
        """
        Alone, with nobody left to dial (the seed was full or down, every
        node learned is gone): try the addresses joined through again, in
        turn, with a wait that doubles up to C{reconnectMaxDelay}.
        """
        node = self.node
        seeds = [seed for seed in self.seeds
                 if seed not in node._selfAddresses]
        now = node.reactor.seconds()
        if not seeds or now < self._rejoinAt:
            return
        host, port = seeds[self._rejoinCount % len(seeds)]
        self._rejoinCount += 1
        self._rejoinAt = now + self._rejoinDelay * self.random.uniform(1, 1.5)
        self._rejoinDelay = min(self._rejoinDelay * 2,
                                self.config.reconnectMaxDelay)
        self.log.info("no neighbours: joining again through {address}",
                      address=formatAddress(host, port))
        d = node.connect(host, port)
        d.addErrback(lambda reason: self.log.info(
            "could not join through {address}: {why}",
            address=formatAddress(host, port), why=reason.getErrorMessage()))

    def _candidates(self, wanted: int) -> List[KnownPeer]:
        """
        Up to C{wanted} nodes to dial, at random; but nodes known to be
        alive first, then those seen before (a restarted node finds its old
        neighbours again), then nodes that did not answer last.  Nodes that
        turned this one away recently come only when nothing else is left.
        """
        node = self.node
        now = node.reactor.seconds()
        for nodeId, until in list(self._cooldown.items()):
            if until <= now:
                del self._cooldown[nodeId]
        retryDead = now - self.config.reconnectMaxDelay
        candidates = [
            entry for entry in node.membership.book.all()
            if (entry.state == KNOWN
                or entry.state == DEAD and entry.since <= retryDead)
            and entry.port
            and entry.node_id not in self._dialing
            and entry.node_id not in node.peers
            and entry.node_id not in node.membership.links
            and not node.misbehaviour.isBanned(entry.host)
        ]
        self.random.shuffle(candidates)
        candidates.sort(key=lambda entry: (
            entry.node_id not in self._cooldown, entry.state == KNOWN,
            entry.last_seen > 0), reverse=True)
        fresh = [e for e in candidates[:wanted]
                 if e.node_id not in self._cooldown]
        if len(fresh) == wanted:
            return fresh
        # Only nodes that said "full" (or will not answer) are left: try
        # the ones that said "full" again, at most once a tick each.
        return fresh + [e for e in candidates[len(fresh):wanted]
                        if e.state == KNOWN
                        and self._cooldown[e.node_id] - FULL_COOLDOWN
                        <= now - self.config.pingInterval]

    def _dial(self, entry: KnownPeer) -> None:
        self._dialing.add(entry.node_id)
        d = self.node.connect(entry.host, entry.port)
        d.addErrback(self._dialFailed, entry)
        d.addBoth(self._dialEnded, entry.node_id)

    def _dialFailed(self, reason: Failure, entry: KnownPeer) -> None:
        book = self.node.membership.book
        if reason.check(SelfConnection):
            book.forget(entry.node_id)
        elif reason.check(PeerFull):
            pass  # Alive, only without room: the node has set a cooldown.
        else:
            self.log.debug("could not reach {address}: {why}",
                           address=entry.host, why=reason.getErrorMessage())
            current = book.get(entry.node_id)
            if current is not None and current.state in (KNOWN, DEAD):
                book.setState(entry.node_id, DEAD)
                self.avoid(entry.node_id, self.config.reconnectMaxDelay)

    def _dialEnded(self, _, nodeId: str) -> None:
        self._dialing.discard(nodeId)
        self.schedule()

    def turnedAway(self, nodeId: str) -> None:
        """C{nodeId} has no room for this node (or this node for it)."""
        self.avoid(nodeId, FULL_COOLDOWN)
        self.schedule()

    def avoid(self, nodeId: str, seconds: float) -> None:
        """Do not dial C{nodeId} as a neighbour for C{seconds}."""
        self._cooldown[nodeId] = self.node.reactor.seconds() + seconds

    # -- peer exchange --------------------------------------------------------

    def sample(self, recipient: str, recipientHost: str) -> Peers:
        """Up to L{EXCHANGE_SAMPLE} addresses of live nodes, at random."""
        recipientIsLoopback = isLoopback(recipientHost)

        def eligible(e: KnownPeer) -> bool:
            return (e.state in (CONNECTED, KNOWN) and e.port
                    and e.node_id != recipient
                    and (recipientIsLoopback or not isLoopback(e.host)))

        size = min(EXCHANGE_SAMPLE, self.config.maxPeersPerExchange)
        book = self.node.membership.book.all()
        # Most of the book is eligible: look at a few random entries
        # rather than all of them (this runs for every new neighbour).
        picks = self.random.sample(book, min(len(book), 4 * size))
        chosen = [e for e in picks if eligible(e)]
        if len(chosen) < size and len(picks) < len(book):
            chosen = [e for e in book if eligible(e)]
        chosen = self.random.sample(chosen, min(size, len(chosen)))
        return Peers(tuple(e.peerAddress() for e in chosen))

    def exchange(self) -> None:
        """Send one neighbour, picked at random, a sample of known nodes."""
        neighbours = [c for c in self.neighbours() if not c.closing]
        if neighbours:
            connection = self.random.choice(neighbours)
            self.sendSample(connection)

    def sendSample(self, connection: "PeerConnection",
                   peer: Optional[PeerInfo] = None) -> None:
        """Send a sample of known nodes to C{peer} over C{connection}."""
        peer = peer or connection.peer
        message = self.sample(peer.node_id, peer.host)
        if message.peers:
            connection.sendMessage(message)

    # -- direct links ---------------------------------------------------------

    def closeIdleDirectLinks(self) -> None:
        now = self.node.reactor.seconds()
        for connection in self.directLinks():
            if now - connection.lastUsed >= self.config.directLinkIdle \
                    and not connection.awaitingAcks:
                connection.close("idle direct link")

    def makeRoomForDirectLink(self) -> None:
        """Close the least recently used direct links beyond the bound."""
        links = [c for c in self.directLinks() if not c.closing]
        excess = len(links) - self.config.maxDirectLinks
        if excess <= 0:
            return
        idle = sorted((c for c in links if not c.awaitingAcks),
                      key=lambda c: c.lastUsed)
        for connection in idle[:excess]:
            connection.close("too many direct links")
