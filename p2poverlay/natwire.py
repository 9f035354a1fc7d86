"""
The wire messages of reachability (see ``docs/protocol.rst``, *Dial-back*).

A node that wants to know whether others can dial it sends
L{DialBackRequest} to a peer, naming the address it believes it has; the
peer dials that address afresh with a connection of role ``probe`` whose
HELLO carries the request's nonce, and reports how that went in a
L{DialBackResult}.  When what a node advertises changes, it tells its
peers in L{Address}.  They are ordinary L{P2PMessage}s, decoded and checked
by L{p2poverlay.message} once this module is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Dict

from p2poverlay.message import P2PMessage
from p2poverlay.wirevalues import (
    MAX_HOST_LENGTH, MAX_REASON_LENGTH, MessageError, checkHex, checkLength,
    checkNodeId, checkPort, checkRange, checkSigned,
)

# What a dial-back came to, as DialBackResult says it.
REACHED = "reached"  # the probe reached the node (its nonce went with it)
UNREACHED = "unreached"  # the probe found nobody, or somebody else
REFUSED = "refused"  # the peer would not dial (see the reason)
OUTCOMES = (REACHED, UNREACHED, REFUSED)


@dataclass(frozen=True)
class DialBackRequest(P2PMessage):
    """Dial me back at C{host:port} with C{nonce}, please."""

    TYPE: ClassVar[str] = "DIAL_BACK"
    nonce: str
    host: str
    port: int

    def validate(self) -> None:
        if not self.nonce:
            raise MessageError("DIAL_BACK lacks a nonce")
        checkHex(self.nonce, "nonce", 64)
        if not self.host:
            raise MessageError("DIAL_BACK lacks a host")
        checkLength(self.host, "host", MAX_HOST_LENGTH)
        checkPort(self.port, "port")


@dataclass(frozen=True)
class DialBackResult(P2PMessage):
    """How the dial-back asked for with C{nonce} went."""

    TYPE: ClassVar[str] = "DIAL_BACK_RESULT"
    nonce: str
    outcome: str
    reason: str = ""

    def validate(self) -> None:
        checkHex(self.nonce, "nonce", 64)
        if self.outcome not in OUTCOMES:
            raise MessageError(f"unknown outcome {self.outcome[:32]!r}")
        checkLength(self.reason, "reason", MAX_REASON_LENGTH)


@dataclass(frozen=True)
class Address(P2PMessage):
    """
    The sender's new word on where it listens, to the peers it is
    connected to, as its HELLO would now say it: C{port} 0 withdraws the
    address it said before (nobody can dial it there).  From a node with
    a key, a nonzero port comes with its signed record (see
    L{p2poverlay.ownaddress}).
    """

    TYPE: ClassVar[str] = "ADDRESS"
    port: int
    host: str = ""
    seq: int = 0
    key: str = ""
    signature: str = ""
    # Reached through a relay: host and port are the relay's, and this is
    # its node id.
    relay: str = ""

    def toDict(self) -> Dict[str, Any]:
        fields = super().toDict()
        if not self.key:
            del fields["host"], fields["seq"], fields["key"], \
                fields["signature"]
        if not self.relay:
            del fields["relay"]
        return fields

    def validate(self) -> None:
        checkPort(self.port, "port", allowZero=True)
        checkSigned(self.key, self.signature)
        checkLength(self.host, "host", MAX_HOST_LENGTH)
        if self.key and not (self.host and self.port):
            raise MessageError("ADDRESS has a signed record without an "
                               "address")
        if self.relay:
            checkNodeId(self.relay, "relay")
            if not self.key:
                raise MessageError("ADDRESS names a relay without a record")


@dataclass(frozen=True)
class DialMe(P2PMessage):
    """
    Over a connection through a relay, from a node others can dial: dial
    me directly at C{host:port} (connection reversal), so that the two
    need the relay no more.
    """

    TYPE: ClassVar[str] = "DIAL_ME"
    host: str
    port: int

    def validate(self) -> None:
        if not self.host:
            raise MessageError("DIAL_ME lacks a host")
        checkLength(self.host, "host", MAX_HOST_LENGTH)
        checkPort(self.port, "port")


# The steps of a hole punch (see p2poverlay.holepunch).
PUNCH_CONNECT = "connect"  # here is my public address; yours?
PUNCH_NONE = "none"  # no punching with me (my NAT maps per destination)
# "Dial now", from nodes that sent no rtt: still a step, and ignored (the
# answer to their connect was dialed at once).
PUNCH_SYNC = "sync"
PUNCH_STEPS = (PUNCH_CONNECT, PUNCH_NONE, PUNCH_SYNC)
MAX_PUNCH_RTT = 60_000  # ms


@dataclass(frozen=True)
class HolePunch(P2PMessage):
    """
    Over a connection through a relay, between two nodes behind NATs: a
    step of coordinating a TCP simultaneous open (DCUtR's idea).  With
    C{connect}, C{host:port} is the sender's public address; from the
    node that opened the circuit, C{rtt} is the round trip over it it
    measured, in milliseconds (the other dials half of it after reading
    this).
    """

    TYPE: ClassVar[str] = "HOLE_PUNCH"
    step: str
    host: str = ""
    port: int = 0
    rtt: int = 0

    def validate(self) -> None:
        if self.step not in PUNCH_STEPS:
            raise MessageError(f"unknown step {self.step[:32]!r}")
        checkLength(self.host, "host", MAX_HOST_LENGTH)
        checkPort(self.port, "port", allowZero=True)
        checkRange(self.rtt, "rtt", MAX_PUNCH_RTT)
        if self.step == PUNCH_CONNECT and not (self.host and self.port):
            raise MessageError("HOLE_PUNCH connect lacks an address")
