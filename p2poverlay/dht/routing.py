"""
Kademlia's routing table: k-buckets over the XOR distance to this node.

A bucket holds at most C{k} contacts, least recently seen first.  The
bucket that covers this node's own id splits in two when it overflows, so
the table knows the ids near its own in detail and far ones coarsely.
With C{b} above 1 (the paper's accelerated lookups, section 4.2) a full
bucket away from the own id splits too, as long as its depth is not a
multiple of C{b}: the ids that leave the own id's prefix within one
group of C{b} bits are held in up to C{2^b - 1} buckets by their first
C{b} bits, as a digit of a base-C{2^b} id, so that each hop of a lookup
gains about C{b + log2 k} bits instead of C{log2 k}.  A full bucket that
cannot split keeps its old contacts, which have proved
they stay: the newcomer waits in the bucket's replacement cache while the
I{oldest} contact is asked whether it is still there (L{RoutingTable.seen}
names it), and takes its place only if it does not answer.

Only contacts this node has heard from itself belong here: the caller
adds a node once it has answered or spoken over an authenticated link,
never because another node named it.
"""

from __future__ import annotations

import bisect
import heapq
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable, Dict, Iterator, List, Optional, Tuple

from p2poverlay.dht.keyspace import ID_BITS, ID_SPACE, dhtIdOf

if TYPE_CHECKING:
    from p2poverlay.peeraddress import PeerAddress

DEFAULT_K = 20


class Contact:
    """
    A node of the routing table: its id, where it listens, and when it
    was last heard from.

    @ivar record: what the node itself signed of its address (a
        L{p2poverlay.peeraddress.PeerAddress}), handed on in answers; or
        L{None} for a node without a key.
    """

    __slots__ = ("nodeId", "dhtId", "host", "port", "lastSeen", "record",
                 "misses", "unchecked")

    def __init__(self, nodeId: str, host: str, port: int,
                 lastSeen: float = 0.0,
                 record: Optional["PeerAddress"] = None) -> None:
        self.nodeId = nodeId
        self.dhtId = dhtIdOf(nodeId)
        self.host = host
        self.port = port
        self.lastSeen = lastSeen
        self.record = record
        self.misses = 0  # requests unanswered since it was last heard from
        # The record another node named it with, not yet checked: it is,
        # before the contact is asked anything (most named never are).
        self.unchecked: Optional["PeerAddress"] = None

    def __repr__(self) -> str:
        return f"<Contact {self.nodeId[:8]} {self.host}:{self.port}>"


class KBucket:
    """The contacts whose ids fall in C{[low, high)}."""

    __slots__ = ("low", "high", "contacts", "replacements", "lastLookup")

    def __init__(self, low: int, high: int, lastLookup: float) -> None:
        self.low = low
        self.high = high
        # nodeId -> Contact, least recently seen first.
        self.contacts: "OrderedDict[str, Contact]" = OrderedDict()
        # Contacts waiting for a place, most recently seen last.
        self.replacements: "OrderedDict[str, Contact]" = OrderedDict()
        self.lastLookup = lastLookup

    def covers(self, dhtId: int) -> bool:
        return self.low <= dhtId < self.high

    @property
    def depth(self) -> int:
        """How many leading bits every id of the bucket shares."""
        return ID_BITS - (self.high - self.low).bit_length() + 1

    def oldest(self) -> Contact:
        return next(iter(self.contacts.values()))

    def __len__(self) -> int:
        return len(self.contacts)


