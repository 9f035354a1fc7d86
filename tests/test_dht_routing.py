"""
The DHT's routing table and key space, with real SHA-256 node ids: bucket
invariants under any sequence of events, splitting, eviction that asks the
oldest contact, and refresh targets that fall in the bucket refreshed.
"""

from __future__ import annotations

import hashlib
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from p2poverlay.dht.keyspace import (
    ID_BITS, ID_SPACE, commonPrefixLength, dhtIdOf, idRange, randomIdIn,
)
from p2poverlay.dht.routing import Contact, RoutingTable


def keyedId(seed: int) -> str:
    """A node id as a keyed node has one: the SHA-256 of a (public) key."""
    return hashlib.sha256(seed.to_bytes(8, "big")).hexdigest()


def contact(seed: int) -> Contact:
    return Contact(keyedId(seed), f"10.0.{seed // 250 % 250}.{seed % 250}",
                   9000)


def farContacts(table: RoutingTable, count: int, start: int = 1000):
    """C{count} contacts whose ids differ from the table's in the first bit."""
    found, seed = [], start
    while len(found) < count:
        candidate = contact(seed)
        if commonPrefixLength(candidate.dhtId, table.ownId) == 0:
            found.append(candidate)
        seed += 1
    return found


def checkInvariants(table: RoutingTable) -> None:
    buckets = table.buckets
    assert buckets[0].low == 0 and buckets[-1].high == ID_SPACE
    for before, after in zip(buckets, buckets[1:]):
        assert before.high == after.low  # contiguous, sorted, no overlap
    assert sum(b.covers(table.ownId) for b in buckets) == 1
    seen = set()
    for bucket in buckets:
        assert len(bucket.contacts) <= table.k
        assert len(bucket.replacements) <= table.k
        assert not set(bucket.contacts) & set(bucket.replacements)
        # A range is a power of two aligned on its size: a split's half.
        size = bucket.high - bucket.low
        assert size & (size - 1) == 0 and bucket.low % size == 0
        for nodeId, entry in list(bucket.contacts.items()) + \
                list(bucket.replacements.items()):
            assert entry.nodeId == nodeId
            assert bucket.covers(entry.dhtId)
            assert nodeId != table.nodeId
        seen.update(bucket.contacts)
        # The others are the halves cut off on the way down to the bucket
        # of our own id, split on (b above 1) until their depth is a
        # multiple of b: one that leaves our id's prefix after `shared`
        # bits is 1 to b bits deeper than that (exactly 1 with b = 1).
        if not bucket.covers(table.ownId):
            shared = commonPrefixLength(bucket.low, table.ownId)
            digitEnd = -(-(shared + 1) // table.b) * table.b
            assert shared + 1 <= bucket.depth <= digitEnd
    assert len(seen) == len(table)
    everyone = list(table.contacts())
    assert len({c.nodeId for c in everyone}) == len(everyone)
    for entry in everyone:
        assert [b for b in buckets if entry.nodeId in b.contacts] == \
            [table.bucketFor(entry.dhtId)]


events = st.lists(st.tuples(st.sampled_from(["seen", "answered", "failed"]),
                            st.integers(0, 400)), max_size=300)


@settings(max_examples=80, deadline=None)
@given(events, st.integers(0, 10 ** 6), st.sampled_from([2, 4, 20]),
       st.sampled_from([1, 2, 3, 4]))
def test_any_sequence_of_events_keeps_the_bucket_invariants(
        steps, own, k, b):
    table = RoutingTable(keyedId(own), k=k, b=b)
    for event, seed in steps:
        nodeId = keyedId(seed)
        if event == "seen":
            oldest = table.seen(contact(seed))
            if oldest is not None:
                # Asked about: the oldest of the newcomer's full bucket.
                bucket = table.bucketFor(dhtIdOf(nodeId))
                assert oldest is bucket.oldest()
                assert nodeId in bucket.replacements
        elif event == "answered":
            table.answered(nodeId)
        else:
            table.failed(nodeId)
        checkInvariants(table)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 10 ** 6), min_size=1, max_size=200,
                unique=True), st.integers(0, 2 ** 256 - 1),
       st.sampled_from([1, 2, 4]), st.sampled_from([2, 8]))
def test_closest_is_the_xor_nearest_of_every_contact(seeds, target, b, k):
    table = RoutingTable(keyedId(10 ** 7), k=k, b=b)
    for seed in seeds:
        table.seen(contact(seed))
    checkInvariants(table)
    everyone = sorted(table.contacts(), key=lambda c: c.dhtId ^ target)
    assert [c.nodeId for c in table.closest(target, 5)] == \
        [c.nodeId for c in everyone[:5]]
    assert [c.nodeId for c in table.closest(target, 40)] == \
        [c.nodeId for c in everyone[:40]]
    assert [c.nodeId for c in table.closest(
        target, 5, exclude=(everyone[0].nodeId,))] == \
        [c.nodeId for c in everyone[1:6]]


