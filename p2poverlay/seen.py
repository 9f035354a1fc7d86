"""A bounded set of recently seen message ids, for exactly-once delivery."""

from collections import OrderedDict
from typing import Callable, Tuple


class SeenCache:
    """
    Remembers ids for C{ttl} seconds, and at most C{maxSize} of them; the
    oldest go first.  C{ttl} must exceed the time a message can keep
    travelling through the overlay.

    An id may come with a stamp (its message's send time).
    L{forgottenUpTo} is the newest stamp of an id forgotten (its time up,
    or to make room): a message stamped no later may be one seen before.

    @ivar forgottenUpTo: see above; minus infinity while none was
        forgotten.
    """

    def __init__(self, maxSize: int, ttl: float, now: Callable[[], float]) -> None:
        self.maxSize = maxSize
        self.ttl = ttl
        self._now = now
        self._expiry: "OrderedDict[str, Tuple[float, float]]" = OrderedDict()
        self.forgottenUpTo = float("-inf")
        # No id expires before this (the oldest's expiry, or later).
        self._nextExpiry = float("inf")

    def add(self, key: str, stamp: float = 0.0) -> bool:
        """Record C{key}; return C{True} if it was not already known."""
        now = self._now()
        self._expire(now)
        if key in self._expiry:
            return False
        if not self._expiry:
            self._nextExpiry = now + self.ttl
        self._expiry[key] = (now + self.ttl, stamp)
        if len(self._expiry) > self.maxSize:
            _, (_, forgotten) = self._expiry.popitem(last=False)
            self.forgottenUpTo = max(self.forgottenUpTo, forgotten)
        return True

    def __contains__(self, key: object) -> bool:
        self._expire(self._now())
        return key in self._expiry

    def __len__(self) -> int:
        return len(self._expiry)

    def _expire(self, now: float) -> None:
        if now < self._nextExpiry:
            return  # The common case: nothing is due.
        expiry = self._expiry
        self._nextExpiry = float("inf")
        while expiry:
            oldest, stamp = next(iter(expiry.values()))
            if oldest > now:
                self._nextExpiry = oldest
                break
            expiry.popitem(last=False)
            if stamp > self.forgottenUpTo:
                self.forgottenUpTo = stamp
