"""
The address book: every node this node knows of, connected or not.

The peer registry holds the live connections; the address book remembers
where nodes listen and what became of them (known, connected, reconnecting,
dead, left), is bounded in size, and is what the node saves and reloads across
restarts.  It belongs to the reactor thread.

As in Bitcoin Core's addrman, it has two tables.  I{Tried} holds the nodes
this node has completed a handshake with, ever; I{new} those it only heard
of.  A node only heard of never takes the place of a tried one, and the new
table is shared out by I{source}, the address group of whoever told of the
node: one source holds at most a third of it, and when it is full, the
entry that goes is one of the source holding the most, so one peer flooding
fake addresses pushes out its own, never the others' share.
"""

from __future__ import annotations

from dataclasses import replace
import random
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from p2poverlay.addrgroups import addressGroup
from p2poverlay.newtable import NewTable, rank
from p2poverlay.peeraddress import PeerAddress
from p2poverlay.records import CONNECTED, KNOWN, KnownPeer

# The tried table's part of the book (Bitcoin Core gives it a fifth).
TRIED_SHARE = 0.25
# The most of the new table one source may hold, even with room to spare.
SOURCE_SHARE = 1 / 3
# Distinct ports the book keeps one int object for (see AddressBook._port).
SHARED_PORTS = 64


def _newer(record: Optional[PeerAddress], than: Optional[PeerAddress]) -> bool:
    return record is not None and (than is None or record.seq > than.seq)


def _keepTried(entry: KnownPeer) -> Tuple[float, float]:
    return (entry.last_seen, entry.since)


