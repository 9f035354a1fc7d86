"""
The checks a broadcast passes before a node delivers or relays it: the
replay window, then its origin's signature.

A signature check is the dearest thing a node does with a broadcast
(about 80 µs, most of it in libsodium, which lets go of Python's GIL while
it works).  On a reactor with threads, L{BroadcastChecks} runs the checks
in one thread of their own beside the reactor, in the order the
broadcasts came, so that a node uses a second core for them; on any other
clock (tests, the in-memory overlay) it checks at once, and what it
returns has already fired.
"""

from __future__ import annotations

from typing import Optional

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

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
        # A cache of keys of its own: the thread must not share one.
        self.verifier = Verifier(verifier.acceptUnsigned)
        self.window = window * 1000  # ms, as stamped
        self.seen = seen
        self.clock = clock
        self._pool: Optional[ThreadPool] = None

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

    def signature(self, message: Broadcast) -> "Deferred[Optional[str]]":
        """Fires with why C{message} is not its origin's, or L{None}."""
        if self._pool is None:
            return succeed(self.verifier.checkBroadcast(message))
        return deferToThreadPool(self.clock, self._pool,
                                 self.verifier.checkBroadcast, message)

    def start(self) -> None:
        """Check in a thread from now on, if the reactor has threads."""
        if self._pool is None and IReactorThreads.providedBy(self.clock):
            # One thread: checks finish in the order they were asked for.
            self._pool = ThreadPool(1, 1, name="signature-checks")
            self._pool.start()

    def stop(self) -> None:
        """Stop the thread (after the check it is doing, if any)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()
