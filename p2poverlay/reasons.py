"""
Why a connection closed, as a value.

A L{CloseReason} is a L{CloseKind} plus a detail.  Everything the node
says or decides about a closed connection is derived from it: the text of
the C{BYE} it sends, the line a console shows, the label metrics count it
under, and whether the peer left, was turned away, or misbehaved.  A peer's
C{BYE} carries the kind as its C{code}, so that the receiver never parses
the text.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from p2poverlay.message import DIRECT, MAX_REASON_LENGTH, Bye


class CloseKind(enum.Enum):
    """The kinds of reasons a connection closes for; the value goes on the wire."""

    LEFT = "left"  # the peer said goodbye
    SHUTDOWN = "shutdown"  # this node is stopping
    HANDSHAKE_TIMEOUT = "handshake_timeout"
    SILENT = "silent"  # nothing heard from the peer for the peer timeout
    NOT_READING = "not_reading"  # the peer read nothing for the peer timeout
    PROTOCOL_ERROR = "protocol_error"
    TOO_LONG = "too_long"  # a line over the limit: that link only
    BANNED = "banned"
    FULL = "full"  # no room for another neighbour
    TOO_MANY = "too_many"  # too many connections in one direction
    ADDRESS_LIMIT = "address_limit"  # too many from the peer's address
    EVICTED = "evicted"  # made room for a newcomer
    NOT_PINNED = "not_pinned"  # not the node pinned for the address
    OUTSIDER = "outsider"  # not a member of this private overlay
    DUPLICATE = "duplicate"  # the pair keeps its other connection
    SELF = "self"  # the node dialed itself
    IDLE = "idle"  # a direct link unused for a while
    DIRECT_LIMIT = "direct_limit"  # too many direct links
    PROBED = "probed"  # a dial-back probe, done
    ANSWERED = "answered"  # a query connection, its request answered
    LOST = "lost"  # the connection went without a word


# The text of each kind; "{}" takes the detail.
_TEXT = {
    CloseKind.LEFT: "peer left",
    CloseKind.SHUTDOWN: "node shutting down",
    CloseKind.HANDSHAKE_TIMEOUT: "handshake timeout",
    CloseKind.SILENT: "no response for {}",
    CloseKind.NOT_READING: "not reading",
    CloseKind.PROTOCOL_ERROR: "protocol error: {}",
    CloseKind.TOO_LONG: "line longer than {}",
    CloseKind.BANNED: "banned: {}",
    CloseKind.FULL: "full",
    CloseKind.TOO_MANY: "too many {} connections",
    CloseKind.ADDRESS_LIMIT: "{} from your address",
    CloseKind.EVICTED: "evicted to make room for {}",
    CloseKind.NOT_PINNED: "not the node expected at this address",
    CloseKind.OUTSIDER: "{}",
    CloseKind.DUPLICATE: "duplicate connection",
    CloseKind.SELF: "connected to self",
    CloseKind.IDLE: "idle direct link",
    CloseKind.DIRECT_LIMIT: "too many direct links",
    CloseKind.PROBED: "dial-back done",
    CloseKind.ANSWERED: "query answered",
    CloseKind.LOST: "connection lost",
}

# Metrics labels: why connections close, as a small fixed set.
BYE = "bye"
TIMEOUT = "timeout"
PROTOCOL_ERROR = "protocol_error"
BANNED = "banned"
FULL = "full"
DUPLICATE = "duplicate"
SELF = "self"
SHUTDOWN = "shutdown"
LOST = "lost"
OTHER = "other"
DISCONNECT_REASONS = (BYE, TIMEOUT, PROTOCOL_ERROR, BANNED, FULL, DUPLICATE,
                      SELF, SHUTDOWN, LOST, OTHER)

_LABEL = {
    CloseKind.SHUTDOWN: SHUTDOWN,
    CloseKind.HANDSHAKE_TIMEOUT: TIMEOUT,
    CloseKind.SILENT: TIMEOUT,
    CloseKind.NOT_READING: TIMEOUT,
    CloseKind.PROTOCOL_ERROR: PROTOCOL_ERROR,
    CloseKind.TOO_LONG: PROTOCOL_ERROR,
    CloseKind.BANNED: BANNED,
    CloseKind.FULL: FULL,
    CloseKind.TOO_MANY: FULL,
    CloseKind.ADDRESS_LIMIT: FULL,
    CloseKind.EVICTED: FULL,
    CloseKind.DIRECT_LIMIT: FULL,
    CloseKind.DUPLICATE: DUPLICATE,
    CloseKind.SELF: SELF,
    CloseKind.LOST: LOST,
}

# No room now: the node is alive, only busy.
_REFUSALS = frozenset({CloseKind.FULL, CloseKind.TOO_MANY,
                       CloseKind.ADDRESS_LIMIT, CloseKind.EVICTED})


@dataclass(frozen=True)
class CloseReason:
    """
    Why one connection closed.

    @ivar kind: what happened.
    @ivar detail: what the kind's text takes (the protocol error, the
        direction, ...); for a reason the peer gave, its own words.
    @ivar remote: whether the peer gave the reason (in its C{BYE}).
    """

    kind: CloseKind
    detail: str = ""
    remote: bool = False

    @classmethod
    def fromBye(cls, bye: Bye) -> "CloseReason":
        """The reason a peer gave in C{bye}."""
        try:
            kind = CloseKind(bye.code)
        except ValueError:
            kind = CloseKind.LEFT  # No code (or an unknown one): a goodbye.
        return cls(kind, bye.reason or _TEXT[CloseKind.LEFT], remote=True)

    @property
    def text(self) -> str:
        """One line for people: what the BYE says, what a console shows."""
        if self.remote:
            return self.detail
        return _TEXT[self.kind].format(self.detail)

    def __str__(self) -> str:
        return self.text

    @property
    def label(self) -> str:
        """The metrics label: one of L{DISCONNECT_REASONS}."""
        if self.remote:
            return BYE
        return _LABEL.get(self.kind, OTHER)

    @property
    def isRefusal(self) -> bool:
        """The connection was turned away for want of room: not a loss."""
        return self.kind in _REFUSALS

    @property
    def isLeave(self) -> bool:
        """The peer said goodbye on purpose: do not chase it."""
        return (self.remote and not self.isRefusal
                and self.kind is not CloseKind.DUPLICATE)

    @property
    def isMisbehaviour(self) -> bool:
        """This node closed it because the peer broke the rules."""
        return not self.remote and self.kind in (CloseKind.PROTOCOL_ERROR,
                                                 CloseKind.BANNED)

    def bye(self) -> Bye:
        """The C{BYE} that tells the peer."""
        return Bye(self.text[:MAX_REASON_LENGTH], self.kind.value)


LOST_CONNECTION = CloseReason(CloseKind.LOST)
SHUTTING_DOWN = CloseReason(CloseKind.SHUTDOWN)
ANSWERED = CloseReason(CloseKind.ANSWERED)


class Departure(enum.Enum):
    """What the close of a peer's connection means for that peer."""

    UNUSED = "unused"  # a direct link closed: no loss
    TURNED_AWAY = "turned away"  # no room on one side: alive, busy
    LEFT = "left"  # it said goodbye: do not chase it
    BANISHED = "banished"  # it broke the rules (or cannot be redialed)
    LOST = "lost"  # gone without a word: redial it


def departure(reason: CloseReason, role: str, port: int) -> Departure:
    """
    What the close, for C{reason}, of a connection of C{role} to a peer
    listening on C{port} (0: nowhere) means for that peer.
    """
    if role == DIRECT:
        return Departure.UNUSED
    if reason.isRefusal:
        return Departure.TURNED_AWAY
    if reason.isLeave:
        return Departure.LEFT
    if reason.isMisbehaviour or not port:
        return Departure.BANISHED
    return Departure.LOST
