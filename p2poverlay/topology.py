"""
Topology: which nodes are this node's neighbours.

A node keeps between C{minPeers} and C{maxPeers} neighbour connections.
Below the minimum it dials nodes picked at random from its address book
(those it has seen before first); a node that already has C{maxPeers}
neighbours turns a new one away with a sample of its address book (PEERS,
then BYE "full"), so that the newcomer finds nodes with room.  Every
C{exchangeInterval} it sends such a sample to one neighbour, which keeps
address books fresh (the samples are L{p2poverlay.exchange}'s).  No node
ends up holding everyone, and the graph stays close to a random regular
one.

Direct messages to a node that is not a neighbour go over a I{direct}
connection, dialed on demand (L{p2poverlay.directlinks}).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Set, Tuple

from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from p2poverlay.addressbook import AddressBook
from p2poverlay.addresses import formatAddress
from p2poverlay.directlinks import DirectLinks
from p2poverlay.config import NodeConfig
from p2poverlay.dispatch import Dispatcher
from p2poverlay.errors import DialLimit, PeerFull, SelfConnection
from p2poverlay.interfaces import ConnectionListener, IAdmission
from p2poverlay.limits import Misbehaviour, TokenBucket
from p2poverlay.exchange import PeerExchange
from p2poverlay.message import DIRECT, NEIGHBOUR, Hello, Peers
from p2poverlay.reasons import CloseReason, Departure, departure
from p2poverlay.records import DEAD, KNOWN, KnownPeer, PeerInfo
from p2poverlay.registry import PeerRegistry
from p2poverlay.signing import Verifier

if TYPE_CHECKING:
    from p2poverlay.connections import Connections
    from p2poverlay.protocol import PeerConnection

# How long a node that turned this one away ("full") is not dialed again;
# one that did not answer waits reconnectMaxDelay.
FULL_COOLDOWN = 30.0
# Addresses joined through that are kept to join through again.
MAX_SEEDS = 16
# Dials of learned addresses, node-wide, per second and at once: peer
# exchange cannot aim a node at a third party faster than this.
DIALS_PER_SECOND = 2.0
DIAL_BURST = 32.0
CANDIDATE_SAMPLE = 256  # book entries looked at to pick whom to dial


@implementer(IAdmission)
class Topology(ConnectionListener):
    """
    The neighbours of the node C{nodeId}: dials them, admits them, and
    exchanges addresses with them.

    @param isLinked: whether a node is being redialed already (the
        membership's links).
    @param awaitingAcks: whether a connection still waits for an answer
        (L{DirectLinks}); such a direct link is not closed.
    """

    log = Logger()

    def __init__(self, nodeId: str, config: NodeConfig, clock,
                 rng: random.Random, registry: PeerRegistry,
                 book: AddressBook, connections: "Connections",
                 misbehaviour: Misbehaviour, dispatcher: Dispatcher,
                 isLinked: Callable[[str], bool],
                 awaitingAcks: Callable[["PeerConnection"], bool],
                 verifier: Verifier) -> None:
        self.nodeId = nodeId
        self.config = config
        self.clock = clock
        self.random = rng
        self.peers = registry
        self.book = book
        self.connections = connections
        self.misbehaviour = misbehaviour
        self.isLinked = isLinked
        self.directLinks = DirectLinks(config, clock, registry, awaitingAcks)
        self.running = False
        self._dialing: Set[str] = set()
        # Where to join again when alone: --join, and every join() since.
        self.seeds: List[Tuple[str, int]] = [(host, port)
                                             for host, port in config.join]
        self._rejoinAt = 0.0
        self._rejoinCount = 0
        self._rejoinDelay = config.reconnectInitialDelay
        self._cooldown: Dict[str, float] = {}
        # Addresses that did not answer -> when they may be dialed again,
        # whichever node id claims them.
        self._unanswered: Dict[Tuple[str, int], float] = {}
        self._dialBudget = TokenBucket(DIALS_PER_SECOND, DIAL_BURST, clock)
        self.peerExchange = PeerExchange(nodeId, config, clock, rng, registry,
                                         book, verifier, self.schedule)
        self._maintainCall = None
        self._tick = LoopingCall(self._periodic)
        self._tick.clock = clock
        self._exchange = LoopingCall(self.exchange)
        self._exchange.clock = clock
        dispatcher.register(Peers, self.peersReceived)

    # -- life -------------------------------------------------------------

    def start(self) -> None:
        self.running = True
        self._tick.start(self.config.pingInterval, now=False)
        self._exchange.start(self.config.exchangeInterval, now=False)
        self.schedule()

    def stop(self) -> None:
        self.running = False
        for loop in (self._tick, self._exchange):
            if loop.running:
                loop.stop()
        if self._maintainCall is not None and self._maintainCall.active():
            self._maintainCall.cancel()
        self._maintainCall = None

    def _periodic(self) -> None:
        self.directLinks.closeIdle()
        self.maintain()

    # -- counting -----------------------------------------------------------

    def neighbours(self) -> List["PeerConnection"]:
        return self.peers.neighbours()

    @property
    def dialing(self) -> int:
        """How many neighbour dials are under way."""
        return len(self._dialing)

    def hasRoomFor(self, connection: "PeerConnection") -> bool:
        """May C{connection}, just through its handshake, be kept?"""
        if connection.role == DIRECT:
            return True
        return self.peers.neighbourCount() < self.config.maxPeers

    # -- keeping enough neighbours -------------------------------------------

    def schedule(self) -> None:
        """Look for neighbours soon (once, however often it is asked)."""
        if self._maintainCall is None and self.running:
            self._maintainCall = self.clock.callLater(0, self.maintain)

    def maintain(self) -> None:
        """Dial random known nodes while there are fewer than C{minPeers}."""
        if self._maintainCall is not None and self._maintainCall.active():
            self._maintainCall.cancel()
        self._maintainCall = None
        if not self.config.autoConnect or not self.running:
            return
        neighbours = self.peers.neighbourCount()
        if neighbours:
            self._rejoinDelay = self.config.reconnectInitialDelay
        missing = self.config.minPeers - neighbours - len(self._dialing)
        if missing <= 0:
            return
        candidates = self._candidates(missing)
        for entry in candidates:
            if not self._dialBudget.take():
                break  # The next tick dials more.
            self._dial(entry)
        if not (candidates or neighbours or self.connections.dialsInFlight):
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
        seeds = [seed for seed in self.seeds
                 if not self.connections.isSelf(*seed)]
        now = self.clock.seconds()
        if not seeds or now < self._rejoinAt:
            return
        host, port = seeds[self._rejoinCount % len(seeds)]
        self._rejoinCount += 1
        self._rejoinAt = now + self._rejoinDelay * self.random.uniform(1, 1.5)
        self._rejoinDelay = min(self._rejoinDelay * 2,
                                self.config.reconnectMaxDelay)
        self.log.info("no neighbours: joining again through {address}",
                      address=formatAddress(host, port))
        d = self.connections.connect(host, port)
        d.addErrback(lambda reason: self.log.info(
            "could not join through {address}: {why}",
            address=formatAddress(host, port), why=reason.getErrorMessage()))

    def _candidates(self, wanted: int) -> List[KnownPeer]:
        """
        Up to C{wanted} nodes to dial, at random; but the anchors (the
        outbound neighbours of the last run) first, then nodes known to be
        alive, then those seen before (a restarted node finds its old
        neighbours again), then nodes that did not answer last.  Nodes that
        turned this one away recently come only when nothing else is left.
        """
        now = self.clock.seconds()
        for nodeId, until in list(self._cooldown.items()):
            if until <= now:
                del self._cooldown[nodeId]
        for address, until in list(self._unanswered.items()):
            if until <= now:
                del self._unanswered[address]
        retryDead = now - self.config.reconnectMaxDelay
        entries = self.book.all()
        if len(entries) > CANDIDATE_SAMPLE:  # the anchors, and a random part
            picked = [self.book.get(n) for n in self.book.anchors()]
            picked += self.random.sample(entries, CANDIDATE_SAMPLE)
            entries = list({e.node_id: e for e in picked if e}.values())
        # A node linked directly only (a DHT request, a direct message) may
        # still become a neighbour: dialed as one, its link turns into one.
        # Only once the link is idle: messages in flight on it as it turns
        # would be sent again after newer ones.
        direct = {c.info.node_id for c in self.directLinks.idle(now)}
        candidates = [
            entry for entry in entries
            if (entry.state == KNOWN or entry.node_id in direct
                or entry.state == DEAD and entry.since <= retryDead)
            and entry.port and not entry.relayed
            and entry.node_id not in self._dialing
            and (entry.node_id not in self.peers or entry.node_id in direct)
            and not self.isLinked(entry.node_id)
            and (entry.host, entry.port) not in self._unanswered
            and not self.misbehaviour.isBanned(entry.host)
        ]
        self.random.shuffle(candidates)
        book = self.book
        candidates.sort(key=lambda entry: (
            book.isAnchor(entry.node_id),
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
        self.book.anchorDialed(entry.node_id)
        d = self.connections.connect(entry.host, entry.port)
        d.addCallbacks(self._dialed, self._dialFailed, errbackArgs=(entry,))
        d.addBoth(self._dialEnded, entry.node_id)

    def _dialed(self, info: PeerInfo) -> object:
        # A direct link made at that moment (a DHT request's dial, which
        # ours joined): dialed again, it turns into a neighbour.
        if info.role == DIRECT:
            return self.connections.connect(info.host, info.port)
        return info

    def _dialFailed(self, reason: Failure, entry: KnownPeer) -> None:
        book = self.book
        if reason.check(SelfConnection):
            book.forget(entry.node_id)
        elif reason.check(DialLimit):
            pass  # Never dialed: this node's own bound, not the peer's fault.
        elif reason.check(PeerFull):
            # Alive, only without room (it may have said so before HELLO).
            self.turnedAway(entry.node_id)
            self.peerExchange.saidFull(entry.node_id)
        else:
            self.log.debug("could not reach {address}: {why}",
                           address=entry.host, why=reason.getErrorMessage())
            current = book.get(entry.node_id)
            if current is not None and current.state in (KNOWN, DEAD):
                book.setState(entry.node_id, DEAD)
                self.avoid(entry.node_id, self.config.reconnectMaxDelay)
            # Every node id that names this address waits as long.
            self._unanswered[(entry.host, entry.port)] = \
                self.clock.seconds() + self.config.reconnectMaxDelay

    def _dialEnded(self, _, nodeId: str) -> None:
        self._dialing.discard(nodeId)
        self.schedule()

    def turnedAway(self, nodeId: str) -> None:
        """C{nodeId} has no room for this node (or this node for it)."""
        self.avoid(nodeId, FULL_COOLDOWN)
        self.schedule()

    def avoid(self, nodeId: str, seconds: float) -> None:
        """Do not dial C{nodeId} as a neighbour for C{seconds}."""
        self._cooldown[nodeId] = self.clock.seconds() + seconds

    # -- peer exchange --------------------------------------------------------

    def exchange(self) -> None:
        """Send one neighbour, picked at random, a sample of known nodes."""
        neighbours = [c for c in self.neighbours() if not c.closing]
        if neighbours:
            connection = self.random.choice(neighbours)
            self.peerExchange.sendSample(connection)

    # -- what the connections report -----------------------------------------

    def turnAwaySample(self, connection: "PeerConnection",
                       hello: Hello) -> Peers:
        """The addresses a newcomer turned away is sent instead."""
        return self.peerExchange.turnAwaySample(connection, hello)

    def spareLink(self, inbound) -> Optional["PeerConnection"]:
        """The least recently used idle inbound direct link, if any."""
        return self.directLinks.spare(inbound)

    def peerAdded(self, info: PeerInfo, connection: "PeerConnection") -> None:
        # The accepting side's PEERS, right after its HELLO, is the verdict
        # "accepted" (empty on a direct link): see docs/protocol.rst.
        if connection.role == NEIGHBOUR:
            self.peerExchange.newNeighbour(info, connection)
        elif not connection.outbound:
            connection.sendMessage(Peers(()))

    def roleChanged(self, nodeId: str, old: Optional[str], new: str) -> None:
        if old != new and new == DIRECT:
            self.directLinks.makeRoom()

    def peerTurnedAway(self, hello: Hello, host: str) -> None:
        self.turnedAway(hello.node_id)

    def peerRemoved(self, info: PeerInfo, connection: "PeerConnection",
                    reason: CloseReason) -> None:
        self.peerExchange.peerGone(info.node_id)
        if not self.running:
            return
        gone = departure(reason, connection.role, info.port)
        if gone is Departure.TURNED_AWAY:
            self.turnedAway(info.node_id)
            if reason.remote:
                self.peerExchange.saidFull(info.node_id)
        elif gone is Departure.BANISHED:
            # Not to be dialed again until it is forgotten.
            self.avoid(info.node_id, self.config.forgetAfter)
        self.schedule()

    def peersReceived(self, connection: "PeerConnection",
                      message: Peers) -> None:
        """Peer exchange: remember the nodes a neighbour told of."""
        if self.running:
            self.peerExchange.peersReceived(connection, message)
