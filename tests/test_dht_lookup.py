"""
The iterative lookup on a network of routing tables in memory (answers
after a delay on a L{Clock}), and the upkeep that refreshes stale buckets.
"""

from __future__ import annotations

import hashlib
import random
from typing import Dict, List, Set, Tuple

from twisted.internet.defer import Deferred, fail, succeed
import pytest
from twisted.internet.task import Clock, deferLater

from p2poverlay.config import NodeConfig
from p2poverlay.dht.keyspace import dhtIdOf
from p2poverlay.dht import service
from p2poverlay.dht.lookup import (
    BETA, BETA_CLOSEST, FIND_TARGET, K_CLOSEST, Lookup, LookupResult,
)
from p2poverlay.dht.routing import Contact, RoutingTable
from p2poverlay.dht.service import (
    JOIN_BUCKETS_DELAY, JOIN_RETRY_DELAY, Kademlia,
)
from p2poverlay.dht.wire import Nodes
from p2poverlay.dispatch import Dispatcher
from p2poverlay.errors import ForgedRecord
from p2poverlay.peeraddress import PeerAddress
from p2poverlay.registry import PeerRegistry
from p2poverlay.signing import Verifier


def keyedId(seed: int) -> str:
    return hashlib.sha256(b"node %d" % seed).hexdigest()


class FakeNetwork:
    """Nodes that each know a random share of the others, answering late."""

    def __init__(self, size: int, k: int = 20, seed: int = 1,
                 dead: Set[int] = frozenset()) -> None:
        rng = random.Random(seed)
        self.clock = Clock()
        self.k = k
        self.ids = [keyedId(i) for i in range(size)]
        self.dead = {self.ids[i] for i in dead}
        self.tables: Dict[str, RoutingTable] = {}
        for nodeId in self.ids:
            table = RoutingTable(nodeId, k=k)
            for other in rng.sample(self.ids, min(size, 12 * k)):
                table.seen(Contact(other, "10.0.0.1", 1))
            self.tables[nodeId] = table
        self.inFlight = self.mostInFlight = 0

    def ask(self, target: int):
        def ask(contact: Contact) -> "Deferred[List[Contact]]":
            self.inFlight += 1
            self.mostInFlight = max(self.mostInFlight, self.inFlight)

            def answer() -> List[Contact]:
                self.inFlight -= 1
                if contact.nodeId in self.dead:
                    raise TimeoutError("no answer")
                return self.tables[contact.nodeId].closest(target, self.k)
            return deferLater(self.clock, 0.05, answer)
        return ask

    def lookup(self, source: int, target: int, **options) -> Lookup:
        own = self.ids[source]
        targetId = dhtIdOf(self.ids[target])
        return Lookup(targetId, self.tables[own].closest(targetId, self.k),
                      self.ask(targetId), k=self.k, alpha=3,
                      now=self.clock.seconds, ownNodeId=own,
                      targetNodeId=self.ids[target], **options)

    def run(self, lookup: Lookup):
        results = []
        lookup.start().addBoth(results.append)
        for _ in range(1000):
            if results:
                self.clock.advance(1)  # the requests still in flight end
                return results[0]
            self.clock.advance(0.05)
        raise AssertionError("the lookup never ended")


def test_a_lookup_for_a_node_ends_when_it_answers_long_before_the_k_rule():
    network = FakeNetwork(2000)
    found = network.run(network.lookup(0, 1234))
    assert found.found is not None and found.found.nodeId == network.ids[1234]
    assert found.rounds == found.namedIn + 1
    spec = network.run(network.lookup(0, 1234, endRule=K_CLOSEST))
    assert spec.found is not None  # the target is the nearest node of all
    assert spec.closest[0].nodeId == network.ids[1234]
    assert found.asked < spec.asked and found.rounds <= spec.rounds


