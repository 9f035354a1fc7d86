"""
What happens at a node, as it happens: messages that arrive, peers that
come and go, and the warnings of its log, each as one L{NodeEvent} with
the line a console prints and a JSON-able form for scripts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, cast

from twisted.logger import (
    FilteringLogObserver, ILogObserver, LogLevel, LogLevelFilterPredicate,
    formatEvent, globalLogPublisher,
)
from twisted.python.threadable import isInIOThread

from p2poverlay.events import NodeObserver, ReceivedMessage
from p2poverlay.node import Node
from p2poverlay.records import PeerInfo
from p2poverlay.views import formatMessage, messageView, peerView


@dataclass(frozen=True)
class NodeEvent:
    """
    @ivar kind: C{message}, C{connected}, C{disconnected} or C{warning}.
    @ivar line: what a console prints, unescaped.
    @ivar data: the event as a JSON-able object.
    """

    kind: str
    line: str
    data: Dict[str, Any]


def messageEvent(message: ReceivedMessage) -> NodeEvent:
    """The event of a message delivered to the node."""
    return NodeEvent("message", formatMessage(message), messageView(message))


class NodeWatcher(NodeObserver):
    """
    Calls C{deliver} with a L{NodeEvent} for everything that happens at
    C{node}, in the reactor thread, from L{start} until L{stop}.
    """

    def __init__(self, node: Node, deliver: Callable[[NodeEvent], None]) -> None:
        self.node = node
        self.deliver = deliver
        self._logObserver = FilteringLogObserver(
            cast(ILogObserver, self._logEvent),
            [LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)])
        self.watching = False

    def start(self) -> None:
        if not self.watching:
            self.watching = True
            self.node.addObserver(self)
            globalLogPublisher.addObserver(self._logObserver)

    def stop(self) -> None:
        if self.watching:
            self.watching = False
            self.node.removeObserver(self)
            globalLogPublisher.removeObserver(self._logObserver)

    def _logEvent(self, event: dict) -> None:
        # Warnings and errors: one line each, the first of their text.
        text = formatEvent(event)
        if not text:
            return
        first = text.splitlines()[0]
        level = event.get("log_level")
        warning = NodeEvent("warning", f"! {first}", {
            "level": level.name if level is not None else "warn",
            "text": first})
        if isInIOThread():
            self._deliver(warning)
        else:
            self.node.reactor.callFromThread(self._deliver, warning)

    def _deliver(self, event: NodeEvent) -> None:
        if self.watching:
            self.deliver(event)

    # -- what the node tells us -------------------------------------------

    def messageReceived(self, message: ReceivedMessage) -> None:
        self._deliver(messageEvent(message))

    def peerConnected(self, peer: PeerInfo) -> None:
        self._deliver(NodeEvent("connected", f"* connected: {peer.describe()}",
                                {"peer": peerView(peer)}))

    def peerDisconnected(self, peer: PeerInfo, reason: str) -> None:
        self._deliver(NodeEvent(
            "disconnected", f"* disconnected: {peer.describe()} ({reason})",
            {"peer": peerView(peer), "reason": reason}))
