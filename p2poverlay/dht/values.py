"""
Values in the DHT: C{put} and C{get} of records signed by their writer.

A record lives on the C{k} nodes nearest the SHA-256 of its key: C{put}
looks them up (the spec's end rule: the C{k} nearest that answer) and
sends each a C{STORE}; C{get} asks the nodes on the way to the key with
C{FIND_VALUE}, all the way to the C{k} nearest, and keeps each writer's
newest record that checks.  A writer republishes its own records every
half time to live, signed anew; a holder hands the records it keeps to a
node that joins nearer their key than itself.  Every record is checked
(L{p2poverlay.dht.record.RecordChecker}) before it is stored or shown;
the store (L{p2poverlay.dht.recordstore}) bounds what one peer may write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from twisted.internet.defer import Deferred, DeferredList, fail
from twisted.internet.task import LoopingCall

from p2poverlay.dht.keyspace import distance
from p2poverlay.dht.lookup import K_CLOSEST, LookupResult
from p2poverlay.dht.record import RecordChecker, ValueRecord, keyId, signRecord
from p2poverlay.dht.recordstore import RecordStore
from p2poverlay.dht.routing import Contact
from p2poverlay.dht.service import Kademlia
from p2poverlay.dht.wire import MAX_RECORDS, FindValue, Store, Stored, Value
from p2poverlay.dispatch import Dispatcher
from p2poverlay.errors import LookupFailed
from p2poverlay.signing import Signer
from p2poverlay.wirevalues import MessageError

# A record a new near node is handed, and how many at most at once: the
# store's burst of writes from one peer.
HANDOFF_LIMIT = 40


@dataclass
class PutResult:
    """Where a C{put} stored its record: C{stored} of the C{asked} nearest."""

    record: ValueRecord
    stored: int
    asked: int
    refused: List[str] = field(default_factory=list)
    lookup: Optional[LookupResult] = None


@dataclass
class GetResult:
    """
    What a C{get} found: each writer's newest record, newest first, and
    how many of the nodes asked held one.
    """

    key: str
    records: List[ValueRecord]
    holders: int
    lookup: LookupResult


class DHTValues:
    """
    The values one node stores, writes and reads.

    @param signer: signs this node's own records (none: it cannot put).
    """

    def __init__(self, dht: Kademlia, signer: Optional[Signer],
                 dispatcher: Dispatcher) -> None:
        self.dht = dht
        self.signer = signer
        self.config = dht.config
        self.clock = dht.clock
        self.checker = RecordChecker()
        self.store = RecordStore(self.clock, self.checker,
                                 maxTTL=max(86_400.0, self.config.dhtValueTTL))
        self.mine: Dict[str, ValueRecord] = {}  # this node's, by key
        self._republisher = LoopingCall(self.republish)
        self._republisher.clock = self.clock
        dht.contactAdded.append(self.handOff)
        dispatcher.register(Store, self.storeReceived)
        dispatcher.register(FindValue, self.findValueReceived)
        for answer in (Stored, Value):
            dispatcher.register(answer, self._answered)

    def counters(self) -> dict:
        """The record store's gauges, for L{p2poverlay.metrics}."""
        return {"dht_records": len(self.store),
                "dht_record_bytes": self.store.bytes}

    def start(self) -> None:
        if self.config.dht:
            self._republisher.start(self.config.dhtValueTTL / 2, now=False)

    def stop(self) -> None:
        if self._republisher.running:
            self._republisher.stop()

    def _answered(self, connection, answer) -> None:
        self.dht.requests.answerReceived(connection, answer.rid, answer)

    # -- serving ------------------------------------------------------------

    def storeReceived(self, connection, message: Store) -> None:
        if not self.dht.mayServe(connection):
            return
        sender = connection.info.node_id
        refused = [why for why in (self.store.store(r, sender)
                                   for r in message.records) if why]
        connection.sendMessage(Stored(
            message.rid, len(message.records) - len(refused),
            f"a record {refused[0]}"[:200] if refused else ""))

    def findValueReceived(self, connection, message: FindValue) -> None:
        if not self.dht.mayServe(connection):
            return
        connection.sendMessage(Value(
            message.rid, tuple(self.store.get(message.key)[:MAX_RECORDS]),
            self.dht.nearestAddresses(keyId(message.key),
                                      connection.info.node_id)))

    # -- writing ------------------------------------------------------------

    def put(self, key: str, value: str) -> "Deferred[PutResult]":
        """
        Sign C{value} under C{key} and store it on the C{k} nodes nearest
        the key (and here).

        @return: fires with a L{PutResult}; fails with L{LookupFailed}
            (this node has no key, routing by id is off, a bad key or
            value).
        """
        if self.signer is None:
            return fail(LookupFailed("this node has no key: it cannot sign "
                                     "a record"))
        try:
            record = signRecord(self.signer, key, value,
                                self.config.dhtValueTTL, self.clock.seconds())
        except MessageError as e:
            return fail(LookupFailed(f"not stored: {e}"))
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > self.store.maxValueBytes:
            return fail(LookupFailed(
                f"not stored: the value is {size} bytes, more than "
                f"{self.store.maxValueBytes}"))
        self.mine[key] = record
        self.store.store(record, self.dht.nodeId)
        return self._replicate(record)

    def _replicate(self, record: ValueRecord) -> "Deferred[PutResult]":
        d = self.dht.lookup(keyId(record.key), endRule=K_CLOSEST)

        def found(lookup: LookupResult) -> Deferred:
            sends = [self.dht.ask(c, lambda rid: Store(rid, (record,)))
                     for c in lookup.closest]
            return DeferredList(sends, consumeErrors=True).addCallback(
                tally, lookup)

        def tally(outcomes, lookup: LookupResult) -> PutResult:
            result = PutResult(record, 0, len(outcomes), lookup=lookup)
            for ok, answer in outcomes:
                if ok and isinstance(answer, Stored) and answer.stored:
                    result.stored += 1
                elif ok and isinstance(answer, Stored):
                    result.refused.append(answer.refused)
            return result

        return d.addCallback(found)

    def republish(self) -> None:
        """Sign this node's records anew and store them again."""
        self.store.expire()
        for key, old in list(self.mine.items()):
            self.put(key, old.value).addErrback(lambda _: None)

    def handOff(self, contact: Contact) -> None:
        """Give a node new to the table the records it is nearer than us."""
        own = self.dht.table.ownId
        nearer = [r for r in self.store.records()
                  if distance(contact.dhtId, keyId(r.key))
                  < distance(own, keyId(r.key))][:HANDOFF_LIMIT]
        for start in range(0, len(nearer), MAX_RECORDS):
            batch = tuple(nearer[start:start + MAX_RECORDS])
            self.dht.ask(contact, lambda rid, b=batch: Store(rid, b)
                         ).addErrback(lambda _: None)

    # -- reading ------------------------------------------------------------

    def get(self, key: str) -> "Deferred[GetResult]":
        """
        Find the records under C{key}: each writer's newest that checks,
        from the nodes on the way to the key and the C{k} nearest it.
        """
        found: Dict[str, ValueRecord] = {r.writer: r
                                         for r in self.store.get(key)}
        holders: List[str] = []

        def ask(contact: Contact) -> "Deferred[List[Contact]]":
            d = self.dht.ask(contact, lambda rid: FindValue(rid, key))
            return d.addCallback(read, contact)

        def read(answer, contact: Contact) -> List[Contact]:
            if not isinstance(answer, Value):
                raise LookupFailed(f"{contact.nodeId[:8]} answered "
                                   f"{answer.TYPE}")
            now = self.clock.seconds()
            good = [r for r in answer.records if r.key == key and
                    self.checker.check(r, now, self.store.maxTTL) is None]
            if good:
                holders.append(contact.nodeId)
            for record in good:
                held = found.get(record.writer)
                if held is None or record.seq > held.seq:
                    found[record.writer] = record
            return self.dht.contactsIn(answer)

        def done(lookup: LookupResult) -> GetResult:
            records = sorted(found.values(), key=lambda r: r.seq, reverse=True)
            return GetResult(key, records, len(holders), lookup)

        return self.dht.lookup(keyId(key), endRule=K_CLOSEST, ask=ask
                               ).addCallback(done)

