"""
An overlay in memory, on a virtual clock: L{SimulationClock} and the link
delay models of L{p2poverlay.memnet.delays}.
"""

from p2poverlay.memnet.clock import Livelock, SimulationClock
from p2poverlay.memnet.delays import (
    WAN, FixedDelay, LogNormalDelay, UniformDelay,
)

__all__ = [
    "FixedDelay", "Livelock", "LogNormalDelay", "SimulationClock",
    "UniformDelay", "WAN",
]
