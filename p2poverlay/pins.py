"""
Which node a join address must reach.

``--join ID@HOST:PORT`` pins the address to the node C{ID}; an address
joined without one is pinned, over TLS, to the first node met there (as
ssh trusts a host key on first use).  A dial of a pinned address that
reaches another node is turned back.
"""

from __future__ import annotations

from typing import Dict, Iterable, Optional, Tuple

from p2poverlay.records import PeerInfo

Address = Tuple[str, int]


class Pins:
    """Join addresses and the node ids they must reach."""

    def __init__(self, pins: Iterable[Tuple[str, int, str]] = ()) -> None:
        self._pins: Dict[Address, str] = {
            (host, port): nodeId for host, port, nodeId in pins}

    def pin(self, host: str, port: int, nodeId: str) -> None:
        """Dials of C{host:port} must reach the node C{nodeId}."""
        self._pins[(host, port)] = nodeId

    def pinnedAt(self, host: str, port: int) -> Optional[str]:
        """The node id pinned for C{host:port}, if any."""
        return self._pins.get((host, port))

    def trustFirstMet(self, host: str, port: int, peer: PeerInfo) -> None:
        """C{peer}, met at C{host:port}, is who must be there from now on
        if nothing is pinned there yet and it proved its key."""
        if peer.fingerprint and (host, port) not in self._pins:
            self._pins[(host, port)] = peer.node_id

    def mismatch(self, dialed: Optional[Address],
                 nodeId: str) -> Optional[str]:
        """The node id pinned for C{dialed} if C{nodeId} is not it."""
        pinned = self._pins.get(dialed) if dialed is not None else None
        return pinned if pinned is not None and pinned != nodeId else None
