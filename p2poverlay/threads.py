"""
Using a Node from threads other than the reactor's.

A L{Node} belongs to the reactor thread.  L{BlockingNode} hands each call
to the reactor with C{blockingCallFromThread} and waits for the result, so
that code on worker threads (a GUI, a blocking library) can use the overlay
safely.  Reading the peer registry needs no hop: it is guarded by a lock.
"""

from __future__ import annotations

from typing import List, Tuple

from twisted.internet.threads import blockingCallFromThread

from p2poverlay.node import Node
from p2poverlay.records import PeerInfo


class BlockingNode:
    """
    A thread-safe, blocking view of a running L{Node}.  Never call its
    methods from the reactor thread itself: they would wait forever.
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        self.reactor = node.reactor

    def peers(self) -> List[PeerInfo]:
        """A consistent snapshot of the connected peers."""
        return self.node.peers.snapshot()

    def send(self, target: str, body: str) -> PeerInfo:
        """
        Send a direct message and wait until the recipient confirms it.

        @raise p2poverlay.errors.OverlayError: if it was not delivered.
        """
        # (Its stub cannot tell the type a Deferred-returning call gives.)
        return blockingCallFromThread(
            self.reactor, self.node.send,  # type: ignore[arg-type]
            target, body)

    def broadcast(self, body: str) -> Tuple[str, int]:
        """Broadcast C{body}; return its message id and neighbour count."""
        return blockingCallFromThread(self.reactor, self.node.broadcast, body)
