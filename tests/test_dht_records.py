"""
DHT value records (L{p2poverlay.dht.record}) and the store that keeps
them (L{p2poverlay.dht.recordstore}), with real Ed25519 keys and a
L{twisted.internet.task.Clock}.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Dict, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from p2poverlay.dht.record import (
    CLOCK_SKEW, MAX_KEY_LENGTH, RECORD_CONTEXT, RECORD_OVERHEAD, RecordChecker,
    ValueRecord, keyId, signRecord, signedBytes,
)
from p2poverlay.dht.recordstore import MAX_BUCKETS, RecordStore
from p2poverlay.identity import NodeKey
from p2poverlay.limits import TokenBucket
from p2poverlay.signing import Signer
from p2poverlay.wirevalues import MAX_INTEGER, MessageError

deterministic = settings(derandomize=True, database=None, deadline=None,
                         suppress_health_check=[HealthCheck.too_slow])

ALICE, BOB, CAROL = (Signer(NodeKey.generate()) for _ in range(3))
PEER = "ab" * 32
START = 1_700_000_000.0
HOUR = 3600.0


def clockAt(when: float = START) -> Clock:
    clock = Clock()
    clock.advance(when)
    return clock


def storeOn(clock: Clock, **limits) -> RecordStore:
    return RecordStore(clock, RecordChecker(), **limits)


def write(signer: Signer, clock: Clock, key: str = "k", value: str = "v",
          ttl: float = HOUR, seq=None) -> ValueRecord:
    return signRecord(signer, key, value, ttl, clock.seconds(), seq)


def check(record: ValueRecord, now: float = START,
          maxTTL: float = 86_400.0):
    return RecordChecker().check(record, now, maxTTL)


# -- records ----------------------------------------------------------------

def test_a_signed_record_checks_and_says_who_wrote_it_and_until_when():
    record = signRecord(ALICE, "colour", "blue", 90.0, START)
    assert record.writer == ALICE.key.nodeId
    assert record.publicKey == ALICE.key.publicBytes.hex()
    assert (record.seq, record.expires) == (int(START * 1000),
                                            int((START + 90) * 1000))
    assert check(record) is None
    assert signRecord(ALICE, "colour", "blue", 90.0, START, seq=7).seq == 7


def test_signed_bytes_are_the_documented_layout():
    record = ValueRecord("hé", "v" * 3, "11" * 32, "22" * 32, 258, 65536,
                         "33" * 64)
    assert signedBytes(record) == (
        RECORD_CONTEXT + b"\x00\x03" + "hé".encode() + b"\x00\x00\x00\x03vvv"
        + b"\x11" * 32 + (258).to_bytes(8, "big")
        + (65536).to_bytes(8, "big"))


def test_signed_bytes_of_different_records_differ_where_texts_meet():
    # Without length prefixes these two would sign the same bytes.
    one = ValueRecord("ab", "c", "11" * 32, "22" * 32, 1, 2, "33" * 64)
    other = replace(one, key="a", value="bc")
    assert signedBytes(one) != signedBytes(other)


@pytest.mark.parametrize("change", [
    {"value": "w"}, {"key": "l"}, {"seq": 1}, {"expires": 1},
])
def test_a_change_to_any_signed_field_makes_the_signature_bad(change):
    record = write(ALICE, clockAt())
    change = {name: getattr(record, name) + bump if isinstance(bump, int)
              else bump for name, bump in change.items()}
    assert check(replace(record, **change)) == "has a bad signature"


def test_a_flipped_byte_of_the_signature_makes_it_bad():
    record = write(ALICE, clockAt())
    flipped = f"{int(record.signature[:2], 16) ^ 1:02x}" + record.signature[2:]
    assert check(replace(record, signature=flipped)) == "has a bad signature"


def test_a_record_signed_by_one_key_claiming_another_writer_is_refused():
    record = write(ALICE, clockAt())
    claimed = replace(record, writer=BOB.key.nodeId)
    assert check(claimed) == "is signed with a key that is not its writer's"
    # With the claimed writer's own key beside it, the signature fails.
    withBobsKey = replace(claimed, publicKey=BOB.key.publicBytes.hex())
    assert check(withBobsKey) == "has a bad signature"


def test_a_writer_whose_key_is_cached_is_still_refused_another_key():
    checker = RecordChecker()
    bobs = write(BOB, clockAt())
    assert checker.check(bobs, START, HOUR) is None
    forged = replace(write(ALICE, clockAt()), writer=BOB.key.nodeId)
    assert checker.check(forged, START, HOUR) == \
        "is signed with a key that is not its writer's"
    assert checker.check(bobs, START, HOUR) is None


def test_expired_and_too_long_lived_records_do_not_check():
    record = signRecord(ALICE, "k", "v", 60.0, START)
    assert check(record, START + 59.9) is None
    assert check(record, START + 60) == "has expired"
    assert check(record, START, maxTTL=60.0) is None
    # A little skew between the clocks of writer and holder is allowed.
    assert check(record, START - CLOCK_SKEW, maxTTL=60.0) is None
    assert check(record, START - CLOCK_SKEW - 1, maxTTL=60.0) == \
        "expires too far ahead"


GOOD = ValueRecord("k", "v", "11" * 32, "22" * 32, 1, 2, "33" * 64)


@pytest.mark.parametrize("change, reason", [
    ({"key": ""}, "key must be a non-empty text"),
    ({"key": 5}, "key must be a non-empty text"),
    ({"key": "x" * (MAX_KEY_LENGTH + 1)},
     f"key longer than {MAX_KEY_LENGTH} characters"),
    ({"key": "a\nb"}, "key holds a character that is not printable"),
    ({"key": "\ud800"}, "key holds a character that is not printable"),
    ({"value": None}, "value must be a text"),
    ({"writer": "11" * 16}, "writer must be 64 lowercase hex digits"),
    ({"writer": "AA" * 32}, "writer must be 64 lowercase hex digits"),
    ({"publicKey": ""}, "publicKey must be 64 lowercase hex digits"),
    ({"signature": "33" * 32}, "signature must be 128 lowercase hex digits"),
    ({"seq": -1}, "seq out of range: -1"),
    ({"seq": True}, "seq must be an integer"),
    ({"expires": MAX_INTEGER + 1}, f"expires out of range: {MAX_INTEGER + 1}"),
    ({"expires": 2.0}, "expires must be an integer"),
])
def test_a_record_of_a_bad_shape_is_refused_with_a_reason(change, reason):
    GOOD.validate()
    bad = replace(GOOD, **change)
    with pytest.raises(MessageError) as raised:
        bad.validate()
    assert str(raised.value) == reason
    assert check(bad) == reason


def test_the_longest_key_and_the_widest_numbers_are_valid():
    replace(GOOD, key="é" * MAX_KEY_LENGTH, seq=MAX_INTEGER,
            expires=0).validate()


def test_signing_a_record_that_could_not_be_valid_raises():
    with pytest.raises(MessageError):
        signRecord(ALICE, "x" * (MAX_KEY_LENGTH + 1), "v", 60.0, START)


def test_the_key_id_is_the_sha256_of_the_key_and_the_size_counts_bytes():
    assert keyId("colour") == int(hashlib.sha256(b"colour").hexdigest(), 16)
    assert 0 <= keyId("é") < 2 ** 256
    assert replace(GOOD, key="ké", value="vvé").size == 3 + 4 + RECORD_OVERHEAD


# -- the store ----------------------------------------------------------------

def test_a_stored_record_is_got_back_and_storing_it_again_changes_nothing():
    clock = clockAt()
    store = storeOn(clock)
    record = write(ALICE, clock)
    assert store.store(record, PEER) is None
    assert store.store(record, PEER) is None
    assert store.get("k") == [record]
    assert store.get("other") == []
    assert (len(store), store.bytes) == (1, record.size)


def test_each_writer_has_one_record_the_newest_and_the_newest_comes_first():
    clock = clockAt()
    store = storeOn(clock)
    old = write(ALICE, clock, value="a1")
    assert store.store(old, PEER) is None
    clock.advance(1)
    bobs = write(BOB, clock, value="b")
    clock.advance(1)
    new = write(ALICE, clock, value="a2")
    assert store.store(bobs, PEER) is None
    assert store.store(new, PEER) is None
    assert store.get("k") == [new, bobs]
    assert store.store(old, PEER) == "is older than the one held"
    assert store.get("k") == [new, bobs]
    assert (len(store), store.bytes) == (2, new.size + bobs.size)


def test_of_two_records_with_one_seq_every_store_keeps_the_same():
    clock = clockAt()
    one = write(ALICE, clock, value="one", seq=5)
    other = write(ALICE, clock, value="other", seq=5)
    kept = []
    for first, second in ((one, other), (other, one)):
        store = storeOn(clock)
        assert store.store(first, PEER) is None
        assert store.store(second, PEER) is None
        kept.append(store.get("k"))
    assert kept[0] == kept[1] and len(kept[0]) == 1


def test_a_record_that_does_not_check_is_never_stored():
    clock = clockAt()
    store = storeOn(clock)
    record = write(ALICE, clock)
    assert store.store(replace(record, value="forged"), PEER) == \
        "has a bad signature"
    assert store.store(replace(record, writer=BOB.key.nodeId), PEER) == \
        "is signed with a key that is not its writer's"
    assert store.store(replace(record, seq=-1), PEER) == "seq out of range: -1"
    assert store.store(write(ALICE, clock, ttl=86_400.0 + CLOCK_SKEW + 1),
                       PEER) == "expires too far ahead"
    assert (len(store), store.get("k")) == (0, [])
    # Nor does a forgery at the held record's seq replace it.
    assert store.store(record, PEER) is None
    assert store.store(replace(record, value="forged"), PEER) == \
        "has a bad signature"
    assert store.get("k") == [record]


def test_expired_records_are_not_got_and_expire_drops_them():
    clock = clockAt()
    store = storeOn(clock)
    short = write(ALICE, clock, "a", ttl=10.0)
    replaced = write(BOB, clock, "b", ttl=10.0)
    assert store.store(short, PEER) is None
    assert store.store(replaced, PEER) is None
    longer = write(BOB, clock, "b", ttl=20.0, seq=replaced.seq + 1)
    assert store.store(longer, PEER) is None
    assert store.store(write(CAROL, clock, "c", ttl=30.0), PEER) is None
    clock.advance(10)
    assert store.get("a") == []
    assert store.expire() == 0   # get dropped it; b's first record is stale
    assert len(store) == 2 and [r.key for r in store.records()] == ["b", "c"]
    clock.advance(10)
    assert [r.key for r in store.records()] == ["c"]
    assert store.expire() == 1
    assert (len(store), store.bytes) == (1, store.get("c")[0].size)
    assert store.store(short, PEER) == "has expired"


def test_a_value_longer_than_the_limit_is_refused():
    clock = clockAt()
    store = storeOn(clock, maxValueBytes=10)
    assert store.store(write(ALICE, clock, value="é" * 5), PEER) is None
    assert store.store(write(ALICE, clock, "l", value="é" * 5 + "x"), PEER) \
        == "has a value longer than 10 bytes"
    assert [r.key for r in store.records()] == ["k"]


def test_a_writer_has_at_most_its_limit_of_records_but_may_renew_them():
    clock = clockAt()
    store = storeOn(clock, maxPerWriter=2)
    assert store.store(write(ALICE, clock, "a", ttl=10.0), PEER) is None
    assert store.store(write(ALICE, clock, "b"), PEER) is None
    assert store.store(write(ALICE, clock, "c"), PEER) == \
        "has a writer with 2 records held already"
    assert store.store(write(BOB, clock, "c"), PEER) is None
    clock.advance(1)
    renewed = write(ALICE, clock, "b", value="again")
    assert store.store(renewed, PEER) is None
    assert store.get("b") == [renewed] and len(store) == 3
    assert store.store(write(ALICE, clock, "c"), PEER) == \
        "has a writer with 2 records held already"
    # Once one of its records has expired, the writer may write another.
    clock.advance(9)
    assert store.store(write(ALICE, clock, "c"), PEER) is None
    assert sorted(r.key for r in store.records() if r.writer ==
                  ALICE.key.nodeId) == ["b", "c"]


def test_a_peer_writes_at_most_its_rate_and_others_are_not_held_back():
    clock = clockAt()
    store = storeOn(clock, writeRate=1.0, writeBurst=3.0)
    records = [write(ALICE, clock, f"k{i}") for i in range(6)]
    outcomes = [store.store(r, PEER) for r in records[:4]]
    assert outcomes[:3] == [None] * 3
    assert outcomes[3] == "comes past its sender's rate of 1 writes a second"
    assert store.get("k3") == []
    assert store.store(records[3], "cd" * 32) is None
    clock.advance(1)
    assert store.store(records[4], PEER) is None
    assert store.store(records[5], PEER) is not None
    # A refused record costs its sender a write too.
    clock.advance(1)
    assert store.store(replace(records[5], value="x"), PEER) == \
        "has a bad signature"
    assert store.store(records[5], PEER) is not None


def test_the_write_rates_of_idle_peers_are_forgotten():
    clock = clockAt()
    store = storeOn(clock, writeRate=1.0, writeBurst=2.0)
    record = write(ALICE, clock)
    for i in range(50):
        store.store(record, f"{i:064x}")
    assert store.trackedPeers == 50
    clock.advance(2)
    store.store(record, PEER)
    assert store.trackedPeers == 1


def test_write_rates_are_tracked_for_a_bounded_number_of_peers():
    clock = clockAt()
    store = storeOn(clock)
    record = write(ALICE, clock)
    for i in range(MAX_BUCKETS + 10):
        store.store(record, f"{i:064x}")
    assert store.trackedPeers == MAX_BUCKETS


def test_the_least_recently_used_records_make_room():
    clock = clockAt()
    store = storeOn(clock, maxRecords=3)
    a, b, c, d = (write(ALICE, clock, key) for key in "abcd")
    for record in (a, b, c):
        assert store.store(record, PEER) is None
    assert store.get("a") == [a]   # Used: b is now the least recently.
    assert store.store(d, PEER) is None
    assert sorted(r.key for r in store.records()) == ["a", "c", "d"]
    assert store.store(c, PEER) is None   # Stored again: used.
    assert store.store(b, PEER) is None
    assert sorted(r.key for r in store.records()) == ["b", "c", "d"]


def test_eviction_takes_records_of_other_keys_first():
    clock = clockAt()
    store = storeOn(clock, maxRecords=2)
    alices = write(ALICE, clock, "k")
    other = write(BOB, clock, "x")
    carols = write(CAROL, clock, "k")
    for record in (alices, other, carols):
        assert store.store(record, PEER) is None
    assert store.get("x") == [] and len(store) == 2
    # Only records of k left: the least recently used of them goes.
    assert store.store(carols, PEER) is None
    clock.advance(1)
    newer = write(BOB, clock, "k")
    assert store.store(newer, PEER) is None
    assert store.get("k") == [newer, carols]


def test_the_total_bytes_stay_within_the_limit_and_no_record_is_refused_for_them():
    clock = clockAt()
    value = "v" * 1000
    recordSize = 1 + len(value) + RECORD_OVERHEAD
    largest = 1000 + 4 * MAX_KEY_LENGTH + RECORD_OVERHEAD
    store = storeOn(clock, maxValueBytes=1000, maxBytes=3 * recordSize)
    for key in "abcde":
        assert store.store(write(ALICE, clock, key, value), PEER) is None
        assert store.bytes <= 3 * recordSize
    assert sorted(r.key for r in store.records()) == ["c", "d", "e"]
    assert store.bytes == 3 * recordSize
    with pytest.raises(ValueError):
        storeOn(clock, maxValueBytes=1000, maxBytes=largest - 1)
    with pytest.raises(ValueError):
        storeOn(clock, maxRecords=0)
    big = storeOn(clock, maxValueBytes=1000, maxBytes=largest)
    assert big.store(write(ALICE, clock, "a"), PEER) is None
    huge = write(ALICE, clock, "\U0001f600" * MAX_KEY_LENGTH, value)
    assert big.store(huge, PEER) is None
    assert list(big.records()) == [huge] and big.bytes == largest


# -- any sequence of operations -------------------------------------------------

SIGNERS = (ALICE, BOB, CAROL)
KEYS = ("a", "b", "c", "d")
# Four records with empty values fit in maxBytes, four of 40 bytes do not.
LIMITS = {"maxRecords": 4, "maxPerWriter": 2, "maxValueBytes": 40,
          "maxBytes": 1700, "maxTTL": 100.0, "writeRate": 2.0,
          "writeBurst": 6.0}
TOO_FAST = "comes past its sender's rate of 2 writes a second"

writes = st.tuples(st.just("store"), st.sampled_from([0, 0, 0, 1, 2]),
                   st.sampled_from(KEYS),
                   st.integers(0, 5), st.integers(20, 180),
                   st.sampled_from(["", "", "", "x" * 20, "x" * 20, "é" * 20,
                                    "é" * 20, "y" * 41]),
                   st.integers(0, 5).map(lambda n: n == 0), st.integers(0, 3))
operations = st.lists(st.one_of(
    writes, writes, writes, writes,
    st.tuples(st.just("get"), st.sampled_from(KEYS)),
    st.tuples(st.just("expire")),
    st.tuples(st.just("advance"), st.integers(1, 20))),
    min_size=40, max_size=120)


@settings(deterministic, max_examples=60)
@given(operations)
def test_any_sequence_of_operations_keeps_every_bound_and_the_newest_record(ops):
    clock = clockAt()
    store = storeOn(clock, **LIMITS)
    fresh = RecordChecker()
    # What the store must hold: the best record taken per (key, writer),
    # for as long as it holds one there.
    model: Dict[Tuple[str, str], ValueRecord] = {}
    buckets: Dict[str, TokenBucket] = {}
    for op in ops:
        if op[0] == "store":
            _, who, key, seqStep, ttl, value, forged, peer = op
            record = write(SIGNERS[who], clock, key, value, float(ttl),
                           seq=int(clock.seconds()) + seqStep)
            if forged:
                record = replace(record, seq=record.seq + 1)
            slot, peerId = (key, record.writer), f"{peer:064x}"
            if peerId not in buckets:
                buckets[peerId] = TokenBucket(2.0, 6.0, clock)
            allowed = buckets[peerId].take()
            held = model.get(slot)
            writerHolds = sum(writer == record.writer for _, writer in model)
            why = store.store(record, peerId)
            assert (why == TOO_FAST) == (not allowed)
            if forged:
                assert why is not None
            if why is None:
                assert len(value.encode()) <= LIMITS["maxValueBytes"]
                nowMs = clock.seconds() * 1000
                assert nowMs < record.expires <= nowMs + 1000 * (
                    LIMITS["maxTTL"] + CLOCK_SKEW)
                if held is None:
                    assert writerHolds < LIMITS["maxPerWriter"]
                else:
                    assert held.seq <= record.seq
                if held is None or (held.seq, held.expires, held.signature) < (
                        record.seq, record.expires, record.signature):
                    model[slot] = record
            elif why == "is older than the one held":
                assert held is not None and held.seq > record.seq
        elif op[0] == "get":
            got = store.get(op[1])
            assert len({r.writer for r in got}) == len(got)
            assert [r.seq for r in got] == sorted((r.seq for r in got),
                                                  reverse=True)
            for record in got:
                assert record.key == op[1]
                assert fresh.check(record, clock.seconds(), 1e9) is None
                assert model[(record.key, record.writer)] == record
        elif op[0] == "expire":
            store.expire()
        else:
            clock.advance(op[1])
        held: List[ValueRecord] = list(store.records())
        assert len(store) <= LIMITS["maxRecords"]
        assert store.bytes <= LIMITS["maxBytes"]
        for writer in {r.writer for r in held}:
            assert sum(r.writer == writer for r in held) <= \
                LIMITS["maxPerWriter"]
        for record in held:
            assert record.expires > clock.seconds() * 1000
            assert model[(record.key, record.writer)] == record
        model = {(r.key, r.writer): r for r in held}
    store.expire()
    assert store.bytes == sum(r.size for r in store.records())
