"""
The peer registry: which nodes this node is connected to.

The reactor thread owns every change; any thread may read.  A lock guards
the table so that a reader on another thread always sees a consistent
snapshot of immutable L{PeerInfo} records.  The lists of connections and
of neighbours, asked for on every PING and every handshake, are kept
until the table changes, and the peers by address in an index.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from p2poverlay.addresses import parseAddress
from p2poverlay.message import NEIGHBOUR
from p2poverlay.records import PeerInfo, matchIdOrName

if TYPE_CHECKING:
    from p2poverlay.protocol import PeerConnection

class AmbiguousPeer(LookupError):
    """A peer reference matches more than one peer."""


class PeerRegistry:
    """Connected peers by node id; safe to read from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._peers: Dict[str, Tuple[PeerInfo, "PeerConnection"]] = {}
        # (host, port) -> the ids of the peers there: most often one, so
        # a tuple (48 bytes) rather than a set (216).
        self._addresses: Dict[Tuple[str, int], Tuple[str, ...]] = {}
        # The connections, and those of neighbours, until the next change
        # (a connection's role is settled before it is added).
        self._connections: Optional[List["PeerConnection"]] = None
        self._neighbours: Optional[List["PeerConnection"]] = None

    def _changed(self) -> None:
        self._connections = self._neighbours = None

    def _unindex(self, info: PeerInfo) -> None:
        key = (info.host, info.port)
        ids = tuple(nodeId for nodeId in self._addresses.get(key, ())
                    if nodeId != info.node_id)
        if ids:
            self._addresses[key] = ids
        else:
            self._addresses.pop(key, None)

    def add(self, info: PeerInfo, connection: "PeerConnection") -> None:
        with self._lock:
            old = self._peers.get(info.node_id)
            if old is not None:
                self._unindex(old[0])
            self._peers[info.node_id] = (info, connection)
            key = (info.host, info.port)
            self._addresses[key] = self._addresses.get(key, ()) + (
                info.node_id,)
            self._changed()

    def remove(self, nodeId: str, connection: "PeerConnection") -> bool:
        """Remove C{nodeId} if C{connection} is still its connection."""
        with self._lock:
            entry = self._peers.get(nodeId)
            if entry is None or entry[1] is not connection:
                return False
            del self._peers[nodeId]
            self._unindex(entry[0])
            self._changed()
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
            if self._connections is None:
                self._connections = [conn for _, conn in self._peers.values()]
            return list(self._connections)

    def _neighbourList(self) -> List["PeerConnection"]:
        """The cached list of neighbours (the lock held)."""
        if self._neighbours is None:
            self._neighbours = [conn for _, conn in self._peers.values()
                                if conn.role == NEIGHBOUR]
        return self._neighbours

    def neighbours(self) -> List["PeerConnection"]:
        """The connections of overlay neighbours (not direct links)."""
        with self._lock:
            return list(self._neighbourList())

    def neighbourCount(self) -> int:
        """How many neighbours (L{neighbours}, without the list)."""
        with self._lock:
            return len(self._neighbourList())

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
        """The peer at C{host:port} (the oldest connection, if several)."""
        with self._lock:
            ids = self._addresses.get((host, port))
            if not ids:
                return None
            infos = [self._peers[nodeId][0] for nodeId in ids]
        return min(infos, key=lambda info: (info.since, info.node_id))

    def find(self, reference: str) -> Optional[PeerInfo]:
        """
        Find a peer by ``host:port``, by node id or a unique prefix of it,
        or by name.

        @raise AmbiguousPeer: if the reference matches several peers.
        """
        exact = self.get(reference)  # The common case, without a snapshot.
        if exact is not None:
            return exact
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
