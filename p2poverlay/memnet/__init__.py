"""
An overlay in memory: real L{p2poverlay.node.Node}s in one process, on a
virtual clock, over in-memory stream connections with link delays and
faults, deterministic from a seed.

    from p2poverlay.config import NodeConfig
    from p2poverlay.memnet import MemoryOverlay

    overlay = MemoryOverlay(seed=7, config=NodeConfig(minPeers=3))
    overlay.addNodes(10, every=0.1)
    overlay.runUntil(overlay.isConnected, timeout=30, what="joined")
    messageId = overlay.broadcast("n0", "hello")
    overlay.runUntil(overlay.everyoneGot(messageId), 10, "delivered")

L{MemoryOverlay} builds and drives the nodes; L{MemoryNetwork} is the
network under them (one L{MemoryHost}, an
L{p2poverlay.network.INetwork}, per host); L{SimulationClock} is the
clock; L{p2poverlay.memnet.delays} has the link delay models;
L{p2poverlay.memnet.broadcasts} measures a broadcast (L{Probe}, L{Spread}).  See
C{docs/memnet.rst}.
"""

from p2poverlay.memnet.broadcasts import (
    Probe, Spread, hops, payloadsSent, reachable, setBroadcastMode,
)
from p2poverlay.memnet.clock import Livelock, SimulationClock
from p2poverlay.memnet.delays import (
    WAN, FixedDelay, LogNormalDelay, UniformDelay,
)
from p2poverlay.memnet.network import MemoryHost, MemoryNetwork
from p2poverlay.memnet.overlay import MemoryOverlay, NotReached, hostAddress
from p2poverlay.memnet.record import Delivery, Reach, Recorder, components
from p2poverlay.memnet.transport import MemoryConnection, MemoryTransport

__all__ = [
    "Delivery", "FixedDelay", "Livelock", "LogNormalDelay", "MemoryConnection",
    "MemoryHost", "MemoryNetwork", "MemoryOverlay", "MemoryTransport",
    "NotReached", "Probe", "Reach", "Recorder", "SimulationClock", "Spread",
    "UniformDelay", "WAN", "components", "hops", "hostAddress", "payloadsSent",
    "reachable", "setBroadcastMode",
]
