"""
The address book: every node this node knows of, connected or not.

The peer registry holds the live connections; the address book remembers
where nodes listen and what became of them (known, connected, reconnecting,
dead, left), is bounded in size, and is what the node saves and reloads across
restarts.  It belongs to the reactor thread.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from typing import Callable, List, Optional

from p2poverlay.records import CONNECTED, KNOWN, KnownPeer


class AddressBook:
    """
    Known nodes by node id, at most C{maxSize}; when full, the entry not
    connected that was seen longest ago makes room.
    """

    def __init__(self, maxSize: int, now: Callable[[], float]) -> None:
        self.maxSize = maxSize
        self._now = now
        self._peers: "OrderedDict[str, KnownPeer]" = OrderedDict()

    def __len__(self) -> int:
        return len(self._peers)

    def __contains__(self, nodeId: object) -> bool:
        return nodeId in self._peers

    def get(self, nodeId: str) -> Optional[KnownPeer]:
        return self._peers.get(nodeId)

    def all(self) -> List[KnownPeer]:
        return list(self._peers.values())

    def learn(self, nodeId: str, host: str, port: int, name: str = "",
              lastSeen: float = 0.0) -> Optional[KnownPeer]:
        """
        Remember a node heard of (from peer exchange or a saved file) without
        changing what is known of one already in the book.
        """
        if nodeId in self._peers or not port:
            return self._peers.get(nodeId)
        return self._put(KnownPeer(nodeId, host, port, name, KNOWN,
                                   lastSeen, self._now()))

    def update(self, nodeId: str, host: str, port: int, name: str,
               state: str, nextAttempt: Optional[float] = None
               ) -> Optional[KnownPeer]:
        """Record what is now true of a node (L{None} if it made no room)."""
        now = self._now()
        old = self._peers.get(nodeId)
        since = old.since if old is not None and old.state == state else now
        lastSeen = now if state == CONNECTED else (old.last_seen if old else 0.0)
        return self._put(KnownPeer(nodeId, host, port, name, state, lastSeen,
                                   since, nextAttempt))

    def setState(self, nodeId: str, state: str,
                 nextAttempt: Optional[float] = None) -> Optional[KnownPeer]:
        old = self._peers.get(nodeId)
        if old is None:
            return None
        since = old.since if old.state == state else self._now()
        lastSeen = old.last_seen
        if old.state == CONNECTED:
            lastSeen = self._now()
        entry = replace(old, state=state, since=since, last_seen=lastSeen,
                        next_attempt=nextAttempt)
        self._peers[nodeId] = entry
        return entry

    def forget(self, nodeId: str) -> None:
        self._peers.pop(nodeId, None)

    def _put(self, entry: KnownPeer) -> Optional[KnownPeer]:
        self._peers[entry.node_id] = entry
        while len(self._peers) > self.maxSize:
            victim = self._evictionCandidate()
            if victim is None:
                break
            del self._peers[victim]
        return self._peers.get(entry.node_id)

    def _evictionCandidate(self) -> Optional[str]:
        idle = [p for p in self._peers.values() if p.state != CONNECTED]
        if not idle:
            return None
        return min(idle, key=lambda p: (p.last_seen, p.since)).node_id