class AddressBook:
    """
    Known nodes by node id, at most C{maxSize}: a tried table of at most
    C{triedSize} and a new table that has the rest of the room.  Connected
    nodes are never evicted (the book may hold more than C{maxSize} while
    they do).

    @ivar maxSize: the most entries kept.
    @ivar triedSize: the most entries kept in the tried table; beyond it,
        the one not connected that was seen longest ago goes back to new.
    @ivar newSize: the most entries kept in the new table.
    @ivar sourceSize: the most entries of the new table from one source;
        beyond it, a source's newcomer takes the place of its own worst.
    """

    def __init__(self, maxSize: int, now: Callable[[], float]) -> None:
        """
        @param maxSize: the most entries kept.
        @param now: the clock (POSIX seconds).
        """
        self.maxSize = maxSize
        self.triedSize = int(maxSize * TRIED_SHARE)
        self.newSize = maxSize - self.triedSize
        self.sourceSize = max(1, int(self.newSize * SOURCE_SHARE))
        self._now = now
        # Oldest first (a dict keeps the order entries came in).
        self._peers: Dict[str, KnownPeer] = {}
        self._tried: Dict[str, None] = {}
        self._new = NewTable()
        self._anchors: List[str] = []
        self._ports: Dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._peers)

    def __contains__(self, nodeId: object) -> bool:
        return nodeId in self._peers

    def get(self, nodeId: str) -> Optional[KnownPeer]:
        return self._peers.get(nodeId)

    def recordOf(self, nodeId: str) -> Optional[PeerAddress]:
        """The signed address record kept of C{nodeId}, if any."""
        known = self._peers.get(nodeId)
        return known.record if known is not None else None

    def all(self) -> List[KnownPeer]:
        return list(self._peers.values())

    def randomEntries(self, rng: random.Random) -> Iterator[KnownPeer]:
        """Every entry once, in random order, each drawn as it is wanted
        (a Fisher-Yates shuffle that goes no further than asked)."""
        entries = list(self._peers.values())
        for last in range(len(entries) - 1, -1, -1):
            pick = rng.randrange(last + 1)
            entries[last], entries[pick] = entries[pick], entries[last]
            yield entries[last]

    def tried(self) -> List[KnownPeer]:
        """The entries of the tried table."""
        return [self._peers[nodeId] for nodeId in self._tried]

    def sources(self) -> Dict[str, int]:
        """How many entries of the new table each source holds."""
        return dict(self._new.counts)

    # -- what the node learns ---------------------------------------------

    def learn(self, nodeId: str, host: str, port: int, name: str = "",
              lastSeen: float = 0.0, source: Optional[str] = None,
              record: Optional[PeerAddress] = None) -> Optional[KnownPeer]:
        """
        Remember a node heard of (from peer exchange, a saved file, a
        HELLO) without changing what is known of one already in the book,
        except where the node signed a newer C{record} of its address:
        the newest record wins.

        @param source: the host that told of it (its address group counts);
            by default C{host}, the node telling of itself.
        @param record: the node's own signed record of this address, if
            it came with one (and was checked).
        @return: the entry, or L{None} if it made no room (or C{port} is 0).
        """
        old = self._peers.get(nodeId)
        if old is not None:
            if _newer(record, old.record) and old.state != CONNECTED:
                # The node moved, in its own words.
                old = self._peers[nodeId] = replace(
                    old, host=host, port=self._port(port), name=name,
                    record=record)
            return old
        if not port:
            return None
        group = addressGroup(host if source is None else source)
        return self._put(KnownPeer(nodeId, host, self._port(port), name, KNOWN,
                                   lastSeen, self._now(), source=group,
                                   record=record))

    def restore(self, entries: Iterable[KnownPeer]) -> int:
        """
        Take back saved entries, in their tables and from their sources,
        in the order given (the first are the likeliest kept); each
        starts L{KNOWN}.  Entries already in the book are left alone.

        @return: how many were kept.
        """
        now = self._now()
        added = []
        for entry in entries:
            if entry.node_id in self._peers or not entry.port:
                continue
            self._put(replace(entry, state=KNOWN, since=now,
                              next_attempt=None, port=self._port(entry.port),
                              source=entry.source or addressGroup(entry.host)))
            added.append(entry.node_id)
        return sum(1 for nodeId in added if nodeId in self._peers)

    def update(self, nodeId: str, host: str, port: int, name: str,
               state: str, nextAttempt: Optional[float] = None,
               record: Optional[PeerAddress] = None) -> Optional[KnownPeer]:
        """
        Record what is now true of a node (L{None} if it made no room); a
        node L{CONNECTED} enters the tried table.
        """
        now = self._now()
        old = self._peers.get(nodeId)
        if old is not None:
            # Keep the strings the book has rather than a second copy of
            # each (a HELLO decodes its own).
            nodeId = old.node_id
            host = old.host if old.host == host else host
            name = old.name if old.name == name else name
        since = old.since if old is not None and old.state == state else now
        lastSeen = now if state == CONNECTED else (old.last_seen if old else 0.0)
        tried = state == CONNECTED or (old is not None and old.tried)
        source = old.source if old is not None else addressGroup(host)
        if old is not None and not _newer(record, old.record) and port:
            record = old.record  # (Port 0 withdraws the address and all.)
        return self._put(KnownPeer(nodeId, host, self._port(port), name,
                                   state, lastSeen, since, nextAttempt, tried,
                                   source, record))

    def setState(self, nodeId: str, state: str,
                 nextAttempt: Optional[float] = None) -> Optional[KnownPeer]:
        """Record the new C{state} of a node in the book (else L{None})."""
        old = self._peers.get(nodeId)
        if old is None:
            return None
        since = old.since if old.state == state else self._now()
        lastSeen = old.last_seen
        if old.state == CONNECTED:
            lastSeen = self._now()
        entry = replace(old, state=state, since=since, last_seen=lastSeen,
                        next_attempt=nextAttempt)
        if state == CONNECTED and not old.tried:
            return self._put(replace(entry, tried=True))
        self._peers[nodeId] = entry
        if not old.tried and rank(old) != rank(entry):
            self._unindex(old)
            self._index(entry)
        return entry

    def forget(self, nodeId: str) -> None:
        entry = self._peers.pop(nodeId, None)
        if entry is not None:
            self._unindex(entry)

    # -- anchors --------------------------------------------------------------

    def setAnchors(self, nodeIds: Iterable[str]) -> None:
        """
        The nodes to dial before any other (the outbound neighbours of the
        last run); those not in the book are ignored.
        """
        self._anchors = [n for n in nodeIds if n in self._peers]

    def isAnchor(self, nodeId: str) -> bool:
        return nodeId in self._anchors

    def anchors(self) -> List[str]:
        """The anchors not dialed yet."""
        return list(self._anchors)

    def anchorDialed(self, nodeId: str) -> None:
        """C{nodeId} was dialed: it is an anchor no longer."""
        if nodeId in self._anchors:
            self._anchors.remove(nodeId)

    def _port(self, port: int) -> int:
        """
        The one int object for C{port}: each decoded line makes its own,
        and most nodes listen on the same few ports.
        """
        ports = self._ports
        shared = ports.get(port)
        if shared is not None:
            return shared
        if len(ports) < SHARED_PORTS:
            ports[port] = port
        return port

    # -- the two tables -------------------------------------------------------

    def _index(self, entry: KnownPeer) -> None:
        if entry.tried:
            self._tried[entry.node_id] = None
        else:
            self._new.add(entry)

    def _unindex(self, entry: KnownPeer) -> None:
        if entry.tried:
            self._tried.pop(entry.node_id, None)
        else:
            self._new.remove(entry.node_id)

    def _put(self, entry: KnownPeer) -> Optional[KnownPeer]:
        old = self._peers.get(entry.node_id)
        if old is not None:
            self._unindex(old)
        self._peers[entry.node_id] = entry
        self._index(entry)
        self._makeRoom(None if entry.tried else entry.source)
        return self._peers.get(entry.node_id)

    def _makeRoom(self, incoming: Optional[str]) -> None:
        while len(self._tried) > self.triedSize:
            idle = [self._peers[n] for n in self._tried
                    if self._peers[n].state != CONNECTED]
            if not idle:
                break
            demoted = replace(min(idle, key=_keepTried), tried=False)
            self._unindex(self._peers[demoted.node_id])
            self._peers[demoted.node_id] = demoted
            self._index(demoted)
        new = self._new
        if incoming is not None and \
                new.counts.get(incoming, 0) > self.sourceSize:
            self.forget(new.worstOf(incoming, self._peers).node_id)
        room = max(0, min(self.newSize, self.maxSize - len(self._tried)))
        while len(new) > room:
            victim = new.victim(self._peers, incoming)
            if victim is None:
                break
            self.forget(victim.node_id)
