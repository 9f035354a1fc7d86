"""
The feed: what the web UI shows as it happens.

A L{Feed} observes a node, keeps the most recent messages (received, and
sent through the web API) in a bounded ring buffer and hands every event
(a message, a peer up or down) to its subscribers, the live streams.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Deque, Dict, List

from twisted.logger import Logger

from p2poverlay.events import NodeObserver, ReceivedMessage
from p2poverlay.records import PeerInfo
from p2poverlay.views import broadcastView, messageView, peerView

# How many messages the feed remembers.
FEED_SIZE = 200

Event = Dict[str, object]


class Feed(NodeObserver):
    """
    Recent messages of one node, and subscribers to its live events.

    Each message event gets a sequence number C{seq}, increasing, so that a
    client that reads the ring buffer and a stream at once can tell which
    messages it already has.
    """

    log = Logger()

    def __init__(self, now: Callable[[], float], size: int = FEED_SIZE) -> None:
        self._now = now
        self._messages: Deque[Event] = deque(maxlen=size)
        self._subscribers: List[Callable[[str, Event], None]] = []
        self._seq = 0

    def messages(self) -> List[Event]:
        """The remembered messages, oldest first."""
        return list(self._messages)

    def subscribe(self, callback: Callable[[str, Event], None]) -> None:
        """Call C{callback(eventName, event)} for every event from now on."""
        self._subscribers.append(callback)

    def unsubscribe(self, callback: Callable[[str, Event], None]) -> None:
        if callback in self._subscribers:
            self._subscribers.remove(callback)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def _publish(self, name: str, event: Event) -> None:
        for callback in list(self._subscribers):
            try:
                callback(name, event)
            except Exception:
                self.log.failure("live feed subscriber failed")

    def _addMessage(self, event: Event) -> Event:
        self._seq += 1
        event["seq"] = self._seq
        event["time"] = self._now()
        self._messages.append(event)
        self._publish("message", event)
        return event

    # -- what the node reports ------------------------------------------

    def messageReceived(self, message: ReceivedMessage) -> None:
        self._addMessage({"direction": "in", **messageView(message)})

    def peerConnected(self, peer: PeerInfo) -> None:
        self._publish("peer", {"change": "up", "peer": peerView(peer),
                               "time": self._now()})

    def peerDisconnected(self, peer: PeerInfo, reason: str) -> None:
        self._publish("peer", {"change": "down", "peer": peerView(peer),
                               "reason": reason, "time": self._now()})

    # -- what the web API sends -----------------------------------------

    def broadcastSent(self, messageId: str, body: str,
                      neighbours: int) -> Event:
        return self._addMessage({
            "direction": "out", "kind": "broadcast", "body": body,
            **broadcastView(messageId, neighbours)})

    def directSent(self, peer: PeerInfo, body: str) -> Event:
        return self._addMessage({
            "direction": "out", "kind": "direct", "body": body,
            "message_id": None, "to": peerView(peer)})
