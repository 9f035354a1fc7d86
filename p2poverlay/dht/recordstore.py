"""
The DHT values a node keeps for others, within bounds.

A L{RecordStore} keeps one record per (key, writer): the one with the
highest C{seq}.  It takes a record only if its signature checks
(L{RecordChecker}), and bounds what others can make it keep: the size of
a value, the records of one writer, the writes a second from one peer,
and the total number of records and bytes, where the least recently used
records make room for new ones (those of other keys first).  Every
operation costs O(1), or O(log n) for the heap of expiry times, but for
eviction, which passes over the records of the key being stored.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from typing import Dict, Iterator, List, Optional, Set, Tuple

from twisted.internet.interfaces import IReactorTime

from p2poverlay.dht.record import (
    MAX_KEY_LENGTH, RECORD_OVERHEAD, RecordChecker, ValueRecord,
)
from p2poverlay.limits import TokenBucket
from p2poverlay.wirevalues import MessageError

# Write-rate buckets kept at most; a bucket idle long enough to be full
# again is forgotten first (forgetting it loses nothing).
MAX_BUCKETS = 4096

_Slot = Tuple[str, str]   # (key, writer)


def _rank(record: ValueRecord) -> Tuple[int, int, str]:
    # Two records of one writer and seq are told apart the same way on
    # every holder, so the replicas of a key agree.
    return record.seq, record.expires, record.signature


class RecordStore:
    """
    Signed records by key and writer, bounded in count, bytes, records per
    writer and writes per peer per second.

    @ivar maxTTL: the longest time to live a record may have, in seconds.
    """

    def __init__(self, clock: IReactorTime, checker: RecordChecker, *,
                 maxRecords: int = 10_000, maxBytes: int = 16 << 20,
                 maxPerWriter: int = 100, maxValueBytes: int = 16_384,
                 maxTTL: float = 86_400.0, writeRate: float = 10.0,
                 writeBurst: float = 50.0) -> None:
        """
        @param clock: the reactor's clock (time in seconds since the Unix
            epoch).
        @param checker: checks the records offered.
        @param maxRecords: records kept at most, in all.
        @param maxBytes: their L{ValueRecord.size} at most, in all; room
            for the largest record there can be.
        @param maxPerWriter: records of one writer kept at most.
        @param maxValueBytes: the longest value taken, in UTF-8 bytes.
        @param maxTTL: the longest time to live taken, in seconds.
        @param writeRate: records one peer may offer a second, on average.
        @param writeBurst: records one peer may offer at once.
        @raise ValueError: if C{maxRecords} or C{maxBytes} leaves no room
            for a record.
        """
        largest = maxValueBytes + 4 * MAX_KEY_LENGTH + RECORD_OVERHEAD
        if maxRecords < 1:
            raise ValueError("maxRecords must be at least 1")
        if maxBytes < largest:
            raise ValueError(f"maxBytes must be at least {largest} (the "
                             f"largest record with values of "
                             f"{maxValueBytes} bytes)")
        self._clock = clock
        self._checker = checker
        self.maxRecords = maxRecords
        self.maxBytes = maxBytes
        self.maxPerWriter = maxPerWriter
        self.maxValueBytes = maxValueBytes
        self.maxTTL = maxTTL
        self.writeRate = writeRate
        self.writeBurst = writeBurst
        self._idle = writeBurst / writeRate if writeRate > 0 else float("inf")
        # Least recently used first.
        self._records: "OrderedDict[_Slot, ValueRecord]" = OrderedDict()
        self._writersOf: Dict[str, Set[str]] = {}
        self._keysOf: Dict[str, Set[str]] = {}
        # (expires, key, writer, seq); entries of records since replaced or
        # dropped stay until popped, or until the heap is rebuilt.
        self._expiries: List[Tuple[int, str, str, int]] = []
        self._bytes = 0
        self._buckets: "OrderedDict[str, Tuple[TokenBucket, float]]" = \
            OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    @property
    def bytes(self) -> int:
        """The L{ValueRecord.size} of the records held, in all."""
        return self._bytes

    @property
    def trackedPeers(self) -> int:
        """How many peers' write rates are tracked (at most L{MAX_BUCKETS};
        a peer idle long enough to have its full burst again is not)."""
        return len(self._buckets)

    # -- the public operations ----------------------------------------------

    def store(self, record: ValueRecord, fromNodeId: str) -> Optional[str]:
        """
        Keep C{record}, unless a newer one of its writer under its key is
        held already.

        @param record: the record offered.
        @param fromNodeId: the node that offered it (whose write rate it
            counts against).
        @return: C{None} if it is kept, or the same or a newer copy is
            held; else why it was refused (a phrase: "has expired").
        """
        if not self._allow(fromNodeId):
            return (f"comes past its sender's rate of {self.writeRate:g} "
                    f"writes a second")
        try:
            record.validate()
        except MessageError as e:
            return str(e)
        valueBytes = len(record.value.encode("utf-8", "surrogatepass"))
        if valueBytes > self.maxValueBytes:
            return f"has a value longer than {self.maxValueBytes} bytes"
        now = self._clock.seconds()
        slot = (record.key, record.writer)
        held = self._records.get(slot)
        if held is not None and held.expires <= now * 1000:
            self._remove(slot)
            held = None
        if held is not None and held == record:
            self._records.move_to_end(slot)
            return None
        why = self._checker.check(record, now, self.maxTTL)
        if why is not None:
            return why
        if held is not None:
            if record.seq < held.seq:
                return "is older than the one held"
            if _rank(record) <= _rank(held):
                self._records.move_to_end(slot)
                return None
            self._remove(slot)
        elif self._countOf(record.writer, now) >= self.maxPerWriter:
            return (f"has a writer with {self.maxPerWriter} records held "
                    f"already")
        self._add(record)
        self._makeRoom(record.key)
        return None

    def get(self, key: str) -> List[ValueRecord]:
        """
        The live records under C{key}, one per writer (the newest), newest
        first.  They count as used, for eviction.

        @param key: the user's key.
        """
        writers = self._writersOf.get(key)
        if not writers:
            return []
        nowMs = self._clock.seconds() * 1000
        live = []
        for writer in list(writers):
            slot = (key, writer)
            record = self._records[slot]
            if record.expires <= nowMs:
                self._remove(slot)
            else:
                live.append(record)
        live.sort(key=lambda r: (r.seq, r.writer), reverse=True)
        for record in reversed(live):   # The newest ends most recently used.
            self._records.move_to_end((key, record.writer))
        return live

    def expire(self) -> int:
        """
        Drop every record that has expired.

        @return: how many were dropped.
        """
        nowMs = self._clock.seconds() * 1000
        expiries = self._expiries
        dropped = 0
        while expiries and expiries[0][0] <= nowMs:
            expires, key, writer, seq = heapq.heappop(expiries)
            record = self._records.get((key, writer))
            if record is not None and (record.seq, record.expires) == (
                    seq, expires):
                self._remove((key, writer))
                dropped += 1
        return dropped

    def records(self) -> Iterator[ValueRecord]:
        """Every live record held (to republish or hand on), least
        recently used first; they do not count as used."""
        nowMs = self._clock.seconds() * 1000
        for record in list(self._records.values()):
            if record.expires > nowMs:
                yield record

    # -- bookkeeping ------------------------------------------------------

    def _allow(self, peer: str) -> bool:
        now = self._clock.seconds()
        entry = self._buckets.pop(peer, None)
        if entry is None:
            bucket = TokenBucket(self.writeRate, self.writeBurst, self._clock)
        else:
            bucket = entry[0]
        buckets = self._buckets
        buckets[peer] = (bucket, now)
        while buckets:
            last = next(iter(buckets.values()))[1]
            if now - last < self._idle and len(buckets) <= MAX_BUCKETS:
                break
            buckets.popitem(last=False)
        return bucket.take()

    def _countOf(self, writer: str, now: float) -> int:
        """How many live records C{writer} has, once its expired ones are
        dropped (only when that could make room)."""
        keys = self._keysOf.get(writer, ())
        if len(keys) >= self.maxPerWriter:
            for key in list(keys):
                if self._records[(key, writer)].expires <= now * 1000:
                    self._remove((key, writer))
        return len(self._keysOf.get(writer, ()))

    def _add(self, record: ValueRecord) -> None:
        key, writer = record.key, record.writer
        self._records[(key, writer)] = record
        self._writersOf.setdefault(key, set()).add(writer)
        self._keysOf.setdefault(writer, set()).add(key)
        self._bytes += record.size
        expiries = self._expiries
        if len(expiries) > 2 * len(self._records) + 64:
            expiries[:] = [(r.expires, r.key, r.writer, r.seq)
                           for r in self._records.values()]
            heapq.heapify(expiries)
        else:
            heapq.heappush(expiries,
                           (record.expires, key, writer, record.seq))

    def _remove(self, slot: _Slot) -> None:
        record = self._records.pop(slot)
        key, writer = slot
        for index, name, other in ((self._writersOf, key, writer),
                                   (self._keysOf, writer, key)):
            members = index[name]
            members.discard(other)
            if not members:
                del index[name]
        self._bytes -= record.size

    def _makeRoom(self, key: str) -> None:
        """Evict the least recently used records of keys other than C{key}
        until the totals are within bounds, then, if need be, those of
        C{key} but the newest."""
        records = self._records
        if len(records) <= self.maxRecords and self._bytes <= self.maxBytes:
            return
        count, size = len(records), self._bytes
        victims: List[_Slot] = []
        ownKey: List[_Slot] = []
        for slot, record in records.items():
            if count <= self.maxRecords and size <= self.maxBytes:
                break
            if slot[0] != key:
                victims.append(slot)
                count -= 1
                size -= record.size
            else:
                ownKey.append(slot)
        newest = next(reversed(records))
        for slot in ownKey:
            if count <= self.maxRecords and size <= self.maxBytes:
                break
            if slot != newest:
                victims.append(slot)
                count -= 1
                size -= records[slot].size
        for slot in victims:
            self._remove(slot)
