"""
What a Node tells its observers: delivered messages and peers that come
and go.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Optional

from twisted.logger import Logger
from zope.interface import Interface

from p2poverlay.interfaces import ConnectionListener
from p2poverlay.records import PeerInfo


@dataclass(frozen=True)
class ReceivedMessage:
    """
    A message delivered to this node.

    @ivar kind: C{"direct"} or C{"broadcast"}.
    @ivar sender_id: node id of the node that wrote the message.
    @ivar sender: that node's L{PeerInfo} if it is a peer of this node.
    @ivar via: the peer this node received the message from.
    """

    kind: str
    message_id: str
    body: str
    sender_id: str
    sender_name: str
    sender: Optional[PeerInfo]
    via: PeerInfo


class INodeObserver(Interface):
    """
    Receives what happens at a node.  Observers are called in the
    reactor thread; subclass L{NodeObserver} to implement only some methods.
    """

    def messageReceived(message: ReceivedMessage) -> None:
        """A direct or broadcast message was delivered to this node."""

    def peerConnected(peer: PeerInfo) -> None:
        """A new peer completed its handshake."""

    def peerDisconnected(peer: PeerInfo, reason: str) -> None:
        """A peer's connection closed."""


class NodeObserver:
    """An L{INodeObserver} that ignores everything; override what you need."""

    def messageReceived(self, message: ReceivedMessage) -> None:
        pass

    def peerConnected(self, peer: PeerInfo) -> None:
        pass

    def peerDisconnected(self, peer: PeerInfo, reason: str) -> None:
        pass


@dataclass
class NodeStats:
    """Counters of what this node has done since it started."""

    broadcastsDelivered: int = 0
    broadcastDuplicates: int = 0
    broadcastsDropped: int = 0
    # Broadcasts dropped unrelayed: older than the replay window, or not
    # signed by their origin.
    broadcastsStale: int = 0
    broadcastsForged: int = 0
    directDelivered: int = 0
    # Broadcast cost: payload lines (BROADCAST) and control lines (IHAVE,
    # GRAFT, PRUNE) this node sent, and their bytes.
    broadcastPayloadsSent: int = 0
    broadcastPayloadBytes: int = 0
    broadcastControlSent: int = 0
    broadcastControlBytes: int = 0


class ObserverList(ConnectionListener):
    """
    The observers of one node.  Each is told what it has a method for; one
    that raises is logged and the others are still told.  As a listener of
    the node's connections, it tells them of peers that come and go.
    """

    log = Logger()

    def __init__(self) -> None:
        self._observers: List[object] = []

    def add(self, observer: object) -> None:
        self._observers.append(observer)

    def remove(self, observer: object) -> None:
        if observer in self._observers:
            self._observers.remove(observer)

    def __iter__(self) -> Iterator[object]:
        return iter(list(self._observers))

    def __contains__(self, observer: object) -> bool:
        return observer in self._observers

    def notify(self, method: str, *args: object) -> None:
        """Call C{method(*args)} on every observer that has it."""
        for observer in list(self._observers):
            callback = getattr(observer, method, None)
            if callback is None:
                continue
            try:
                callback(*args)
            except Exception:
                self.log.failure("observer {observer!r} failed in {method}",
                                 observer=observer, method=method)

    def peerAdded(self, info: PeerInfo, connection: object) -> None:
        self.notify("peerConnected", info)

    def peerRemoved(self, info: PeerInfo, connection: object,
                    reason: object) -> None:
        self.notify("peerDisconnected", info, str(reason))
