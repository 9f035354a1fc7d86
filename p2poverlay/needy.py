"""
Nodes in need: the nodes that said, in their HELLO, that they have fewer
than C{minPeers} neighbours, to be told of to other nodes looking for
neighbours.

A node turned away for want of room, or accepted as one of few
neighbours, is a node that wants neighbours and has room for them.  As
HyParView's join wires a newcomer to the nodes the join walks to, a node
that meets many newcomers (a seed) puts some of them in the samples it
sends other newcomers: those dial them and are taken in, where a random
address from the book is likely a node that filled up long ago.

Each node in need is told of a bounded number of times (twice what it
lacks), for a short while (L{NEED_TIME}); at most L{MAX_PER_GROUP} come
from one address group (other nodes on this node's own host aside), so
that keys made up by one host cannot fill the list.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from typing import Callable, List

from p2poverlay.addrgroups import addressGroup
from p2poverlay.peeraddress import PeerAddress

# Nodes in need remembered at most (the least recent go).
MAX_NEEDY = 256
# How long a node in need is told of after its HELLO: past it, it has
# probably found its neighbours.
NEED_TIME = 30.0
# Nodes in need from one address group at most.
MAX_PER_GROUP = 4


class _Need:
    __slots__ = ("address", "group", "until", "left")

    def __init__(self, address: PeerAddress, group: str, until: float,
                 left: int) -> None:
        self.address = address
        self.group = group
        self.until = until
        self.left = left


class NodesInNeed:
    """
    The recent nodes in need of one node.

    @param clock: the reactor's clock (its C{seconds}).
    @param minPeers: the neighbours a node wants.
    """

    def __init__(self, clock, minPeers: int) -> None:
        self.clock = clock
        self.minPeers = minPeers
        self._needs: "OrderedDict[str, _Need]" = OrderedDict()

    def __len__(self) -> int:
        return len(self._needs)

    def __contains__(self, nodeId: object) -> bool:
        return nodeId in self._needs

    def heard(self, address: PeerAddress, neighbours: int,
              fromHost: str, local: bool = False) -> None:
        """
        The node of C{address} says it has C{neighbours} neighbours.

        @param fromHost: the host its connection came from.
        @param local: whether that host is this node's own (not bound by
            L{MAX_PER_GROUP}).
        """
        nodeId = address.node_id
        self._needs.pop(nodeId, None)
        lacking = self.minPeers - neighbours
        if neighbours < 0 or lacking <= 0 or not address.port:
            return
        group = "" if local else addressGroup(fromHost)
        if group and sum(1 for n in self._needs.values()
                         if n.group == group) >= MAX_PER_GROUP:
            return
        self._needs[nodeId] = _Need(address, group,
                                    self.clock.seconds() + NEED_TIME,
                                    2 * lacking)
        while len(self._needs) > MAX_NEEDY:
            self._needs.popitem(last=False)

    def timesLeft(self, nodeId: str) -> int:
        """How many more times C{nodeId} is to be told of (0: none)."""
        need = self._needs.get(nodeId)
        return need.left if need is not None else 0

    def forget(self, nodeId: str) -> None:
        """C{nodeId} is no longer to be told of."""
        self._needs.pop(nodeId, None)

    def take(self, wanted: int, eligible: Callable[[PeerAddress], bool],
             rng: random.Random) -> List[PeerAddress]:
        """
        Up to C{wanted} nodes in need, at random, that are C{eligible};
        each one given counts against the times it may be told of.
        """
        now = self.clock.seconds()
        for nodeId in [k for k, n in self._needs.items() if n.until <= now]:
            del self._needs[nodeId]
        if wanted <= 0 or not self._needs:
            return []
        pool = [n for n in self._needs.values() if eligible(n.address)]
        chosen = rng.sample(pool, min(wanted, len(pool)))
        for need in chosen:
            need.left -= 1
            if need.left <= 0:
                del self._needs[need.address.node_id]
        return [need.address for need in chosen]
