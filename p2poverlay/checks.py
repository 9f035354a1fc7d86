"""
The checks a broadcast passes before a node delivers or relays it: the
replay window, then its origin's signature.
"""

from __future__ import annotations

from typing import Optional

from p2poverlay.message import Broadcast
from p2poverlay.seen import SeenCache
from p2poverlay.signing import Verifier


class BroadcastChecks:
    """
    Checks broadcasts against the replay window of C{window} seconds and
    the ids C{seen} has forgotten, and their signatures as C{verifier}
    does.
    """

    def __init__(self, verifier: Verifier, window: float, seen: SeenCache,
                 clock) -> None:
        self.verifier = verifier
        self.window = window * 1000  # ms, as stamped
        self.seen = seen
        self.clock = clock

    def now(self) -> int:
        """The time now as broadcasts are stamped: ms since the epoch."""
        return int(self.clock.seconds() * 1000)

    def fresh(self, message: Broadcast) -> bool:
        """
        Is C{message} inside the replay window: sent no longer ago, nor
        further ahead of this node's clock, than the window, and later
        than every broadcast this node has forgotten?
        """
        age = self.now() - message.time
        return -self.window <= age <= self.window \
            and message.time > self.seen.forgottenUpTo

    def signature(self, message: Broadcast) -> Optional[str]:
        """Why C{message} is not its origin's, or L{None}."""
        return self.verifier.checkBroadcast(message)
