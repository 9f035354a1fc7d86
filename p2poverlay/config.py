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