def test_a_beta_lookup_ends_once_the_nearest_three_answered():
    network = FakeNetwork(2000)
    own = network.ids[0]
    target = dhtIdOf(own)  # a node's lookup of its own id

    def lookup(endRule) -> Tuple[LookupResult, List[str]]:
        """The result, and the nodes that had answered as it ended."""
        search = Lookup(
            target, network.tables[own].closest(target, 20),
            network.ask(target), k=20, alpha=3, now=network.clock.seconds,
            ownNodeId=own, endRule=endRule)
        answered: List[str] = []

        def ended(result: LookupResult) -> LookupResult:
            answered.extend(nodeId for _, nodeId, ok in result.path if ok)
            return result

        search.done.addCallback(ended)
        return network.run(search), answered

    (beta, answered), (spec, _) = lookup(BETA_CLOSEST), lookup(K_CLOSEST)
    # It ended as soon as no node it had heard of nearer than its third
    # nearest answer was left unasked.
    named = {c.nodeId for nodeId in answered
             for c in network.tables[nodeId].closest(target, 20)} - {own}
    third = beta.closest[BETA - 1].dhtId ^ target
    assert all(n in answered for n in named if dhtIdOf(n) ^ target < third)
    assert spec.asked >= 20 and beta.asked < 0.7 * spec.asked
    assert beta.heard >= 20


def test_no_more_than_alpha_requests_in_flight_besides_the_target():
    network = FakeNetwork(1000)
    for target in range(1, 40):
        network.mostInFlight = 0
        result = network.run(network.lookup(0, target))
        assert result.found is not None
        assert network.mostInFlight <= 3 + 1
    network.mostInFlight = 0
    network.run(network.lookup(0, 7, endRule=K_CLOSEST))
    assert network.mostInFlight <= 3


def test_a_wide_first_round_asks_the_nearest_seeds_at_once():
    network = FakeNetwork(1000)
    table = network.tables[network.ids[0]]
    unknown = [i for i in range(1, 1000) if network.ids[i] not in table]
    for target, firstRound, atOnce in ((unknown[0], 0, 3),
                                       (unknown[0], 6, 6),
                                       (unknown[1], 2, 3)):
        lookup = network.lookup(0, target, firstRound=firstRound)
        seeds = table.closest(lookup.target, 20)
        done: List = []
        lookup.start().addBoth(done.append)
        assert network.inFlight == atOnce
        while not done:
            network.clock.advance(0.05)
        network.clock.advance(1)
        result = done[0]
        assert result.found is not None
        first = result.path[:atOnce]
        assert sorted(nodeId for _, nodeId, _ in first) == \
            sorted(c.nodeId for c in seeds[:atOnce])
        assert all(round == 1 for round, _, _ in first)


def test_nodes_that_never_answer_are_gone_round():
    network = FakeNetwork(800, dead=set(range(1, 400)))
    result = network.run(network.lookup(0, 600))
    assert result.found is not None and result.found.nodeId == network.ids[600]
    assert result.failed > 0
    assert all(answered for _, nodeId, answered in result.path
               if nodeId not in network.dead)
    assert not any(answered for _, nodeId, answered in result.path
                   if nodeId in network.dead)


def test_a_lookup_whose_seeds_all_fail_goes_on_with_what_the_table_learned():
    # A newcomer's one first link goes before it answers; meanwhile the
    # newcomer's table has heard of others, and the lookup asks them.
    network = FakeNetwork(500, dead={1})
    own, target = network.ids[0], network.ids[300]
    table = RoutingTable(own, k=network.k)
    table.seen(Contact(network.ids[1], "10.0.0.1", 1))
    later = network.tables[own].closest(dhtIdOf(target), network.k)

    def refill() -> List[Contact]:
        for contact in later:
            table.seen(contact)
        return table.closest(dhtIdOf(target), network.k)

    def lookup(**options) -> Lookup:
        return Lookup(dhtIdOf(target), table.closest(dhtIdOf(target)),
                      network.ask(dhtIdOf(target)), k=network.k, alpha=3,
                      now=network.clock.seconds, ownNodeId=own,
                      targetNodeId=target, **options)

    alone = network.run(lookup())
    assert (alone.asked, alone.failed, alone.found) == (1, 1, None)
    refilled = network.run(lookup(refill=refill))
    assert refilled.found is not None and refilled.found.nodeId == target
    # It took from the table once its seed had failed, not before.
    assert refilled.path[0] == (1, network.ids[1], False)
    assert refilled.asked > 1


