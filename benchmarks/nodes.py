"""Nodes in this process over loopback, and waiting for conditions."""

from __future__ import annotations

import time
from typing import Callable, Iterable, List, Set

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.task import deferLater

from p2poverlay import Node, NodeConfig

# Settings every benchmark node gets: liveness probes and timeouts relaxed
# so that a loaded reactor does not take busy peers for dead.
QUIET = dict(pingInterval=5.0, peerTimeout=60.0, handshakeTimeout=60.0,
             connectTimeout=60.0, ackTimeout=120.0)
# The per-peer rate limit lifted, for throughput measurements.
UNLIMITED = dict(messageRate=1e12, messageBurst=1e12)


def sleep(seconds: float) -> Deferred:
    return deferLater(reactor, seconds, lambda: None)


async def waitUntil(predicate: Callable[[], bool], timeout: float,
                    what: str, interval: float = 0.02) -> float:
    """Poll until C{predicate()}; return the seconds it took."""
    start = time.perf_counter()
    deadline = start + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        await sleep(interval)
    return time.perf_counter() - start


async def startNode(**settings) -> Node:
    settings.setdefault("listen", "tcp:0:interface=127.0.0.1")
    for key, value in QUIET.items():
        settings.setdefault(key, value)
    node = Node(NodeConfig(**settings))
    node.startService()
    await node.listening
    return node


async def stopNodes(nodes: Iterable[Node]) -> None:
    await DeferredList([n.stopService() for n in nodes if n.running],
                       consumeErrors=True)


def neighbourIds(node: Node) -> Set[str]:
    """The node ids of C{node}'s overlay neighbours."""
    topology = getattr(node, "topology", None)
    if topology is not None:
        return {c.peer.node_id for c in topology.neighbours()
                if c.peer is not None}
    return {p.node_id for p in node.peers.snapshot()}


def setBroadcastMode(node: Node, mode: str) -> None:
    """
    Switch a running node between "tree" and "flood".  Flooding sends
    the payload to every neighbour, so every neighbour becomes eager.
    """
    node.config.broadcastMode = mode
    broadcaster = getattr(node, "broadcaster", None)
    if broadcaster is not None:
        broadcaster.tree = mode == "tree"
        if mode == "flood":
            broadcaster.eager |= broadcaster.lazy
            broadcaster.lazy.clear()


def neighbourGraph(nodes: List[Node]) -> dict:
    """node id -> set of neighbour ids, both directions merged."""
    graph = {n.nodeId: set() for n in nodes}
    for node in nodes:
        for other in neighbourIds(node):
            if other in graph:
                graph[node.nodeId].add(other)
                graph[other].add(node.nodeId)
    return graph
