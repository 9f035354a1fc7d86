"""
The peer registry: which nodes this node is connected to.

The reactor thread owns every change; any thread may read.  A lock guards
the table so that a reader on another thread always sees a consistent
snapshot of immutable L{PeerInfo} records.
"""

from __future__ import annotations

import functools
import ipaddress
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple, TypeVar

from p2poverlay.message import NEIGHBOUR

if TYPE_CHECKING:
    from p2poverlay.protocol import PeerConnection

# Records kept by the thousand are leaner without an instance dict.
SLOTS = {"slots": True} if sys.version_info >= (3, 10) else {}
_Node = TypeVar("_Node")

INBOUND = "inbound"
OUTBOUND = "outbound"


@dataclass(frozen=True, **SLOTS)
class PeerInfo:
    """
    What is known of one connected peer.

    @ivar host: the address observed on the connection.
    @ivar port: the listening port the peer announced (0: it listens nowhere).
    @ivar direction: L{INBOUND} or L{OUTBOUND}, from this node's side.
    @ivar since: POSIX time at which the handshake completed.
    @ivar role: C{"neighbour"} (part of the overlay) or C{"direct"} (a
        connection for direct messages only).
    """

    node_id: str
    host: str
    port: int
    name: str
    direction: str
    since: float
    role: str = NEIGHBOUR

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


def formatAddress(host: str, port: int) -> str:
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


@functools.lru_cache(maxsize=1024)
def isLoopback(host: str) -> bool:
    """Is C{host} a loopback address (or ``localhost``)?"""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def parseAddress(text: str) -> Tuple[str, int]:
    """
    Parse ``host:port`` or ``[v6host]:port``.

    @raise ValueError: with a one-line reason.
    """
    host, sep, portText = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"put an IPv6 address in brackets: [{host}]:{portText}")
    if not sep or not host:
        raise ValueError(f"expected host:port, got {text!r}")
    # isdigit() alone accepts non-ASCII digits such as "²" or "٣".
    if not (portText.isascii() and portText.isdigit()) \
            or not 1 <= int(portText) <= 65535:
        raise ValueError(f"bad port in {text!r}")
    return host, int(portText)


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


class AmbiguousPeer(LookupError):
    """A peer reference matches more than one peer."""


class PeerRegistry:
    """Connected peers by node id; safe to read from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._peers: Dict[str, Tuple[PeerInfo, "PeerConnection"]] = {}

    def add(self, info: PeerInfo, connection: "PeerConnection") -> None:
        with self._lock:
            self._peers[info.node_id] = (info, connection)

    def remove(self, nodeId: str, connection: "PeerConnection") -> bool:
        """Remove C{nodeId} if C{connection} is still its connection."""
        with self._lock:
            entry = self._peers.get(nodeId)
            if entry is None or entry[1] is not connection:
                return False
            del self._peers[nodeId]
            return True

    def get(self, nodeId: str) -> Optional[PeerInfo]:
        with self._lock:
            entry = self._peers.get(nodeId)
        return entry[0] if entry else None

    def connection(self, nodeId: str) -> Optional["PeerConnection"]:
        with self._lock:
            entry = self._peers.get(nodeId)
        return entry[1] if entry else None

    def connections(self) -> List["PeerConnection"]:
        with self._lock:
            return [conn for _, conn in self._peers.values()]

    def snapshot(self) -> List[PeerInfo]:
        """All peers, oldest connection first."""
        with self._lock:
            infos = [info for info, _ in self._peers.values()]
        return sorted(infos, key=lambda info: (info.since, info.node_id))

    def __len__(self) -> int:
        with self._lock:
            return len(self._peers)

    def __contains__(self, nodeId: object) -> bool:
        with self._lock:
            return nodeId in self._peers

    def byAddress(self, host: str, port: int) -> Optional[PeerInfo]:
        for info in self.snapshot():
            if info.host == host and info.port == port:
                return info
        return None

    def find(self, reference: str) -> Optional[PeerInfo]:
        """
        Find a peer by ``host:port``, by node id or a unique prefix of it,
        or by name.

        @raise AmbiguousPeer: if the reference matches several peers.
        """
        peers = self.snapshot()
        try:
            host, port = parseAddress(reference)
        except ValueError:
            pass
        else:
            for info in peers:
                if info.host == host and info.port == port:
                    return info
        matches = matchIdOrName(reference, peers)
        if len(matches) > 1:
            raise AmbiguousPeer(
                f"{reference!r} matches {len(matches)} peers: "
                + ", ".join(p.describe() for p in matches))
        return matches[0] if matches else None
