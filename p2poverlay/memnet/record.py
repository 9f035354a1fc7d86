"""
What the nodes of a memory overlay saw, and checks over it.

A L{Recorder} observes one node; L{Reach} says who delivered one
broadcast; L{components} finds the connected parts of a neighbour graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import (
    Callable, Dict, Iterable, List, Mapping, Optional, Set, Tuple,
)

from twisted.internet.interfaces import IReactorTime

from p2poverlay.events import NodeObserver, ReceivedMessage
from p2poverlay.records import PeerInfo


@dataclass(frozen=True)
class Delivery:
    """A message delivered to a node, with node names for node ids."""

    time: float
    kind: str
    message_id: str
    body: str
    sender: str
    via: str


class Recorder(NodeObserver):
    """
    Records what one node delivers and which peers come and go, and adds
    each event to the overlay's common log.

    @ivar messages: L{Delivery}s, in order.
    @ivar peersUp: C{(time, peer name)} for each peer connected.
    @ivar peersDown: C{(time, peer name, reason)} for each peer lost.
    @ivar history: whether to keep those three and the common log; if
        not, it keeps only each message's first delivery and count.
    """

    def __init__(self, name: str, clock: IReactorTime,
                 nameOf: Callable[[str], str], log: List[tuple],
                 history: bool = True) -> None:
        self.name = name
        self.history = history
        self._clock = clock
        self._nameOf = nameOf
        self._log = log
        self.messages: List[Delivery] = []
        self.peersUp: List[Tuple[float, str]] = []
        self.peersDown: List[Tuple[float, str, str]] = []
        self._counts: Dict[str, int] = {}
        self._first: Dict[str, Delivery] = {}

    def messageReceived(self, message: ReceivedMessage) -> None:
        delivery = Delivery(self._clock.seconds(), message.kind,
                            message.message_id, message.body,
                            self._nameOf(message.sender_id),
                            self._nameOf(message.via.node_id))
        count = self._counts.get(message.message_id, 0)
        self._counts[message.message_id] = count + 1
        if not count:
            self._first[message.message_id] = delivery
        if not self.history:
            return
        self.messages.append(delivery)
        self._log.append((delivery.time, self.name, "message", delivery.kind,
                          delivery.body, delivery.sender, delivery.via))

    def peerConnected(self, peer: PeerInfo) -> None:
        if not self.history:
            return
        now = self._clock.seconds()
        self.peersUp.append((now, self._nameOf(peer.node_id)))
        self._log.append((now, self.name, "up", self._nameOf(peer.node_id),
                          peer.role))

    def peerDisconnected(self, peer: PeerInfo, reason: str) -> None:
        if not self.history:
            return
        now = self._clock.seconds()
        self.peersDown.append((now, self._nameOf(peer.node_id), reason))
        self._log.append((now, self.name, "down", self._nameOf(peer.node_id),
                          reason))

    def count(self, messageId: str) -> int:
        """How many times this node delivered message C{messageId}."""
        return self._counts.get(messageId, 0)

    def first(self, messageId: str) -> Optional[Delivery]:
        """This node's first delivery of message C{messageId}, if any."""
        return self._first.get(messageId)


@dataclass(frozen=True)
class Reach:
    """
    How far one broadcast got: C{counts} maps each node that should have
    delivered it to how many times it did.
    """

    message_id: str
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def missing(self) -> List[str]:
        """Nodes that never delivered it."""
        return sorted(n for n, count in self.counts.items() if count == 0)

    @property
    def duplicated(self) -> List[str]:
        """Nodes that delivered it more than once."""
        return sorted(n for n, count in self.counts.items() if count > 1)

    @property
    def complete(self) -> bool:
        """Did every node deliver it exactly once?"""
        return all(count == 1 for count in self.counts.values())


def mutualLinks(graph: Mapping[str, Set[str]]) -> Dict[str, Set[str]]:
    """The links of C{graph} that both of their ends list."""
    return {node: {other for other in peers
                   if node in graph.get(other, ())}
            for node, peers in graph.items()}


def components(graph: Mapping[str, Iterable[str]]) -> List[Set[str]]:
    """
    The connected components of an undirected C{graph} (node -> linked
    nodes), largest first.
    """
    seen: Set[str] = set()
    parts: List[Set[str]] = []
    for start in sorted(graph):
        if start in seen:
            continue
        part = {start}
        frontier = [start]
        while frontier:
            node = frontier.pop()
            for other in graph.get(node, ()):
                if other in graph and other not in part:
                    part.add(other)
                    frontier.append(other)
        seen |= part
        parts.append(part)
    parts.sort(key=lambda part: (-len(part), min(part)))
    return parts