def test_a_lookup_for_an_absent_id_ends_with_the_k_nearest_that_answered():
    network = FakeNetwork(500, k=8)
    target = 2 ** 255 + 12345
    lookup = Lookup(target, network.tables[network.ids[0]].closest(target, 8),
                    network.ask(target), k=8, alpha=3,
                    now=network.clock.seconds, ownNodeId=network.ids[0])
    assert lookup.endRule is K_CLOSEST
    result = network.run(lookup)
    assert result.found is None
    nearest = sorted(network.ids[1:], key=lambda n: dhtIdOf(n) ^ target)[:8]
    assert [c.nodeId for c in result.closest] == nearest


def test_a_lookup_with_no_one_to_ask_ends_at_once():
    result = []
    Lookup(5, [], lambda c: fail(AssertionError()), k=20, alpha=3,
           now=lambda: 0.0, targetNodeId=keyedId(3)).start().addBoth(
        result.append)
    assert result[0].found is None and result[0].asked == 0
    assert result[0].namedIn is None


def test_a_node_named_with_a_forged_record_is_asked_once_named_with_its_own():
    clock = Clock()
    liar, honest, target = keyedId(1), keyedId(2), keyedId(7)
    answers = {liar: (0.01, [Contact(target, "6.6.6.6", 1)]),
               honest: (0.02, [Contact(target, "10.0.0.7", 1)]),
               target: (0.01, [])}

    def ask(contact: Contact) -> "Deferred[List[Contact]]":
        if contact.host == "6.6.6.6":  # What Kademlia.ask does with it.
            return fail(ForgedRecord("the record naming it is forged"))
        delay, named = answers[contact.nodeId]
        return deferLater(clock, delay, lambda: named)

    lookup = Lookup(dhtIdOf(target), [Contact(liar, "10.0.0.1", 1),
                                      Contact(honest, "10.0.0.2", 1)], ask,
                    k=20, alpha=3, now=clock.seconds, targetNodeId=target)
    result: list = []
    lookup.start().addBoth(result.append)
    clock.pump([0.01] * 10)
    assert result[0].found.host == "10.0.0.7"
    assert (result[0].asked, result[0].failed) == (3, 0)


def test_a_contact_named_with_a_forged_record_is_not_asked_nor_missed():
    dht = kademlia()
    good = Contact(keyedId(5), "10.0.0.5", 1)
    dht.table.seen(good)
    named = Nodes("1" * 32, (PeerAddress(keyedId(5), "6.6.6.6", 1, seq=1,
                                          key="ab" * 32,
                                          signature="00" * 64),))
    [contact] = dht.contactsIn(named)  # not checked yet: it may never be
    dht.requests.request = lambda *a: pytest.fail("asked")  # type: ignore
    failures: list = []
    dht.ask(contact, lambda rid: None).addErrback(failures.append)
    assert failures[0].check(ForgedRecord)
    assert dht.table.get(keyedId(5)).misses == 0


def kademlia(**settings) -> Kademlia:
    clock = Clock()
    return Kademlia(keyedId(0), NodeConfig(**settings), clock,
                    random.Random(1), PeerRegistry(), None, Dispatcher(),
                    Verifier(acceptUnsigned=True))


def test_refresh_looks_up_an_id_in_each_stale_bucket_and_only_those():
    dht = kademlia(dhtK=2, dhtRefreshInterval=600.0)
    for seed in range(1, 300):
        dht.table.seen(Contact(keyedId(seed), "10.0.0.1", 1))
    targets: List[int] = []
    dht.lookup = lambda target, **kw: (targets.append(target), Deferred())[1]
    dht.joined = True
    dht.clock.advance(601)
    fresh = dht.table.buckets[0]
    dht.table.lookedUp(fresh.low)  # a lookup just went into this one
    dht.refresh()
    stale = dht.table.buckets[1:]
    assert len(targets) == 1  # one at a time: the next once it ends
    queued = [targets[0]] + dht._upkeep
    assert sorted(dht.table.buckets.index(dht.table.bucketFor(t))
                  for t in queued) == list(range(1, len(stale) + 1))