class RoutingTable:
    """
    The k-buckets of the node with id C{nodeId}.

    @param k: contacts per bucket (and replacements kept per bucket).
    @param now: the clock, in seconds.
    @param b: bits of id a bucket away from the own id may cover beyond
        the prefix it shares with it (Kademlia's b; 1: only the bucket of
        the own id splits).
    """

    def __init__(self, nodeId: str, k: int = DEFAULT_K,
                 now: Callable[[], float] = lambda: 0.0,
                 b: int = 1) -> None:
        self.nodeId = nodeId
        self.ownId = dhtIdOf(nodeId)
        self.k = k
        self.b = b
        self._now = now
        self.buckets: List[KBucket] = [KBucket(0, ID_SPACE, now())]
        self._lows: List[int] = [0]

    def __len__(self) -> int:
        return sum(len(b) for b in self.buckets)

    def __contains__(self, nodeId: object) -> bool:
        return isinstance(nodeId, str) and self.get(nodeId) is not None

    def contacts(self) -> Iterator[Contact]:
        for bucket in self.buckets:
            yield from bucket.contacts.values()

    def bucketFor(self, dhtId: int) -> KBucket:
        """The bucket whose range holds C{dhtId}."""
        return self.buckets[bisect.bisect_right(self._lows, dhtId) - 1]

    def holds(self, contact: Contact) -> bool:
        """Is C{contact}'s node in a bucket (its id's place already known)?"""
        return contact.nodeId in self.bucketFor(contact.dhtId).contacts

    def get(self, nodeId: str) -> Optional[Contact]:
        return self.bucketFor(dhtIdOf(nodeId)).contacts.get(nodeId)

    def recordOf(self, nodeId: str) -> Optional["PeerAddress"]:
        """The signed address record of C{nodeId}'s contact, if any."""
        contact = self.get(nodeId)
        return contact.record if contact is not None else None

    def seen(self, contact: Contact) -> Optional[Contact]:
        """
        C{contact} was heard from just now: put it last in its bucket, or
        in the bucket's replacement cache if the bucket is full and cannot
        split.

        @return: the bucket's oldest contact when C{contact} had to wait:
            ask it whether it is still there, then call L{answered} or
            L{failed}; else L{None}.
        """
        if contact.nodeId == self.nodeId:
            return None
        contact.lastSeen = self._now()
        while True:
            bucket = self.bucketFor(contact.dhtId)
            known = bucket.contacts.get(contact.nodeId)
            if known is not None:
                known.host, known.port = contact.host, contact.port
                known.lastSeen = contact.lastSeen
                known.misses = 0
                if contact.record is not None:
                    known.record = contact.record
                bucket.contacts.move_to_end(contact.nodeId)
                return None
            if len(bucket) < self.k:
                bucket.contacts[contact.nodeId] = contact
                bucket.replacements.pop(contact.nodeId, None)
                return None
            if not self._maySplit(bucket):
                break
            self._split(bucket)
        waiting = bucket.replacements
        waiting[contact.nodeId] = contact
        waiting.move_to_end(contact.nodeId)
        if len(waiting) > self.k:
            waiting.popitem(last=False)
        return bucket.oldest()

    def answered(self, nodeId: str) -> None:
        """The contact asked about by L{seen} answered: it stays."""
        bucket = self.bucketFor(dhtIdOf(nodeId))
        contact = bucket.contacts.get(nodeId)
        if contact is not None:
            contact.lastSeen = self._now()
            contact.misses = 0
            bucket.contacts.move_to_end(nodeId)

    def missed(self, nodeId: str, tolerance: int) -> None:
        """
        A request to C{nodeId} went unanswered: after C{tolerance} in a
        row (a link that closed as the request went loses one), it fails.
        """
        contact = self.get(nodeId)
        if contact is not None:
            contact.misses += 1
            if contact.misses >= tolerance:
                self.failed(nodeId)

    def failed(self, nodeId: str) -> Optional[Contact]:
        """
        C{nodeId} did not answer: it leaves its bucket, and the most
        recently seen replacement takes its place.

        @return: the replacement that moved in, if any.
        """
        bucket = self.bucketFor(dhtIdOf(nodeId))
        bucket.replacements.pop(nodeId, None)
        if bucket.contacts.pop(nodeId, None) is None or \
                not bucket.replacements:
            return None
        _, replacement = bucket.replacements.popitem(last=True)
        bucket.contacts[replacement.nodeId] = replacement
        return replacement

    def closest(self, dhtId: int, count: Optional[int] = None,
                exclude: Tuple[str, ...] = ()) -> List[Contact]:
        """The C{count} (default C{k}) contacts nearest C{dhtId}, nearest first."""
        count = count or self.k
        # A bucket's range is an aligned block of ids, and XOR maps it to
        # an aligned block of distances: blocks never interleave, so the
        # buckets are taken nearest block first until C{count} are found.
        def blockDistance(bucket: KBucket) -> int:
            return (bucket.low ^ dhtId) & ~(bucket.high - bucket.low - 1)

        found: List[Contact] = []
        for bucket in sorted(self.buckets, key=blockDistance):
            found.extend(c for c in bucket.contacts.values()
                         if c.nodeId not in exclude)
            if len(found) >= count:
                break
        return heapq.nsmallest(count, found, key=lambda c: c.dhtId ^ dhtId)

    def lookedUp(self, dhtId: int) -> None:
        """A lookup for C{dhtId} ran: its bucket need not be refreshed."""
        self.bucketFor(dhtId).lastLookup = self._now()

    def staleBuckets(self, interval: float) -> List[KBucket]:
        """The buckets no lookup went into for C{interval} seconds."""
        cutoff = self._now() - interval
        return [b for b in self.buckets if b.lastLookup <= cutoff]

    def farRanges(self) -> List[Tuple[int, int]]:
        """
        The C{(low, high)} of every bucket away from the own id, one that
        may still split cut into the buckets it would split into: a join
        looks an id up in each, so that each finds contacts of its own.
        """
        found: List[Tuple[int, int]] = []
        for bucket in self.buckets:
            if bucket.covers(self.ownId):
                continue
            digitEnd = -(-bucket.depth // self.b) * self.b
            step = 1 << (ID_BITS - digitEnd)
            found.extend((low, low + step)
                         for low in range(bucket.low, bucket.high, step))
        return found

    def ranges(self) -> Dict[Tuple[int, int], int]:
        """Each bucket's C{(low, high)} and how many contacts it has."""
        return {(b.low, b.high): len(b) for b in self.buckets}

    def _maySplit(self, bucket: KBucket) -> bool:
        if bucket.high - bucket.low < 2:
            return False
        return bucket.covers(self.ownId) or bucket.depth % self.b != 0

    def _split(self, bucket: KBucket) -> None:
        middle = (bucket.low + bucket.high) // 2
        lower = KBucket(bucket.low, middle, bucket.lastLookup)
        upper = KBucket(middle, bucket.high, bucket.lastLookup)
        for source, attribute in ((bucket.contacts, "contacts"),
                                  (bucket.replacements, "replacements")):
            for nodeId, contact in source.items():
                half = lower if contact.dhtId < middle else upper
                getattr(half, attribute)[nodeId] = contact
        index = self.buckets.index(bucket)
        self.buckets[index:index + 1] = [lower, upper]
        self._lows[index:index + 1] = [lower.low, upper.low]
