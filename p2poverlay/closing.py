"""Closing many connections at once, as a node does when it stops."""

from __future__ import annotations

from typing import Any, List

from twisted.internet.defer import Deferred, DeferredList, succeed

from p2poverlay.reasons import SHUTTING_DOWN

# How long closeAll waits for peers to take their BYE before cutting.
STOP_GRACE = 1.5


def closeAll(connections: List[Any], clock: Any) -> "Deferred[None]":
    """
    Say BYE on every one of C{connections}; fires once they are gone, or
    after L{STOP_GRACE} seconds, when the rest are cut.
    """
    lost = [connection.whenClosed() for connection in connections]
    for connection in connections:
        connection.close(SHUTTING_DOWN)
    if not lost:
        return succeed(None)
    # Cancelled by the timeout, the DeferredList cancels every waiter:
    # their CancelledErrors are its to consume.
    allGone = DeferredList(lost, consumeErrors=True)
    allGone.addTimeout(STOP_GRACE, clock)
    allGone.addErrback(lambda _: abortAll(connections))
    return allGone.addCallback(lambda _: None)


def abortAll(connections: List[Any]) -> "Deferred[None]":
    """Cut every one of C{connections} at once, saying nothing."""
    lost = [connection.whenClosed() for connection in connections]
    for connection in connections:
        connection.transport.abortConnection()
    return DeferredList(lost).addCallback(lambda _: None)
