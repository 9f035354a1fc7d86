"""
An overlay in memory, on a virtual clock: L{MemoryNetwork} joins hosts
(one L{MemoryHost}, an L{p2poverlay.network.INetwork}, per host) by
in-memory stream connections with link delays and faults, on a
L{SimulationClock}; L{p2poverlay.memnet.delays} has the delay models.
"""

from p2poverlay.memnet.clock import Livelock, SimulationClock
from p2poverlay.memnet.delays import (
    WAN, FixedDelay, LogNormalDelay, UniformDelay,
)
from p2poverlay.memnet.network import MemoryHost, MemoryNetwork
from p2poverlay.memnet.transport import MemoryConnection, MemoryTransport

__all__ = [
    "FixedDelay", "Livelock", "LogNormalDelay", "MemoryConnection",
    "MemoryHost", "MemoryNetwork", "MemoryTransport", "SimulationClock",
    "UniformDelay", "WAN",
]
