"""
The address book's I{new} table: nodes only heard of, by the source that
told of them (L{p2poverlay.addrgroups}), so that the entry to evict is
found without looking at them all.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

from p2poverlay.records import DEAD, KnownPeer


def rank(entry: KnownPeer) -> int:
    """0: dialed and never answered; 1: never answered; 2: answered."""
    if entry.last_seen > 0:
        return 2
    return 0 if entry.state == DEAD else 1


def keepNew(entry: KnownPeer) -> Tuple[int, bool, float, float]:
    """The lowest goes first: never answered, dead, seen longest ago."""
    return (rank(entry), entry.state != DEAD, entry.last_seen, entry.since)


class NewTable:
    """
    Node ids of the new table by rank (L{rank}), oldest first, with their
    sources; and how many each source holds.
    """

    def __init__(self) -> None:
        # Node id -> its source, by rank, oldest first.  A source's own
        # entries are found among them: an index by source would cost a
        # dict per source (a book may hold a source per entry) for
        # evictions, which look at a hundred entries or so at most.
        self._byRank: Tuple[Dict[str, str], ...] = ({}, {}, {})
        self.counts: Dict[str, int] = {}
        # How many sources hold each count; the highest count held.
        self._sourcesAt: Dict[int, int] = {}
        self._most = 0

    def __len__(self) -> int:
        return sum(len(ids) for ids in self._byRank)

    def add(self, entry: KnownPeer) -> None:
        """Index C{entry} (not indexed yet) under its source and rank."""
        self._byRank[rank(entry)][entry.node_id] = entry.source
        self._recount(entry.source, 1)

    def remove(self, nodeId: str) -> None:
        """Forget C{nodeId}, if indexed."""
        for ranked in self._byRank:
            source = ranked.pop(nodeId, None)
            if source is not None:
                self._recount(source, -1)
                return

    def _recount(self, source: str, delta: int) -> None:
        counts, sourcesAt = self.counts, self._sourcesAt
        old = counts.get(source, 0)
        new = old + delta
        if old:
            left = sourcesAt[old] - 1
            if left:
                sourcesAt[old] = left
            else:
                del sourcesAt[old]
        if new:
            counts[source] = new
            sourcesAt[new] = sourcesAt.get(new, 0) + 1
        else:
            del counts[source]
        if new > self._most:
            self._most = new
        elif old == self._most and old not in sourcesAt:
            # Counts move by one: the source just left is the new top.
            self._most = old - 1

    def victim(self, peers: Dict[str, KnownPeer],
               incoming: Optional[str]) -> Optional[KnownPeer]:
        """
        The entry to go: of the source holding the most (so never of a
        source below its even share), the least worth keeping.  A source
        tied for the most never grows at the others' expense: the
        C{incoming} one gives up its own, unless the newcomer is its first.

        @param peers: the book's entries by node id.
        """
        counts = self.counts
        if not counts:
            return None
        most = self._most
        if incoming is not None and counts.get(incoming) == most > 1:
            return self.worstOf(incoming, peers)
        if self._sourcesAt[most] == 1:
            return self.worstOf(
                next(s for s, held in counts.items() if held == most), peers)
        for ids in self._byRank[:2]:
            for nodeId, source in ids.items():
                if counts[source] == most:
                    return peers[nodeId]
        return min((peers[n] for n, source in self._byRank[2].items()
                    if counts[source] == most), key=keepNew)

    def worstOf(self, source: str, peers: Dict[str, KnownPeer]) -> KnownPeer:
        """The entry of C{source} (one that holds some) least worth
        keeping."""
        for ranked in self._byRank[:2]:  # never answered: the oldest
            for nodeId, of in ranked.items():
                if of == source:
                    return peers[nodeId]
        return min((peers[n] for n, of in self._byRank[2].items()
                    if of == source), key=keepNew)
