"""NodeConfig: every setting of a Node, with its default."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple


@dataclass
class NodeConfig:
    """
    Settings of a L{Node}.  Times are in seconds.

    @ivar listen: a Twisted server endpoint description (``tcp:9000``).
    @ivar join: addresses (host, port) to join at start.
    @ivar autoConnect: dial the peers learned by peer exchange.
    @ivar minPeers: neighbours dialed until the node has at least this many.
    @ivar maxPeers: neighbours accepted at most.
    @ivar maxDirectLinks: connections kept for direct messages to nodes that
        are not neighbours.
    @ivar broadcastMode: C{"tree"} (Plumtree: payload along a spanning tree,
        ids to the other neighbours) or C{"flood"} (payload to every
        neighbour).
    """

    listen: str = "tcp:0"
    name: str = ""
    join: Sequence[Tuple[str, int]] = ()
    maxLineLength: int = 65536
    handshakeTimeout: float = 10.0
    connectTimeout: float = 10.0
    ackTimeout: float = 30.0
    broadcastTTL: int = 32
    seenCacheSize: int = 100_000
    seenCacheTTL: float = 600.0
    maxPeersPerExchange: int = 100
    autoConnect: bool = True
    # Topology: how many neighbours a node keeps, and how it broadcasts.
    minPeers: int = 8
    maxPeers: int = 16
    maxDirectLinks: int = 8
    directLinkIdle: float = 60.0
    exchangeInterval: float = 30.0
    broadcastMode: str = "tree"  # "tree" (Plumtree) or "flood"
    graftTimeout: float = 0.5
    lazyDelay: float = 0.05
    # Failure detection and reconnection.
    pingInterval: float = 1.0
    peerTimeout: float = 5.0
    reconnectInitialDelay: float = 0.5
    reconnectMaxDelay: float = 30.0
    forgetAfter: float = 300.0
    # Resource bounds.
    addressBookSize: int = 1000
    maxInbound: int = 64
    maxOutbound: int = 64
    maxSendBuffer: int = 4 << 20
    messageRate: float = 1000.0
    messageBurst: float = 10000.0
    banThreshold: float = 100.0
    banTime: float = 60.0