def joining(contacts: int) -> Tuple[Kademlia, List[int]]:
    """A started node with C{contacts} in its table, its join begun; the
    targets of the lookups it makes (each ends at once)."""
    dht = kademlia(dhtK=2, dhtB=4)
    dht.start()
    for seed in range(1, contacts + 1):
        dht.table.seen(Contact(keyedId(seed), "10.0.0.1", 1))
    targets: List[int] = []
    dht.lookup = lambda target, **kw: (targets.append(target),
                                       succeed(None))[1]
    dht.joined = True
    dht._join()
    return dht, targets


def test_a_join_looks_up_its_own_id_then_later_one_id_in_every_far_range():
    dht, targets = joining(299)
    assert targets == [dht.table.ownId] and dht.findable
    assert not dht.settled
    # The buckets wait: half to all of JOIN_BUCKETS_DELAY.
    dht.clock.advance(JOIN_BUCKETS_DELAY / 2 - 0.1)
    assert targets == [dht.table.ownId]
    dht.clock.advance(JOIN_BUCKETS_DELAY / 2 + 0.1)
    assert dht.settled
    ranges = dht.table.farRanges()
    # Far buckets not yet full enough to split are looked into part by
    # part, one lookup for each bucket they may split into.
    far = [b for b in dht.table.buckets if not b.covers(dht.table.ownId)]
    assert len(ranges) > len(far)
    assert sorted(next(i for i, (low, high) in enumerate(ranges)
                       if low <= t < high) for t in targets[1:]) == \
        list(range(len(ranges)))
    # Its own lookup again (a retry, a refresh) looks into no bucket again.
    dht._upkeep.append(dht.table.ownId)
    dht._runUpkeep()
    dht.clock.advance(JOIN_BUCKETS_DELAY)
    assert len(targets) == len(ranges) + 2


def test_a_node_stopped_before_its_buckets_are_looked_into_looks_nothing_up():
    dht, targets = joining(49)
    dht.stop()
    dht.clock.advance(JOIN_BUCKETS_DELAY)
    assert targets == [dht.table.ownId] and not dht.clock.getDelayedCalls()


def test_a_node_with_routing_off_looks_nothing_up():
    dht = kademlia(dht=False)
    failures = []
    dht.lookup(123).addErrback(failures.append)
    assert "routing by id is off" in failures[0].getErrorMessage()


def test_a_nodes_lookup_of_its_own_id_ends_by_the_beta_rule(monkeypatch):
    made: List[Lookup] = []

    class Recorded(Lookup):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(service, "Lookup", Recorded)
    dht = kademlia()
    dht.start()
    for seed in range(1, 50):
        dht.table.seen(Contact(keyedId(seed), "10.0.0.1", 1))
    dht._findNode = lambda contact, target: Deferred()
    dht.joined = True
    dht._join()
    dht.lookup(12345)
    dht.lookup(dhtIdOf(keyedId(7)), keyedId(7))
    assert made[0].target == dht.table.ownId
    assert [m.endRule for m in made] == [BETA_CLOSEST, K_CLOSEST, FIND_TARGET]


@pytest.mark.parametrize("heard, retried", [(1, True), (2, False)])
def test_a_join_looks_again_only_if_its_lookup_heard_of_fewer_than_k(
        heard, retried):
    # A lookup ended by the beta rule has few answers even in a big
    # network: what tells of a first link that knew next to nobody is how
    # many nodes the lookup heard of.
    dht = kademlia(dhtK=2)
    dht.start()
    dht.table.seen(Contact(keyedId(1), "10.0.0.1", 1))
    targets: List[int] = []

    def lookup(target, **kw):
        targets.append(target)
        return succeed(LookupResult(target, heard=heard))

    dht.lookup = lookup
    dht.joined = True
    dht._join()
    dht.clock.advance(JOIN_RETRY_DELAY)
    assert targets.count(dht.table.ownId) == (2 if retried else 1)
    dht.stop()
