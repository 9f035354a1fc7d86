"""
Connections.closeAll: peers that do not take their BYE within the grace
are cut, and no waiter is left failing unseen.
"""

from __future__ import annotations

import gc

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher

from p2poverlay.config import NodeConfig
from p2poverlay.closing import STOP_GRACE
from p2poverlay.connections import Connections
from p2poverlay.dispatch import Dispatcher
from p2poverlay.limits import Misbehaviour
from p2poverlay.registry import PeerRegistry


class Transport:
    def __init__(self, connection: "Stuck") -> None:
        self.connection = connection

    def abortConnection(self) -> None:
        self.connection.gone()


class Stuck:
    """A connection whose peer never takes its BYE; it goes when cut."""

    outbound = False

    def __init__(self) -> None:
        self.transport = Transport(self)
        self.waiters = []
        self.closing = False

    def whenClosed(self) -> Deferred:
        waiter: Deferred = Deferred()
        self.waiters.append(waiter)
        return waiter

    def close(self, reason) -> None:
        self.closing = True

    def gone(self) -> None:
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            waiter.callback(None)


def test_close_all_cuts_stuck_peers_after_the_grace_and_logs_no_error():
    clock = Clock()
    config = NodeConfig()
    connections = Connections(
        "a" * 32, config, clock, None, PeerRegistry(),
        Misbehaviour(config.banThreshold, config.banTime, 1.0, clock.seconds),
        None, Dispatcher(), lambda role: None)
    stuck = [Stuck() for _ in range(3)]
    for connection in stuck:
        connections._connections[connection] = None
    failures = []

    def observe(event):
        if event.get("log_failure") is not None or event.get("isError"):
            failures.append(event)

    globalLogPublisher.addObserver(observe)
    try:
        done = []
        connections.closeAll().addBoth(done.append)
        assert all(c.closing for c in stuck) and done == []
        clock.advance(STOP_GRACE)
        assert done == [None]
        assert all(w.called for c in stuck for w in c.waiters)
        # An unhandled failure is logged when its Deferred is collected.
        for connection in stuck:
            connection.waiters.clear()
        del connections, done
        gc.collect()
    finally:
        globalLogPublisher.removeObserver(observe)
    assert failures == []
