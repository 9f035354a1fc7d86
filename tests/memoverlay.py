"""
Helpers for integration tests on a L{p2poverlay.memnet.MemoryOverlay}:
real Nodes in memory on a virtual clock, so that a test moves the clock
on instead of waiting.
"""

from __future__ import annotations

from typing import List, Optional

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from p2poverlay import Node, NodeConfig
from p2poverlay.memnet import MemoryOverlay, UniformDelay

# A local network: 0.5 to 5 ms one way, short beside the tests' timings
# (a PING every 0.1 s at the most).
LAN = UniformDelay(0.0005, 0.005)
# Virtual seconds for anything that should happen "promptly".
PROMPT = 5.0


def memoryOverlay(seed: object = 0, **settings) -> MemoryOverlay:
    """
    An overlay on a L{LAN}, with L{NodeConfig} C{settings} for every node.
    Routing by id is off unless asked for (C{dht=True}): its lookups would
    add links and messages to every count the other tests make.
    """
    settings.setdefault("dht", False)
    return MemoryOverlay(seed=seed, config=NodeConfig(**settings), delay=LAN)


def outcome(overlay: MemoryOverlay, deferred: Deferred,
            timeout: float = PROMPT, what: str = "the result"):
    """
    Run C{overlay} until C{deferred} fires; return its result, or raise
    the exception it failed with.
    """
    results: List[object] = []
    deferred.addBoth(results.append)
    overlay.runUntil(lambda: results, timeout, what)
    result = results[0]
    if isinstance(result, Failure):
        result.raiseException()
    return result


def address(overlay: MemoryOverlay, node: Node) -> str:
    """The ``host:port`` a node listens on."""
    return f"{overlay.host(node.config.name)}:{node.listenPort}"


def bodies(overlay: MemoryOverlay, node: Node, kind=None) -> List[str]:
    """The bodies of the messages C{node} delivered (of one C{kind})."""
    return [m.body for m in overlay.records[node.config.name].messages
            if kind in (None, m.kind)]


def disconnected(overlay: MemoryOverlay, node: Node) -> List[tuple]:
    """C{(peer name, reason)} for each peer C{node} lost, in order."""
    return [(name, reason)
            for _, name, reason in overlay.records[node.config.name].peersDown]


def connectedCount(overlay: MemoryOverlay, node: Node) -> int:
    """How many times C{node} was told a peer connected."""
    return len(overlay.records[node.config.name].peersUp)


def start(overlay: MemoryOverlay, join: Optional[Node] = None,
          **settings) -> Node:
    """
    Add a node (C{settings} as for L{MemoryOverlay.addNode}) and, as
    L{helpers.Overlay.start} does, have it join C{join} (not through its
    configuration) and run until it has.
    """
    node = overlay.addNode(**settings)
    if join is not None:
        outcome(overlay, node.join(overlay.host(join.config.name),
                                   join.listenPort),
                what=f"{node.config.name} to join {join.config.name}")
    return node
