"""NodeConfig: every setting of a Node, with its default, and their checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import FrozenSet, Optional, Sequence, Tuple

from p2poverlay.message import MAX_NAME_LENGTH, MAX_TTL, isNodeId


class ConfigError(ValueError):
    """
    A setting of a L{NodeConfig} is not valid; C{str()} of it is one line.

    @ivar fields: the names of the settings at fault, as they appear in
        the text (so that a front end can name its own options instead).
    """

    def __init__(self, message: str, *fields: str) -> None:
        super().__init__(message)
        self.fields = fields


# Settings that count something: at least 1.
_COUNTS = ("maxLineLength", "minPeers", "maxPeers", "maxDirectLinks",
           "seenCacheSize", "maxPeersPerExchange", "addressBookSize",
           "maxInbound", "maxOutbound", "maxSendBuffer",
           "maxInboundPerAddress", "maxPendingPerAddress",
           "maxNeighboursPerAddress", "sendWindow", "sendQueueLimit",
           "dhtK", "dhtB", "dhtAlpha", "dhtMaxLookups", "relayCircuits",
           "relayReservations", "relayCircuitBytes")
# Kademlia's b at most: 2^b - 1 buckets per b bits of prefix.
MAX_DHT_B = 8
# Times and rates: more than 0.
_POSITIVE = ("handshakeTimeout", "connectTimeout", "ackTimeout",
             "seenCacheTTL", "broadcastWindow", "directLinkIdle", "exchangeInterval",
             "graftTimeout", "pingInterval", "peerTimeout",
             "reconnectInitialDelay", "reconnectMaxDelay", "forgetAfter",
             "messageRate", "messageBurst", "banThreshold", "banTime",
             "connectionRatePerAddress", "connectionBurstPerAddress",
             "dhtRequestTimeout", "dhtRefreshInterval", "dhtRequestRate",
             "dhtRequestBurst", "dhtValueTTL", "relayCircuitTime")


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
        are not neighbours, and for DHT requests (a DHT join alone asks a
        few dozen nodes: fewer would close links that are dialed again
        moments later).
    @ivar broadcastMode: C{"tree"} (Plumtree: payload along a spanning tree,
        ids to the other neighbours) or C{"flood"} (payload to every
        neighbour).
    """

    listen: str = "tcp:0"
    name: str = ""
    join: Sequence[Tuple[str, int]] = ()
    # (host, port, node id): the node a join address must reach.
    pins: Sequence[Tuple[str, int, str]] = ()
    maxLineLength: int = 65536
    handshakeTimeout: float = 10.0
    connectTimeout: float = 10.0
    ackTimeout: float = 30.0
    # A broadcast tree of 10,000 nodes is up to 31 hops deep (the simulator).
    broadcastTTL: int = 64
    seenCacheSize: int = 100_000
    seenCacheTTL: float = 600.0
    # A broadcast sent longer ago than this (by its origin's clock), or
    # stamped this far ahead of the node's, is dropped: a replay.
    broadcastWindow: float = 300.0
    maxPeersPerExchange: int = 100
    autoConnect: bool = True
    # Topology: how many neighbours a node keeps, and how it broadcasts.
    minPeers: int = 8
    maxPeers: int = 16
    maxDirectLinks: int = 32
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
    # A sample is enough to find neighbours again, as HyParView's passive
    # view is; every entry costs about 0.5 KiB.
    addressBookSize: int = 128
    maxInbound: int = 64
    maxOutbound: int = 64
    maxSendBuffer: int = 4 << 20
    # Above what an honest, windowed sender reaches on loopback (about
    # 10,000 a second in one process, 4,400 through a console).
    messageRate: float = 20000.0
    messageBurst: float = 40000.0
    banThreshold: float = 100.0
    banTime: float = 60.0
    # Per remote address (twice as many per address group beyond the LAN);
    # none of these bind connections from the node's own address.
    maxInboundPerAddress: int = 16
    maxPendingPerAddress: int = 4
    maxNeighboursPerAddress: int = 4
    connectionRatePerAddress: float = 2.0
    connectionBurstPerAddress: float = 16.0
    # Flow control of direct messages: most DATA unconfirmed per
    # connection, most accepted and not yet written by the node.
    sendWindow: int = 256
    sendQueueLimit: int = 100_000
    # Routing by id (the Kademlia DHT).  Off, a node still answers
    # FIND_NODE from the nodes it has links to, but never looks anything up.
    dht: bool = True
    # Contacts per bucket, bits of id a lookup gains per hop beyond
    # log2 k (Kademlia's b: 4 keeps up to 15 buckets per 4 bits of prefix),
    # requests in flight per lookup, lookups under way at most, how long a
    # request waits, how often an idle bucket is refreshed (libp2p's 10
    # minutes), and requests served per peer.
    dhtK: int = 20
    dhtB: int = 4
    dhtAlpha: int = 3
    dhtMaxLookups: int = 16
    dhtRequestTimeout: float = 5.0
    dhtRefreshInterval: float = 600.0
    dhtRequestRate: float = 20.0
    dhtRequestBurst: float = 100.0
    # How long a value put in the DHT lives; its writer puts it again
    # every half of it.
    dhtValueTTL: float = 3600.0
    # Relaying circuits for nodes others cannot dial (see docs/relay.rst):
    # whether at all, circuits and reservations at most, and what one
    # circuit may carry (both ways) and for how long.  A chat session or
    # a file of a few MiB fits; go-libp2p's 2 min and 128 KiB would not.
    relay: bool = True
    relayCircuits: int = 64
    relayReservations: int = 128
    relayCircuitBytes: int = 64 << 20
    relayCircuitTime: float = 3600.0
    # Peer links without TLS: for debugging and as a benchmark baseline
    # only; nothing proves a node id then.
    plaintext: bool = False
    # A private overlay: only nodes holding this secret, or only these
    # node ids, get in.
    networkKey: Optional[bytes] = None
    allowed: Optional[FrozenSet[str]] = None

    def check(self) -> None:
        """
        Check every setting, and the settings against each other.

        @raise ConfigError: for the first one that is not valid.
        """
        for field in _COUNTS:
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) \
                    or value < 1:
                raise ConfigError(f"{field} must be a whole number, at least "
                                  f"1, got {value!r}", field)
        for field in _POSITIVE + ("lazyDelay",):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not (value > 0 or field == "lazyDelay" and value == 0):
                raise ConfigError(f"{field} must be a number more than 0, "
                                  f"got {value!r}", field)
        if not isinstance(self.broadcastTTL, int) \
                or not 1 <= self.broadcastTTL <= MAX_TTL:
            raise ConfigError(f"broadcastTTL must be between 1 and {MAX_TTL}, "
                              f"got {self.broadcastTTL!r}", "broadcastTTL")
        if self.broadcastMode not in ("tree", "flood"):
            raise ConfigError(f"broadcastMode must be 'tree' or 'flood', got "
                              f"{self.broadcastMode!r}", "broadcastMode")
        if not isinstance(self.name, str) or len(self.name) > MAX_NAME_LENGTH \
                or not self.name.isprintable():
            raise ConfigError(f"name must be at most {MAX_NAME_LENGTH} "
                              f"printable characters", "name")
        if not isinstance(self.listen, str) or not self.listen:
            raise ConfigError("listen must be a server endpoint description",
                              "listen")
        for address in self.join:
            if not (isinstance(address, tuple) and len(address) == 2
                    and isinstance(address[0], str) and address[0]
                    and isinstance(address[1], int)
                    and 1 <= address[1] <= 65535):
                raise ConfigError(f"join must hold (host, port) pairs, got "
                                  f"{address!r}", "join")
        for pin in self.pins:
            if not (isinstance(pin, tuple) and len(pin) == 3
                    and isinstance(pin[2], str) and isNodeId(pin[2])):
                raise ConfigError(f"pins must hold (host, port, node id), "
                                  f"got {pin!r}", "pins")
        if self.networkKey is not None and (
                self.plaintext or not isinstance(self.networkKey, bytes)):
            raise ConfigError("a network key needs TLS: it cannot be used "
                              "with plaintext links", "networkKey",
                              "plaintext")
        if self.dhtB > MAX_DHT_B:
            raise ConfigError(f"dhtB must be at most {MAX_DHT_B} (2^b - 1 "
                              f"buckets per b bits), got {self.dhtB!r}",
                              "dhtB")
        if self.minPeers > self.maxPeers:
            raise ConfigError(f"minPeers ({self.minPeers}) is more than "
                              f"maxPeers ({self.maxPeers})",
                              "minPeers", "maxPeers")
