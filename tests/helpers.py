"""Shared test helpers: nodes on loopback, polling, recording observers."""

from __future__ import annotations

from typing import Callable, List, Optional

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.task import deferLater

from p2poverlay.node import Node, NodeConfig, NodeObserver, ReceivedMessage
from p2poverlay.registry import PeerInfo


@inlineCallbacks
def waitFor(predicate: Callable[[], bool], timeout: float = 10.0,
            what: str = "condition", interval: float = 0.01):
    """Poll C{predicate} until it is true; fail after C{timeout} seconds."""
    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        yield deferLater(reactor, interval, lambda: None)


class Recorder(NodeObserver):
    """Records everything a node reports."""

    def __init__(self) -> None:
        self.messages: List[ReceivedMessage] = []
        self.connected: List[PeerInfo] = []
        self.disconnected: List[tuple] = []

    def messageReceived(self, message: ReceivedMessage) -> None:
        self.messages.append(message)

    def peerConnected(self, peer: PeerInfo) -> None:
        self.connected.append(peer)

    def peerDisconnected(self, peer: PeerInfo, reason: str) -> None:
        self.disconnected.append((peer, reason))

    def bodies(self, kind: Optional[str] = None) -> List[str]:
        return [m.body for m in self.messages if kind in (None, m.kind)]


class Overlay:
    """Starts nodes on 127.0.0.1 with ephemeral ports and stops them all."""

    def __init__(self) -> None:
        self.nodes: List[Node] = []
        self.recorders = {}

    @inlineCallbacks
    def start(self, join: Optional[Node] = None, **config) -> Deferred:
        config.setdefault("listen", "tcp:0:interface=127.0.0.1")
        node = Node(NodeConfig(**config))
        recorder = Recorder()
        node.addObserver(recorder)
        self.recorders[node] = recorder
        self.nodes.append(node)
        node.startService()
        yield node.listening
        if join is not None:
            yield node.join("127.0.0.1", join.listenPort)
        return node

    def recorder(self, node: Node) -> Recorder:
        return self.recorders[node]

    def stop(self) -> Deferred:
        return DeferredList(
            [n.stopService() for n in self.nodes if n.running],
            consumeErrors=True)


def address(node: Node) -> str:
    return f"127.0.0.1:{node.listenPort}"
