"""
The records of the overlay: a connected peer (L{PeerInfo}) and a node of
the address book (L{KnownPeer}).  Both are immutable, so that any thread
may hold one.  A node on the wire is a L{p2poverlay.message.PeerAddress}.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import List, Optional, Protocol, Sequence, TypeVar

from twisted.logger import LogLevel

from p2poverlay.addresses import formatAddress
from p2poverlay.message import NEIGHBOUR, PeerAddress

# Records kept by the thousand are leaner without an instance dict.
SLOTS = {"slots": True} if sys.version_info >= (3, 10) else {}


class _Named(Protocol):
    @property
    def node_id(self) -> str: ...

    @property
    def name(self) -> str: ...


_Node = TypeVar("_Node", bound=_Named)

INBOUND = "inbound"
OUTBOUND = "outbound"

# What became of a node of the address book.
KNOWN = "known"  # heard of (peer exchange, saved file), never connected here
CONNECTED = "connected"
RECONNECTING = "reconnecting"
DEAD = "dead"
LEFT = "left"
PEER_STATES = (KNOWN, CONNECTED, RECONNECTING, DEAD, LEFT)


class _Labelled:
    """What a record with C{node_id}, C{host}, C{port}, C{name} shows."""

    __slots__ = ()
    node_id: str
    host: str
    port: int
    name: str

    @property
    def address(self) -> str:
        """``host:port``, with IPv6 hosts in brackets."""
        return formatAddress(self.host, self.port)

    @property
    def shortId(self) -> str:
        return self.node_id[:8]

    def describe(self) -> str:
        """A short human label: ``address (shortid "name")``."""
        label = self.shortId
        if self.name:
            label += f" {self.name!r}"
        return f"{self.address} ({label})"


@dataclass(frozen=True, **SLOTS)
class PeerInfo(_Labelled):
    """
    What is known of one connected peer.

    @ivar host: the address observed on the connection.
    @ivar port: the listening port the peer announced (0: it listens nowhere).
    @ivar direction: L{INBOUND} or L{OUTBOUND}, from this node's side.
    @ivar since: POSIX time at which the handshake completed.
    @ivar role: C{"neighbour"} (part of the overlay) or C{"direct"} (a
        connection for direct messages only).
    @ivar fingerprint: that of the key the peer proved over TLS, or
        L{None} on a link that proves none (plaintext, in memory).
    @ivar record: the peer's signed record of its address, from its HELLO
        (L{p2poverlay.ownaddress}); L{None} from a node without a key.
    @ivar dht: whether the peer serves DHT requests (its HELLO did not say
        C{dht} 0).
    """

    node_id: str
    host: str
    port: int
    name: str
    direction: str
    since: float
    role: str = NEIGHBOUR
    fingerprint: Optional[str] = None
    record: Optional[PeerAddress] = None
    dht: bool = True

    @property
    def logLevel(self) -> LogLevel:
        """How its coming and going is logged: a neighbour's is news
        (info), a direct link's (one for each DHT request to a node not
        linked yet) is not (debug)."""
        return LogLevel.info if self.role == NEIGHBOUR else LogLevel.debug


@dataclass(frozen=True, **SLOTS)
class KnownPeer(_Labelled):
    """
    One node of the address book (and of the saved peers).

    @ivar state: one of L{PEER_STATES}.
    @ivar last_seen: POSIX time it was last connected (0: never).
    @ivar since: POSIX time it entered its current state.
    @ivar next_attempt: for L{RECONNECTING}, POSIX time of the next dial.
    @ivar tried: whether this node ever completed a handshake with it (the
        address book's I{tried} table; otherwise it was only heard of).
    @ivar source: the address group (L{p2poverlay.addrgroups}) of the node
        that told of it (empty: the group of its own address).
    @ivar record: the newest address record the node signed
        (L{p2poverlay.ownaddress}), if one came.
    """

    node_id: str
    host: str
    port: int
    name: str = ""
    state: str = KNOWN
    last_seen: float = 0.0
    since: float = 0.0
    next_attempt: Optional[float] = None
    tried: bool = False
    source: str = ""
    record: Optional[PeerAddress] = None

    @property
    def relayed(self) -> bool:
        """Is it reached only through a relay (its record names one)?"""
        return self.record is not None and bool(self.record.relay)

    @property
    def advertisedHost(self) -> str:
        """The host peer exchange tells of (see L{peerAddress})."""
        return self.record.host if self.record is not None else self.host

    def peerAddress(self) -> PeerAddress:
        """This node as peer exchange sends it: the newest record it
        signed, as it signed it, or (a node without a key) its address."""
        if self.record is not None:
            return self.record
        return PeerAddress(self.node_id, self.host, self.port, self.name)


def matchIdOrName(reference: str, nodes: Sequence[_Node]) -> List[_Node]:
    """
    The nodes (anything with C{node_id} and C{name}) that C{reference}
    names: those with that node id, else those whose id starts with it (4
    characters at least), else those with that name.
    """
    prefix = reference.lower()
    for matches in (
        [n for n in nodes if n.node_id == reference],
        [n for n in nodes if n.node_id.startswith(prefix)]
        if len(prefix) >= 4 else [],
        [n for n in nodes if n.name and n.name == reference],
    ):
        if matches:
            return matches
    return []
