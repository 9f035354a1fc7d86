"""Two connections to one peer (both nodes dialed): which one stays."""

from __future__ import annotations

from typing import Any

from p2poverlay.admission import isRelayed
from p2poverlay.message import NEIGHBOUR


def keepsNew(new: Any, old: Any, ownId: str, remoteId: str) -> bool:
    """
    Of two connections between nodes C{ownId} and C{remoteId}, does C{new}
    stay?  Both sides keep one of their own over one through a relay,
    then a neighbour's over a direct link, else the one dialed by the node
    with the lower id.  If one node dialed both, the older one stays: a
    HELLO that merely repeats a connected node's id cannot push that node
    off.
    """
    if isRelayed(new) != isRelayed(old):
        return isRelayed(old)  # A link of their own beats a relay's.
    if new.role != old.role:
        return new.role == NEIGHBOUR
    newDialer, oldDialer = (ownId if c.outbound else remoteId
                            for c in (new, old))
    return newDialer != oldDialer and newDialer == min(ownId, remoteId)
