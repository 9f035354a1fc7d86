"""
How far one broadcast got over a memory overlay and what it cost, in the
terms of the Plumtree paper (Leitão, Pereira and Rodrigues, 2007):
reliability, payload messages per delivery, relative message redundancy
and last delivery hop.

    probe = Probe.start(overlay, "n0", "hello")
    overlay.run(10)
    spread = probe.spread(overlay)
    spread.reliability, spread.rmr, spread.lastHop

A payload message is a BROADCAST line a node sent (the node's
C{broadcastPayloadsSent}), eagerly or to answer a GRAFT; IHAVE, GRAFT and
PRUNE are control messages and not counted.  The count of a probe is the
difference of the overlay's total over its run, so it is only that
broadcast's when no other one is under way meanwhile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Iterable, Optional, TYPE_CHECKING

from p2poverlay.memnet.record import components

if TYPE_CHECKING:
    from p2poverlay.memnet.overlay import MemoryOverlay


@dataclass(frozen=True)
class Spread:
    """
    What one broadcast did.

    @ivar expected: nodes that should have delivered it (its origin left
        out).
    @ivar delivered: how many of them did.
    @ivar payloads: payload messages sent for it, by every node.
    @ivar lastHop: the most hops from the origin of a first delivery.
    @ivar lastDelivery: virtual seconds from its start to the last first
        delivery among C{expected} (0 if none).
    """

    message_id: str
    origin: str
    sent: float
    expected: int
    delivered: int
    payloads: int
    lastHop: int
    lastDelivery: float

    @property
    def reliability(self) -> float:
        """The share of the nodes expected that delivered it."""
        return self.delivered / self.expected if self.expected else 1.0

    @property
    def payloadsPerDelivery(self) -> float:
        """Payload messages sent for each delivery (NaN if none)."""
        return self.payloads / self.delivered if self.delivered else math.nan

    @property
    def rmr(self) -> float:
        """
        Relative message redundancy, M{m / (n - 1) - 1}: m payload messages,
        n nodes that have it, the origin included (NaN if none delivered).
        """
        return self.payloadsPerDelivery - 1


@dataclass(frozen=True)
class Probe:
    """A broadcast started by L{start}, to be measured by L{spread}."""

    message_id: str
    origin: str
    sent: float
    payloadsBefore: int

    @classmethod
    def start(cls, overlay: "MemoryOverlay", origin: str,
              body: str) -> "Probe":
        """Broadcast C{body} from node C{origin} and note the time and cost."""
        before = payloadsSent(overlay)
        messageId = overlay.broadcast(origin, body)
        return cls(messageId, origin, overlay.now, before)

    def spread(self, overlay: "MemoryOverlay",
               among: Optional[Iterable[str]] = None) -> Spread:
        """
        How far it got so far.

        @param among: the names of the nodes that should have it; by
            default every running node (but its origin).
        """
        names = [name for name in (among if among is not None
                                   else overlay.running)
                 if name != self.origin]
        records = overlay.records
        firsts = [records[name].first(self.message_id) for name in names]
        times = [d.time for d in firsts if d is not None]
        depth = hops(overlay, self.message_id, self.origin)
        return Spread(
            self.message_id, self.origin, self.sent, len(names), len(times),
            payloadsSent(overlay) - self.payloadsBefore,
            max((depth.get(name, 0) for name in names), default=0),
            max(times, default=self.sent) - self.sent)


def payloadsSent(overlay: "MemoryOverlay") -> int:
    """Payload messages sent so far by every node the overlay made."""
    return sum(node.stats.broadcastPayloadsSent for node in overlay.everyNode)


def hops(overlay: "MemoryOverlay", messageId: str,
         origin: str) -> Dict[str, int]:
    """
    How many hops from C{origin} each node's first delivery of
    C{messageId} travelled.  A node relays a broadcast on its first
    delivery with the TTL less one, and answers a GRAFT with that same
    line, so the hops of a node are those of the neighbour it first got it
    from, plus one: the origin's TTL less the TTL it arrived with.
    """
    depth: Dict[str, int] = {origin: 0}
    records = overlay.records
    for name in records:
        chain = []
        current: Optional[str] = name
        while current is not None and current not in depth:
            delivery = records[current].first(messageId) \
                if current in records else None
            if delivery is None:
                current = None
                break
            chain.append(current)
            current = delivery.via
            if current in chain:  # never for real deliveries; no loop
                current = None
        base = depth.get(current, -1) if current is not None else -1
        for offset, node in enumerate(reversed(chain), 1):
            if base < 0:
                break
            depth[node] = base + offset
    return depth


def reachable(overlay: "MemoryOverlay", origin: str) -> int:
    """
    How many running nodes besides C{origin} are linked to it through
    neighbours now: what flooding the graph as it stands would reach.
    """
    for part in components(overlay.graph()):
        if origin in part:
            return len(part) - 1
    return 0


def setBroadcastMode(overlay: "MemoryOverlay", mode: str) -> None:
    """
    Switch every running node to C{"tree"} (Plumtree) or C{"flood"}, as if
    it had been started so.  Every link is eager after the switch either
    way, which is where a tree starts: its first broadcasts prune it.
    """
    if mode not in ("tree", "flood"):
        raise ValueError(f"broadcast mode must be 'tree' or 'flood', "
                         f"got {mode!r}")
    for name in overlay.running:
        broadcaster = overlay.node(name).broadcaster
        broadcaster.tree = mode == "tree"
        for peer in list(broadcaster.lazy):
            broadcaster.neighbourUp(peer)
