"""
The DHT's wire messages (see ``docs/protocol.rst``, *Routing by id*).

Each request carries a request id, C{rid}, that its answer repeats: a
node answers C{FIND_NODE} with C{NODES}, C{STORE} with C{STORED} and
C{FIND_VALUE} with C{VALUE}.  They are ordinary
L{P2PMessage}s, decoded and checked by L{p2poverlay.message} once this
module is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Tuple

from p2poverlay.dht.record import MAX_KEY_LENGTH, ValueRecord
from p2poverlay.message import P2PMessage, registerEntryType
from p2poverlay.peeraddress import PeerAddress
from p2poverlay.wirevalues import (
    MAX_REASON_LENGTH, MessageError, checkHex, checkLength, checkMessageId,
    checkRange,
)

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


# Records on the wire: each stands alone, as PEERS entries do.
registerEntryType("Tuple[ValueRecord, ...]", ValueRecord)

# The most records one STORE or VALUE carries.
MAX_RECORDS = 20


def checkRecords(kind: str, records: Tuple[ValueRecord, ...]) -> None:
    if len(records) > MAX_RECORDS:
        raise MessageError(f"{kind} carries more than {MAX_RECORDS} records")


@dataclass(frozen=True)
class Store(P2PMessage):
    """Keep these records (under their keys); answered by L{Stored}."""

    TYPE: ClassVar[str] = "STORE"
    rid: str
    records: Tuple[ValueRecord, ...]

    def validate(self) -> None:
        checkMessageId(self.rid, "rid")
        if not self.records:
            raise MessageError("STORE carries no record")
        checkRecords(self.TYPE, self.records)


@dataclass(frozen=True)
class Stored(P2PMessage):
    """How many records of request C{rid} were kept, and why not the rest."""

    TYPE: ClassVar[str] = "STORED"
    rid: str
    stored: int
    refused: str = ""

    def validate(self) -> None:
        checkMessageId(self.rid, "rid")
        checkRange(self.stored, "stored", MAX_RECORDS)
        checkLength(self.refused, "refused", MAX_REASON_LENGTH)


@dataclass(frozen=True)
class FindValue(P2PMessage):
    """The records under C{key}, or the nodes nearest it: a L{Value}."""

    TYPE: ClassVar[str] = "FIND_VALUE"
    rid: str
    key: str

    def validate(self) -> None:
        checkMessageId(self.rid, "rid")
        if not self.key or len(self.key) > MAX_KEY_LENGTH:
            raise MessageError(f"key must be 1 to {MAX_KEY_LENGTH} characters")


@dataclass(frozen=True)
class Value(P2PMessage):
    """The records the sender holds under the key, and the nodes it knows
    nearest the key."""

    TYPE: ClassVar[str] = "VALUE"
    rid: str
    records: Tuple[ValueRecord, ...]
    nodes: Tuple[PeerAddress, ...]

    def validate(self) -> None:
        checkMessageId(self.rid, "rid")
        checkRecords(self.TYPE, self.records)
        if len(self.nodes) > MAX_NODES:
            raise MessageError(f"VALUE names more than {MAX_NODES} nodes")


# What a query connection (p2poverlay.queries) may carry: requests, and
# back their answers.
REQUESTS = (FindNode, Store, FindValue)
ANSWERS = (Nodes, Stored, Value)
