"""
The DHT's wire messages (see ``docs/protocol.rst``, *Routing by id*).

Each request carries a request id, C{rid}, that its answer repeats: a
node answers C{FIND_NODE} with C{NODES}.  They are ordinary
L{P2PMessage}s, decoded and checked by L{p2poverlay.message} once this
module is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Tuple

from p2poverlay.message import P2PMessage
from p2poverlay.peeraddress import PeerAddress
from p2poverlay.wirevalues import MessageError, checkHex, checkMessageId

# The most nodes one answer may name: Kademlia's k, with room to spare.
MAX_NODES = 32


def checkTarget(value: str) -> None:
    """A 256-bit id in the DHT's key space: 64 lowercase hex digits."""
    if not value:
        raise MessageError("target must be 64 lowercase hex digits")
    checkHex(value, "target", 64)


@dataclass(frozen=True)
class FindNode(P2PMessage):
    """Which nodes do you know nearest C{target}?  Answered by L{Nodes}."""

    TYPE: ClassVar[str] = "FIND_NODE"
    rid: str
    target: str

    def validate(self) -> None:
        checkMessageId(self.rid, "rid")
        checkTarget(self.target)


@dataclass(frozen=True)
class Nodes(P2PMessage):
    """The nodes the sender knows nearest the target of request C{rid}."""

    TYPE: ClassVar[str] = "NODES"
    rid: str
    nodes: Tuple[PeerAddress, ...]

    def validate(self) -> None:
        checkMessageId(self.rid, "rid")
        if len(self.nodes) > MAX_NODES:
            raise MessageError(f"NODES names more than {MAX_NODES} nodes")
