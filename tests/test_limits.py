"""
Unit tests of the per-peer resource bounds in L{p2poverlay.limits}: the
L{TokenBucket} rate limit and the L{Misbehaviour} score book, driven by a
L{twisted.internet.task.Clock}.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from p2poverlay.limits import Misbehaviour, TokenBucket

# Hypothesis examples are derived from each test, not from a random seed.
deterministic = settings(derandomize=True, database=None, deadline=None,
                         suppress_health_check=[HealthCheck.too_slow])


class SettableClock:
    """A clock that, unlike L{Clock}, can be set back."""

    def __init__(self, now: float) -> None:
        self.now = now

    def seconds(self) -> float:
        return self.now


def takes(bucket: TokenBucket, attempts: int = 1000) -> int:
    """Take single tokens until refused; return how many were allowed."""
    for allowed in range(attempts):
        if not bucket.take():
            return allowed
    raise AssertionError(f"{attempts} takes were all allowed")


# -- TokenBucket --------------------------------------------------------------

def test_bucket_starts_full():
    bucket = TokenBucket(rate=10, burst=5, clock=Clock())
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]


def test_bucket_refills_at_rate():
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=20, clock=clock)
    assert takes(bucket) == 20
    clock.advance(0.5)
    assert takes(bucket) == 5
    # Steps exact in binary: 0.6 - 0.5 is a hair under 0.1 in floats.
    clock.advance(0.25)
    assert takes(bucket) == 2


def test_bucket_never_holds_more_than_burst():
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    clock.advance(1_000_000)
    assert takes(bucket) == 5
    # Many small idle steps add up to no more either.
    for _ in range(100):
        clock.advance(1)
        bucket.take(0)
    assert takes(bucket) == 5


def test_bucket_takes_amounts_and_a_refusal_consumes_nothing():
    clock = Clock()
    bucket = TokenBucket(rate=1, burst=10, clock=clock)
    assert bucket.take(4) and bucket.take(4)
    assert not bucket.take(4)
    assert bucket.take(2)
    assert not bucket.take()
    assert not bucket.take(11)
    clock.advance(10)
    assert not bucket.take(11)
    assert bucket.take(10)


def test_bucket_counts_a_backwards_clock_as_no_time():
    clock = SettableClock(100.0)
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    # A full bucket is not drained by a clock going back...
    clock.now = 0.0
    assert takes(bucket) == 5
    # ...nor is an empty one refilled by it.
    clock.now = -50.0
    assert not bucket.take()
    # Refill resumes from the latest time seen, not from the earlier one.
    clock.now = 100.25
    assert takes(bucket) == 2


operations = st.lists(
    st.one_of(st.floats(min_value=0, max_value=2, allow_nan=False),
              st.just("take")),
    max_size=200)


@deterministic
@given(rate=st.floats(min_value=0.1, max_value=100),
       burst=st.integers(min_value=1, max_value=50),
       ops=operations)
def test_bucket_allows_at_most_burst_plus_rate_times_elapsed(rate, burst,
                                                             ops):
    clock = Clock()
    bucket = TokenBucket(rate=rate, burst=burst, clock=clock)
    allowedAt = []
    for op in ops:
        if op == "take":
            if bucket.take():
                allowedAt.append(clock.seconds())
        else:
            clock.advance(op)
    # In every window of allowed takes, not only in the whole run.
    for i, start in enumerate(allowedAt):
        for j in range(i, len(allowedAt)):
            count = j - i + 1
            elapsed = allowedAt[j] - start
            assert count <= burst + rate * elapsed + 1e-6, (i, j)


# -- Misbehaviour -------------------------------------------------------------

def book(clock: Clock, threshold: float = 100, banDuration: float = 60,
         decayPerSecond: float = 1, maxTracked: int = 10000) -> Misbehaviour:
    return Misbehaviour(threshold, banDuration, decayPerSecond, clock.seconds,
                        maxTracked)


def test_points_under_the_threshold_do_not_ban():
    m = book(Clock())
    assert m.penalize("10.0.0.1", 50, "bad line") is False
    assert m.penalize("10.0.0.1", 49, "bad line") is False
    assert not m.isBanned("10.0.0.1")
    assert m.banReason("10.0.0.1") is None
    assert m.bannedUntil("10.0.0.1") is None
    assert m.bans() == []


def test_reaching_the_threshold_bans_once():
    clock = Clock()
    clock.advance(1000)
    m = book(clock)
    assert m.penalize("10.0.0.1", 60, "bad line") is False
    assert m.penalize("10.0.0.1", 40, "flood") is True
    assert m.isBanned("10.0.0.1")
    assert m.banReason("10.0.0.1") == "flood"
    assert m.bannedUntil("10.0.0.1") == 1060
    assert m.score("10.0.0.1") == 0  # the ban used the points up
    # More points while banned neither ban again nor change the ban.
    assert m.penalize("10.0.0.1", 500, "more") is False
    assert m.bans() == [("10.0.0.1", 1060, "flood")]
    # Other addresses are other strings, untouched.
    assert not m.isBanned("10.0.0.2")
    assert m.penalize("10.0.0.2", 99, "bad line") is False


def test_one_large_penalty_bans():
    m = book(Clock())
    assert m.penalize("10.0.0.1", 1000, "garbage") is True
    assert m.banReason("10.0.0.1") == "garbage"


def test_a_ban_expires_after_its_duration_and_the_score_starts_over():
    clock = Clock()
    m = book(clock, banDuration=60)
    assert m.penalize("10.0.0.1", 100, "flood")
    clock.advance(59.9)
    assert m.isBanned("10.0.0.1")
    clock.advance(0.1)
    assert not m.isBanned("10.0.0.1")
    assert m.banReason("10.0.0.1") is None
    assert m.bannedUntil("10.0.0.1") is None
    assert m.bans() == []
    assert m.penalize("10.0.0.1", 99, "bad line") is False
    assert m.score("10.0.0.1") == 99


def test_scores_decay_so_slow_penalties_never_ban():
    clock = Clock()
    m = book(clock, threshold=100, decayPerSecond=1)
    for _ in range(100):
        assert m.penalize("10.0.0.1", 50, "bad line") is False
        clock.advance(60)
    assert m.bans() == []
    # Faster, the same penalties add up: 50, then 40 + 50, then 80 + 50.
    assert m.penalize("10.0.0.2", 50, "bad line") is False
    clock.advance(10)
    assert m.score("10.0.0.2") == 40
    assert m.penalize("10.0.0.2", 50, "bad line") is False
    clock.advance(10)
    assert m.penalize("10.0.0.2", 50, "bad line") is True


def test_scores_decay_to_zero_and_no_lower():
    clock = Clock()
    m = book(clock, decayPerSecond=1)
    m.penalize("10.0.0.1", 10, "bad line")
    clock.advance(1000)
    assert m.score("10.0.0.1") == 0
    m.penalize("10.0.0.1", 30, "bad line")
    assert m.score("10.0.0.1") == 30
    assert m.score("10.0.0.9") == 0


def test_bans_lists_current_bans_and_unban_lifts_one():
    clock = Clock()
    m = book(clock, threshold=10, banDuration=100)
    m.penalize("10.0.0.1", 10, "flood")
    clock.advance(30)
    m.penalize("10.0.0.2", 10, "garbage")
    assert sorted(m.bans()) == [("10.0.0.1", 100, "flood"),
                                ("10.0.0.2", 130, "garbage")]
    m.unban("10.0.0.1")
    m.unban("10.0.0.3")  # not banned: nothing happens
    assert not m.isBanned("10.0.0.1")
    assert m.bans() == [("10.0.0.2", 130, "garbage")]
    # Unbanned, the address starts from a clean score.
    assert m.penalize("10.0.0.1", 9, "bad line") is False
    # Only the second ban is still there when the first would have ended.
    clock.advance(70)
    assert m.bans() == [("10.0.0.2", 130, "garbage")]
    clock.advance(30)
    assert m.bans() == []


def test_scores_are_bounded_dropping_the_lowest():
    clock = Clock()
    m = book(clock, decayPerSecond=1, maxTracked=3)
    m.penalize("a", 30, "x")
    m.penalize("b", 10, "x")
    m.penalize("c", 20, "x")
    m.penalize("d", 40, "x")
    assert [m.score(h) for h in "abcd"] == [30, 0, 20, 40]
    # With equal penalties, the oldest has decayed most and goes first.
    m = book(clock, decayPerSecond=1, maxTracked=3)
    for host in "abcd":
        m.penalize(host, 10, "x")
        clock.advance(1)
    assert [m.score(h) for h in "abcd"] == [0, 7, 8, 9]


def test_bans_are_bounded_dropping_the_soonest_to_expire():
    clock = Clock()
    m = book(clock, threshold=1, banDuration=100, maxTracked=3)
    for host in "abcd":
        assert m.penalize(host, 1, f"reason {host}")
        clock.advance(1)
    assert not m.isBanned("a")
    assert m.bans() == [("b", 101, "reason b"), ("c", 102, "reason c"),
                        ("d", 103, "reason d")]


def test_memory_stays_bounded_under_many_addresses():
    clock = Clock()
    m = book(clock, threshold=100, maxTracked=3)
    for i in range(1000):
        m.penalize(f"10.0.{i // 256}.{i % 256}", 1 + i % 150, "x")
        clock.advance(0.01)
        # Private, but memory use is the point here.
        assert len(m._scores) <= 3 and len(m._bans) <= 3
    assert len(m.bans()) == 3


def test_bucket_is_full_again_once_it_has_refilled():
    clock = Clock()
    bucket = TokenBucket(rate=2, burst=4, clock=clock)
    assert bucket.isFull()
    bucket.take(3)
    assert not bucket.isFull()
    clock.advance(1.4)
    assert not bucket.isFull()
    clock.advance(0.1)
    assert bucket.isFull()
