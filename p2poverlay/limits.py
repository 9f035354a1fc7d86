"""
Per-peer resource bounds: a message rate limit and a misbehaviour score.

Each connection gets a L{TokenBucket} for the messages it sends us; an
address that misbehaves (protocol errors, sending past its rate) collects
points in L{Misbehaviour}, which bans it for a while once it reaches a
threshold, as Bitcoin Core and libp2p do.  Time comes from the reactor's
clock (or a C{now} callable), so tests drive it with C{task.Clock}.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

from twisted.internet.interfaces import IReactorTime


class TokenBucket:
    """
    Allows C{rate} events per second on average, C{burst} at once.

    @param clock: the reactor's clock.  The bucket keeps the clock, not its
        bound C{seconds}: there is one bucket per connection, per host
        admitted and per peer's budget, and a bound method each would cost
        more than the bucket.
    """

    __slots__ = ("rate", "burst", "_clock", "_tokens", "_last")

    def __init__(self, rate: float, burst: float, clock: IReactorTime) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._last = clock.seconds()

    def take(self, amount: float = 1.0) -> bool:
        """Consume C{amount} if available; return whether it was."""
        now = self._clock.seconds()
        elapsed = max(0.0, now - self._last)
        self._last = max(self._last, now)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        if self._tokens < amount:
            return False
        self._tokens -= amount
        return True

    def isFull(self) -> bool:
        """Has it refilled to C{burst}, as a new bucket starts?"""
        elapsed = max(0.0, self._clock.seconds() - self._last)
        return self._tokens + elapsed * self.rate >= self.burst


class Misbehaviour:
    """
    Misbehaviour points by address, decaying at C{decayPerSecond}; an
    address that reaches C{threshold} is banned for C{banDuration} seconds.
    At most C{maxTracked} scores and bans are kept.
    """

    def __init__(self, threshold: float, banDuration: float,
                 decayPerSecond: float, now: Callable[[], float],
                 maxTracked: int = 10000) -> None:
        self.threshold = threshold
        self.banDuration = banDuration
        self.decayPerSecond = decayPerSecond
        self.maxTracked = maxTracked
        self._now = now
        self._scores: Dict[str, Tuple[float, float]] = {}
        self._bans: Dict[str, Tuple[float, str]] = {}

    def score(self, host: str) -> float:
        """The host's points now, after decay."""
        entry = self._scores.get(host)
        if entry is None:
            return 0.0
        points, when = entry
        elapsed = max(0.0, self._now() - when)
        return max(0.0, points - elapsed * self.decayPerSecond)

    def penalize(self, host: str, points: float, reason: str) -> bool:
        """Add points; return True if this bans C{host}."""
        if self.isBanned(host):
            return False
        total = self.score(host) + points
        if total < self.threshold:
            self._scores[host] = (total, self._now())
            if len(self._scores) > self.maxTracked:
                lowest = min(self._scores, key=self.score)
                del self._scores[lowest]
            return False
        self._scores.pop(host, None)
        self._bans[host] = (self._now() + self.banDuration, reason)
        if len(self._bans) > self.maxTracked:
            soonest = min(self._bans, key=lambda h: self._bans[h][0])
            del self._bans[soonest]
        return True

    def _ban(self, host: str) -> Optional[Tuple[float, str]]:
        ban = self._bans.get(host)
        if ban is not None and ban[0] <= self._now():
            del self._bans[host]
            return None
        return ban

    def isBanned(self, host: str) -> bool:
        return self._ban(host) is not None

    def banReason(self, host: str) -> Optional[str]:
        ban = self._ban(host)
        return ban[1] if ban else None

    def bannedUntil(self, host: str) -> Optional[float]:
        ban = self._ban(host)
        return ban[0] if ban else None

    def unban(self, host: str) -> None:
        self._bans.pop(host, None)

    def bans(self) -> List[Tuple[str, float, str]]:
        """Current bans: (address, until, reason)."""
        return [(host, ban[0], ban[1]) for host in list(self._bans)
                if (ban := self._ban(host)) is not None]
