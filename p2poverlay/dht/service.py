"""
Routing by id: one node's part in the Kademlia DHT.

L{Kademlia} keeps the node's L{RoutingTable} filled with the nodes it
hears from itself (its links, and nodes that answer its requests), serves
other nodes' C{FIND_NODE}, and runs lookups (L{p2poverlay.dht.lookup}).
A node joins the DHT as the paper says: once it has a first link, it
looks up its own id (ended by L{BETA_CLOSEST}), then a random id in each
of its buckets (those lookups wait L{JOIN_BUCKETS_DELAY}).  A bucket no
lookup went into for C{dhtRefreshInterval} is refreshed the same way: a
lookup for a random id in its own range.
"""

from __future__ import annotations

import random
from typing import Callable, List, Optional, Set, Tuple

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from p2poverlay.config import NodeConfig
from p2poverlay.dht.keyspace import dhtIdOf, randomIdIn
from p2poverlay.dht.lookup import (
    BETA_CLOSEST, FIND_TARGET, Ask, EndRule, Lookup, LookupResult,
)
from p2poverlay.dht.routing import Contact, RoutingTable
from p2poverlay.dht.rpc import DHTRequests
from p2poverlay.dht.wire import ANSWERS, REQUESTS, FindNode, Nodes
from p2poverlay.dispatch import Dispatcher
from p2poverlay.errors import (
    DialLimit, ForgedRecord, LookupFailed, TooManyLookups,
)
from p2poverlay.interfaces import ConnectionListener
from p2poverlay.peeraddress import PeerAddress
from p2poverlay.queries import Queries
from p2poverlay.records import PeerInfo
from p2poverlay.registry import PeerRegistry
from p2poverlay.signing import Verifier

# Requests a contact may leave unanswered in a row before it leaves the
# table (the oldest asked about for a newcomer leaves at its first).
MISSES = 2
# A join whose own lookup found fewer than k nodes (its first link knew
# few) looks again, this many times at most, this many seconds apart.
JOIN_RETRIES = 5
JOIN_RETRY_DELAY = 5.0
# A join looks into its buckets half to all of this many seconds after
# its own lookup.  The own lookup makes the node findable; the bucket
# lookups only fill its table, and made later they find more of the
# network: when many nodes join at once (an overlay forming, a network
# back after an outage), those joining after this one are in it then,
# and meanwhile the CPU goes to the overlay's links and the own lookups.
JOIN_BUCKETS_DELAY = 60.0
# The node's own upkeep (joining, refreshing) runs one lookup at a time.
# Its lookups for its own id end once the BETA nearest have answered (they
# must hear of it) and its table holds k nodes (so that it splits).  Those
# that refresh a bucket ask at most this many times alpha nodes.
UPKEEP_BUDGET = 2
# A lookup for a node asks this many times alpha of the nearest nodes it
# knows at once: the more of them asked first, the likelier one of them
# names the target in its answer.
FIRST_ROUND = 2


def contactOf(info: PeerInfo, now: float) -> Optional[Contact]:
    """The contact of a linked peer, if it listens and serves the DHT."""
    if not info.port or not info.dht:
        return None
    record = info.record
    host = record.host if record is not None else info.host
    return Contact(info.node_id, host, info.port, now, record)


def addressOf(contact: Contact) -> PeerAddress:
    """How an answer names C{contact}: its own signed record if it has one."""
    if isinstance(contact.record, PeerAddress):
        return contact.record
    return PeerAddress(contact.nodeId, contact.host, contact.port)


