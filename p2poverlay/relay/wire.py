"""
The wire messages of circuit relays (see ``docs/protocol.rst``, *Relays*).

A node that others cannot dial asks a reachable peer, its relay, for a
reservation (L{Reserve}); a dialer asks the relay for a circuit to it
(L{CircuitOpen}), the relay tells the reserved node (L{CircuitIncoming}),
and once that node accepts, the circuit carries bytes both ways
(L{CircuitData}) under a window of credit (L{CircuitCredit}) until either
end, or the relay, closes it (L{CircuitClose}).  A circuit id (C{cid}) is
32 hex digits and names the circuit on one link only: the relay gives the
two legs of a circuit ids of their own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from p2poverlay.message import P2PMessage
from p2poverlay.wirevalues import (
    MAX_REASON_LENGTH, MessageError, checkLength, checkMessageId,
    checkNodeId, checkRange,
)

# Raw bytes in one CIRCUIT_DATA: base64 makes 21,848 characters of them,
# a third of the 64 KiB line limit.
MAX_CHUNK = 16 * 1024
MAX_DATA_CHARACTERS = (MAX_CHUNK + 2) // 3 * 4
# The most credit one CIRCUIT_CREDIT grants, and the longest reservation.
MAX_CREDIT = 1 << 30
MAX_TTL = 86_400

_BASE64 = re.compile(r"\A[A-Za-z0-9+/]*={0,2}\Z")


def checkCircuitId(value: str) -> None:
    checkMessageId(value, "cid")


def rawLength(data: str) -> int:
    """The bytes that the (valid) base64 C{data} stands for, undecoded."""
    return len(data) // 4 * 3 - data.count("=", -2)


@dataclass(frozen=True)
class Reserve(P2PMessage):
    """Relay for me: keep (or renew) a reservation for the sender."""

    TYPE: ClassVar[str] = "RESERVE"


@dataclass(frozen=True)
class Reserved(P2PMessage):
    """
    The reservation holds for C{ttl} seconds; each circuit through it may
    carry C{bytes} bytes (both ways together) for C{seconds} seconds.
    """

    TYPE: ClassVar[str] = "RESERVED"
    ttl: int
    bytes: int
    seconds: int

    def validate(self) -> None:
        if not 1 <= self.ttl <= MAX_TTL:
            raise MessageError(f"ttl out of range: {self.ttl}")
        checkRange(self.bytes, "bytes")
        checkRange(self.seconds, "seconds")


@dataclass(frozen=True)
class ReserveRefused(P2PMessage):
    """No reservation, for C{reason}."""

    TYPE: ClassVar[str] = "RESERVE_REFUSED"
    reason: str = ""

    def validate(self) -> None:
        checkLength(self.reason, "reason", MAX_REASON_LENGTH)


@dataclass(frozen=True)
class CircuitOpen(P2PMessage):
    """Dialer to relay: open circuit C{cid} to the node C{target}."""

    TYPE: ClassVar[str] = "CIRCUIT_OPEN"
    cid: str
    target: str

    def validate(self) -> None:
        checkCircuitId(self.cid)
        checkNodeId(self.target, "target")


@dataclass(frozen=True)
class CircuitIncoming(P2PMessage):
    """Relay to reserved node: C{source} asks for circuit C{cid} to you."""

    TYPE: ClassVar[str] = "CIRCUIT_INCOMING"
    cid: str
    source: str

    def validate(self) -> None:
        checkCircuitId(self.cid)
        checkNodeId(self.source, "source")


@dataclass(frozen=True)
class CircuitAccept(P2PMessage):
    """Reserved node to relay: circuit C{cid} is welcome."""

    TYPE: ClassVar[str] = "CIRCUIT_ACCEPT"
    cid: str

    def validate(self) -> None:
        checkCircuitId(self.cid)


@dataclass(frozen=True)
class CircuitReady(P2PMessage):
    """Relay to dialer: circuit C{cid} reaches its target; bytes may flow."""

    TYPE: ClassVar[str] = "CIRCUIT_READY"
    cid: str

    def validate(self) -> None:
        checkCircuitId(self.cid)


@dataclass(frozen=True)
class CircuitData(P2PMessage):
    """Bytes on circuit C{cid}: 1 to L{MAX_CHUNK} of them, in base64."""

    TYPE: ClassVar[str] = "CIRCUIT_DATA"
    cid: str
    data: str

    def validate(self) -> None:
        checkCircuitId(self.cid)
        if not self.data:
            raise MessageError("CIRCUIT_DATA carries no data")
        if len(self.data) > MAX_DATA_CHARACTERS:
            raise MessageError(f"data longer than {MAX_DATA_CHARACTERS} "
                               f"characters")
        if len(self.data) % 4 or not _BASE64.match(self.data):
            raise MessageError("data is not base64")


@dataclass(frozen=True)
class CircuitCredit(P2PMessage):
    """The sender read C{bytes} more of circuit C{cid}: that many may come."""

    TYPE: ClassVar[str] = "CIRCUIT_CREDIT"
    cid: str
    bytes: int

    def validate(self) -> None:
        checkCircuitId(self.cid)
        if not 1 <= self.bytes <= MAX_CREDIT:
            raise MessageError(f"bytes out of range: {self.bytes}")


@dataclass(frozen=True)
class CircuitClose(P2PMessage):
    """Circuit C{cid} is closed (or refused), for C{reason}."""

    TYPE: ClassVar[str] = "CIRCUIT_CLOSE"
    cid: str
    reason: str = ""

    def validate(self) -> None:
        checkCircuitId(self.cid)
        checkLength(self.reason, "reason", MAX_REASON_LENGTH)
