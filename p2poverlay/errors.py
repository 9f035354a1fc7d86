"""
Errors a user of the overlay can meet.  Each one's C{str()} is a complete
one-line explanation, fit to show on a console.
"""


class OverlayError(Exception):
    """Base of the errors p2poverlay reports to its users."""


class PeerUnreachable(OverlayError):
    """A peer could not be connected to."""


class DialLimit(PeerUnreachable):
    """
    This node has as many outbound connections as it may: the dial was
    never made, and nothing is known of the peer (it is not dead).
    """


class HandshakeFailed(PeerUnreachable):
    """A connection closed or was refused before the HELLO handshake completed."""


class SelfConnection(HandshakeFailed):
    """A dialed address turned out to be this node itself."""


class DeliveryFailed(OverlayError):
    """A direct message was not confirmed by its recipient."""


class MessageTooLarge(OverlayError):
    """A message this node was asked to send would not fit a line."""

    @classmethod
    def of(cls, size: int, limit: int) -> "MessageTooLarge":
        return cls(f"the message takes {size} bytes, more than the "
                   f"{limit}-byte limit of a line")


class UnknownPeer(OverlayError):
    """A peer reference matches no peer and is not an address to dial."""


class ListenError(OverlayError):
    """The node could not listen on its configured endpoint."""


class PeerFull(HandshakeFailed):
    """The node reached has no room for another neighbour (or this one)."""


class SendQueueFull(OverlayError):
    """So many direct messages wait to be sent that no more are taken."""

    @classmethod
    def of(cls, limit: int) -> "SendQueueFull":
        return cls(f"{limit} messages already wait to be sent (the send "
                   f"queue limit): try again once some are delivered")


class LookupFailed(OverlayError):
    """A lookup by id did not find the node (or value) it looked for."""


class TooManyLookups(LookupFailed):
    """So many lookups are under way that no more are started."""


class ForgedRecord(LookupFailed):
    """A node was named with an address record it did not sign: it is
    not asked (nothing was sent)."""