class Kademlia(ConnectionListener):
    """
    The DHT of one node.

    @param connect: see L{DHTRequests}.
    @param verifier: checks the signed records that answers carry.
    @param requests: how its requests travel (by default a L{DHTRequests}
        over links made with C{connect}, and C{queries}' connections).
    """

    log = Logger()

    def __init__(self, nodeId: str, config: NodeConfig, clock,
                 rng: random.Random, registry: PeerRegistry, connect,
                 dispatcher: Dispatcher, verifier: Verifier,
                 requests: Optional[DHTRequests] = None,
                 queries: Optional[Queries] = None) -> None:
        self.nodeId = nodeId
        self.config = config
        self.clock = clock
        self.random = rng
        self.peers = registry
        self.verifier = verifier
        self.table = RoutingTable(nodeId, config.dhtK, clock.seconds,
                                  config.dhtB)
        if requests is None:
            requests = DHTRequests(
                clock, registry, connect, config.dhtRequestTimeout,
                config.dhtRequestRate, config.dhtRequestBurst, queries)
        if queries is not None:
            queries.allow(REQUESTS, ANSWERS)
        self.requests = requests
        self.lookups = 0  # under way, the node's own upkeep included
        self.started = self.succeeded = 0
        self._pinging: Set[str] = set()
        # Called with each contact new to the table.
        self.contactAdded: List[Callable[[Contact], None]] = []
        self._upkeep: List[int] = []  # targets of upkeep lookups to run
        self._upkeepRunning = False
        self.joined = False  # its join has begun
        # Its own lookup has run: the nodes nearest it know of it, so that
        # lookups for it find it.
        self.findable = False
        self._joinRetries = 0
        # The join's bucket lookups: waiting (a delayed call), then the
        # targets of those not yet run.
        self._bucketsTimer: Optional[IDelayedCall] = None
        self._joinTargets: Optional[Set[int]] = None
        self._refresher = LoopingCall(self.refresh)
        self._refresher.clock = clock
        dispatcher.register(FindNode, self.findNodeReceived)
        dispatcher.register(Nodes, self.nodesReceived)

    # -- life -----------------------------------------------------------

    def start(self) -> None:
        if self.config.dht:
            self._refresher.start(self.config.dhtRefreshInterval / 4,
                                  now=False)

    def stop(self) -> None:
        if self._refresher.running:
            self._refresher.stop()
        if self._bucketsTimer is not None and self._bucketsTimer.active():
            self._bucketsTimer.cancel()
        self._upkeep.clear()
        self.requests.cancelAll()

    def counters(self) -> dict:
        """The DHT's counters and gauges, for L{p2poverlay.metrics}."""
        requests = self.requests
        return {"dht_contacts": len(self.table),
                "dht_lookups_running": self.lookups,
                "dht_lookups": self.started,
                "dht_lookups_succeeded": self.succeeded,
                "dht_requests_sent": requests.sent,
                "dht_requests_unanswered": requests.unanswered,
                "dht_requests_refused": requests.refused,
                **(requests.queries.counters() if requests.queries else {})}

    # -- who is in the table ---------------------------------------------

    def connectionClosed(self, connection, reason) -> None:
        self.requests.linkClosed(connection)

    def peerReached(self, info: PeerInfo, connection) -> None:
        contact = contactOf(info, self.clock.seconds())
        if contact is not None:
            self._heardFrom(contact)
        if not self.joined and self.config.dht:
            self.joined = True
            self._join()

    def _heardFrom(self, contact: Contact) -> None:
        """C{contact} proved its id to this node just now."""
        if not self.config.dht:
            # No table: a request that comes all the same names nobody.
            return
        new = not self.table.holds(contact)
        oldest = self.table.seen(contact)
        if new and self.table.holds(contact):
            for tell in self.contactAdded:
                tell(contact)
        if oldest is None or oldest.nodeId in self._pinging:
            return
        if self.peers.connection(oldest.nodeId) is not None:
            self.table.answered(oldest.nodeId)  # Its link says it is there.
            return
        # The oldest is asked, not the newcomer: old nodes tend to stay.
        self._pinging.add(oldest.nodeId)
        d = self._findNode(oldest, self.table.ownId)

        def answered(_: object) -> None:
            self.table.answered(oldest.nodeId)

        def silent(reason: Failure) -> None:
            if not reason.check(DialLimit):
                self.table.failed(oldest.nodeId)

        d.addCallbacks(answered, silent)
        d.addBoth(lambda _: self._pinging.discard(oldest.nodeId))

    # -- serving ------------------------------------------------------------

    def mayServe(self, connection) -> bool:
        """
        May a request from C{connection} be answered now (its peer's
        request rate)?  A peer served is one heard from over its own
        link: it enters the table, whichever request it made.
        """
        if not self.requests.mayServe(connection):
            return False
        contact = contactOf(connection.info, self.clock.seconds())
        if contact is not None:
            self._heardFrom(contact)
        return True

    def findNodeReceived(self, connection, message: FindNode) -> None:
        if self.mayServe(connection):
            connection.sendMessage(Nodes(message.rid, self.nearestAddresses(
                int(message.target, 16), connection.info.node_id)))

    def nearestAddresses(self, target: int, asker: str
                         ) -> Tuple[PeerAddress, ...]:
        """The k contacts nearest C{target} but C{asker}, as answers name them."""
        return tuple(addressOf(c) for c in self.table.closest(
            target, self.config.dhtK, exclude=(asker,)))

    def nodesReceived(self, connection, message: Nodes) -> None:
        self.requests.answerReceived(connection, message.rid, message)

    # -- asking -------------------------------------------------------------

    def ask(self, contact: Contact, make) -> "Deferred":
        """
        Send C{contact} the request C{make(rid)}; fires with its answer.
        A node that answers is one heard from; one that does not leaves
        the table.  A contact named by another node is asked only if its
        node signed the record it was named with (else L{ForgedRecord}).
        """
        if contact.unchecked is not None:
            why = self.verifier.checkAddress(contact.unchecked)
            if why is not None:
                return fail(ForgedRecord(f"the record naming "
                                         f"{contact.nodeId[:8]} {why}"))
            contact.unchecked = None
        d = self.requests.request(contact, make)

        def answered(result):
            answer, link = result
            self._heardFrom(contactOf(link.info, self.clock.seconds())
                            or contact)
            return answer

        def unanswered(reason: Failure) -> Failure:
            if not reason.check(DialLimit):  # Not asked: no miss of its.
                self.table.missed(contact.nodeId, MISSES)
            return reason

        return d.addCallbacks(answered, unanswered)

    def _findNode(self, contact: Contact, target: int
                  ) -> "Deferred[List[Contact]]":
        """Ask C{contact} for the nodes it knows nearest C{target}."""
        def named(answer) -> List[Contact]:
            if not isinstance(answer, Nodes):
                raise LookupFailed(f"{contact.nodeId[:8]} answered "
                                   f"{answer.TYPE}")
            return self.contactsIn(answer)

        return self.ask(contact, lambda rid: FindNode(rid, f"{target:064x}")
                        ).addCallback(named)

    def contactsIn(self, answer) -> List[Contact]:
        """
        The candidates an answer names.  Their records are checked only
        if they are asked (L{ask}): a lookup asks a few of the dozens
        named, and a signature costs more than the rest of an answer.
        """
        now = self.clock.seconds()
        named = []
        for entry in answer.nodes[:self.config.dhtK]:
            if entry.node_id == self.nodeId:
                continue
            contact = Contact(entry.node_id, entry.host, entry.port, now,
                              entry if entry.key else None)
            contact.unchecked = entry
            named.append(contact)
        return named

    # -- lookups --------------------------------------------------------------

    def lookup(self, target: int, targetNodeId: Optional[str] = None,
               endRule: EndRule = FIND_TARGET, upkeep: bool = False,
               ask: Optional[Ask] = None) -> "Deferred[LookupResult]":
        """
        Look C{target} up.  A lookup for a node (C{targetNodeId}) ends once
        it answers.

        @param ask: how to ask one node (by default C{FIND_NODE}).

        @raise TooManyLookups: (in the Deferred) if C{dhtMaxLookups} are
            under way.
        """
        if not self.config.dht:
            return fail(LookupFailed("routing by id is off on this node"))
        if not upkeep and self.lookups >= self.config.dhtMaxLookups:
            return fail(TooManyLookups(
                f"{self.lookups} lookups are under way already"))
        self.table.lookedUp(target)
        seeds = self.table.closest(target, self.config.dhtK)
        self.lookups += 1
        self.started += 1
        ownId = upkeep and target == self.table.ownId
        search = Lookup(
            target, seeds, ask or (lambda c: self._findNode(c, target)),
            k=self.config.dhtK, alpha=self.config.dhtAlpha,
            now=self.clock.seconds, ownNodeId=self.nodeId,
            targetNodeId=targetNodeId, endRule=BETA_CLOSEST if ownId else endRule,
            budget=(UPKEEP_BUDGET * self.config.dhtAlpha
                    if upkeep and not ownId else None),
            firstRound=(FIRST_ROUND * self.config.dhtAlpha
                        if targetNodeId is not None and
                        endRule is FIND_TARGET and not upkeep else 0),
            refill=lambda: self.table.closest(target, self.config.dhtK),
            enough=lambda: len(self.table) >= self.config.dhtK)

        def ended(result: LookupResult) -> LookupResult:
            self.lookups -= 1
            if result.found is not None or targetNodeId is None:
                self.succeeded += 1
            return result

        return search.start().addCallback(ended)

    def findNode(self, nodeId: str) -> "Deferred[LookupResult]":
        """Look the node C{nodeId} up; the result's C{found} is its contact."""
        connection = self.peers.connection(nodeId)
        if connection is not None and not connection.closing:
            contact = contactOf(connection.info, self.clock.seconds())
            if contact is not None:
                return succeed(LookupResult(dhtIdOf(nodeId), found=contact,
                                            closest=[contact], namedIn=0))
        return self.lookup(dhtIdOf(nodeId), nodeId)

    # -- upkeep -----------------------------------------------------------------

    @property
    def settled(self) -> bool:
        """Has every lookup of its join run: its own, then its buckets'?"""
        return self._joinTargets is not None and not self._joinTargets

    def _join(self) -> None:
        """Look this node's own id up; L{JOIN_BUCKETS_DELAY} later, a
        random id in every bucket (L{_lookIntoBuckets})."""
        self._upkeep.append(self.table.ownId)
        self._runUpkeep()

    def _lookIntoBuckets(self) -> None:
        """A random id in every bucket, every one it may split into
        (L{RoutingTable.farRanges}), as the table is now."""
        self._bucketsTimer = None
        targets = [randomIdIn(low, high, self.random)
                   for low, high in self.table.farRanges()]
        self._joinTargets = set(targets)
        self._upkeep.extend(targets)
        self._runUpkeep()

    def refresh(self) -> None:
        """
        Refresh, with a lookup in its range, each stale bucket; the one of
        this node's own id by a lookup of that id (so that the nodes
        nearest it, some of them new, hear of it).
        """
        if not self.joined:
            return
        own = self.table.bucketFor(self.table.ownId)
        for bucket in self.table.staleBuckets(self.config.dhtRefreshInterval):
            self._upkeep.append(self.table.ownId if bucket is own else
                                randomIdIn(bucket.low, bucket.high,
                                           self.random))
        self._runUpkeep()

    def _runUpkeep(self) -> None:
        if self._upkeepRunning or not self._upkeep:
            return
        target = self._upkeep.pop(0)
        self._upkeepRunning = True

        def next(result: object) -> None:
            self._upkeepRunning = False
            if self._joinTargets:
                self._joinTargets.discard(target)
            if target == self.table.ownId:
                self.findable = True
                if self._joinTargets is None and self._bucketsTimer is None \
                        and self._refresher.running:
                    self._bucketsTimer = self.clock.callLater(
                        JOIN_BUCKETS_DELAY * (0.5 + self.random.random() / 2),
                        self._lookIntoBuckets)
            if target == self.table.ownId and \
                    isinstance(result, LookupResult) and \
                    result.heard < self.config.dhtK and \
                    len(self.table) < self.config.dhtK and \
                    self._joinRetries < JOIN_RETRIES:
                # Joined through a node that knew next to nobody yet.
                self._joinRetries += 1
                self.clock.callLater(JOIN_RETRY_DELAY, self._retryJoin)
            self._runUpkeep()

        self.lookup(target, upkeep=True).addBoth(next)

    def _retryJoin(self) -> None:
        if self._refresher.running:
            self._upkeep.append(self.table.ownId)
            self._runUpkeep()