def test_the_bucket_of_the_own_id_splits_and_the_others_do_not():
    table = RoutingTable(keyedId(1), k=4)
    for seed in range(2, 400):
        table.seen(contact(seed))
    checkInvariants(table)
    assert len(table.buckets) > 3
    # Every far bucket is full; the deepest ones hold the nearest nodes.
    far = [b for b in table.buckets if not b.covers(table.ownId)]
    assert all(len(b) == 4 for b in far[:3])
    nearest = min(range(2, 400), key=lambda s: dhtIdOf(keyedId(s)) ^
                  table.ownId)
    assert keyedId(nearest) in table


def test_with_b_4_the_far_buckets_split_down_to_whole_4_bit_digits():
    table = RoutingTable(keyedId(1), k=4, b=4)
    for seed in range(2, 3000):
        table.seen(contact(seed))
    checkInvariants(table)
    # The ids that leave our prefix in its first 4 bits fill a bucket for
    # each of the 15 other values of those bits; with b = 1 they would
    # fill 4 buckets, one per bit.
    firstDigit = [b for b in table.buckets if not b.covers(table.ownId)
                  and commonPrefixLength(b.low, table.ownId) < 4]
    assert len(firstDigit) == 15
    assert all(b.depth == 4 and len(b) == 4 for b in firstDigit)
    assert {b.low >> 252 for b in firstDigit} == \
        set(range(16)) - {table.ownId >> 252}
    # So every contact found for a far target shares its first 4 bits.
    rng = random.Random(2)
    for _ in range(50):
        target = rng.getrandbits(256)
        nearest = table.closest(target, 1)[0]
        assert nearest.dhtId >> 252 == target >> 252 or \
            target >> 252 == table.ownId >> 252
    classic = RoutingTable(keyedId(1), k=4, b=1)
    for seed in range(2, 3000):
        classic.seen(contact(seed))
    checkInvariants(classic)
    assert len([b for b in classic.buckets if not b.covers(classic.ownId)
                and commonPrefixLength(b.low, classic.ownId) < 4]) == 4


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 400), st.sampled_from([1, 2, 3, 4]))
def test_far_ranges_cut_the_far_buckets_into_whole_digits(count, b):
    table = RoutingTable(keyedId(0), k=4, b=b)
    for seed in range(1, count + 1):
        table.seen(contact(seed))
    ranges = table.farRanges()
    far = [(x.low, x.high) for x in table.buckets
           if not x.covers(table.ownId)]
    if b == 1:
        assert ranges == far
    # In order, without gaps inside a bucket, each inside one far bucket
    # and as deep as that bucket may split.
    for low, high in ranges:
        size = high - low
        assert low % size == 0
        assert (ID_BITS - size.bit_length() + 1) % b == 0
        assert sum(x <= low and high <= y for x, y in far) == 1
    assert sum(high - low for low, high in ranges) == \
        sum(y - x for x, y in far)
    assert ranges == sorted(ranges)


def test_a_full_bucket_asks_about_its_oldest_contact_not_the_newcomer():
    table = RoutingTable(keyedId(7), k=3)
    first, second, third, newcomer = farContacts(table, 4)
    for entry in (first, second, third):
        assert table.seen(entry) is None
    table.seen(Contact(second.nodeId, second.host, second.port))  # heard again
    # Least recently seen first: first, third, second.
    assert table.seen(newcomer) is first
    assert newcomer.nodeId not in table
    table.answered(first.nodeId)  # it is still there: it stays
    assert first.nodeId in table and newcomer.nodeId not in table
    assert list(table.bucketFor(first.dhtId).contacts) == [
        third.nodeId, second.nodeId, first.nodeId]


def test_an_oldest_contact_that_does_not_answer_makes_room_for_the_newcomer():
    table = RoutingTable(keyedId(7), k=3)
    first, second, third, newcomer = farContacts(table, 4)
    for entry in (first, second, third):
        table.seen(entry)
    assert table.seen(newcomer) is first
    assert table.failed(first.nodeId) is newcomer
    assert first.nodeId not in table and newcomer.nodeId in table
    checkInvariants(table)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 255), st.data())
def test_a_random_id_of_a_range_falls_in_that_range(length, data):
    prefix = data.draw(st.integers(0, 2 ** length - 1))
    low, high = idRange(prefix, length)
    rng = random.Random(data.draw(st.integers(0, 2 ** 32)))
    target = randomIdIn(low, high, rng)
    assert low <= target < high
    assert commonPrefixLength(target, low) >= length


def test_refresh_targets_fall_in_the_very_bucket_refreshed():
    table = RoutingTable(keyedId(3), k=2)
    for seed in range(4, 300):
        table.seen(contact(seed))
    rng = random.Random(5)
    for bucket in table.buckets:
        for _ in range(20):
            target = randomIdIn(bucket.low, bucket.high, rng)
            assert table.bucketFor(target) is bucket


def test_ids_of_nodes_without_a_key_are_spread_by_their_hash():
    unkeyed = "0" * 31 + "1"
    assert dhtIdOf(unkeyed) == int(hashlib.sha256(
        bytes.fromhex(unkeyed)).hexdigest(), 16)
    keyed = keyedId(1)
    assert dhtIdOf(keyed) == int(keyed, 16)
