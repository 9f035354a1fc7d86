"""
Epidemic broadcast over the node's neighbours: Plumtree, or plain flooding.

Plumtree (Leitão, Pereira and Rodrigues, "Epidemic Broadcast Trees", 2007)
sends each payload along a spanning tree that the broadcasts build
themselves.  Every neighbour starts I{eager} (it gets payloads).  A node
that receives a payload it already has answers PRUNE, and both ends of that
link turn it I{lazy}: from then on it carries only message ids, in IHAVE
batches.  A node that hears of an id by IHAVE and does not get the payload
within the graft timeout (at least C{graftTimeout}, longer where payloads
come late: L{p2poverlay.graftclock}) sends GRAFT to an announcer, which
sends the payload and turns the link eager again: the tree repairs itself
when a node on it dies.  In steady state each node receives each payload once.

Flooding is the same machine with pruning off: every neighbour stays eager
and gets every payload.  It still answers GRAFT and IHAVE, so nodes of
either mode interoperate.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from typing import Callable, Dict, List, Optional, Set

from twisted.internet.interfaces import IDelayedCall

from p2poverlay.checks import BroadcastChecks
from p2poverlay.config import NodeConfig
from p2poverlay.dispatch import Dispatcher
from p2poverlay.errors import MessageTooLarge
from p2poverlay.events import NodeStats, ReceivedMessage
from p2poverlay.graftclock import GraftTimeout
from p2poverlay.interfaces import ConnectionListener
from p2poverlay.limits import TokenBucket
from p2poverlay.message import (
    MAX_IDS, NEIGHBOUR, Broadcast, Graft, IHave, P2PMessage, Prune,
)
from p2poverlay.protocol import PeerConnection
from p2poverlay.reasons import CloseReason
from p2poverlay.records import PeerInfo
from p2poverlay.registry import PeerRegistry
from p2poverlay.seen import SeenCache
from p2poverlay.signing import Signer, Verifier

# Payloads kept to answer GRAFTs: at most this many, and this many bytes.
PAYLOAD_CACHE_SIZE = 1024
PAYLOAD_CACHE_BYTES = 4 << 20
# Ids announced by IHAVE that one neighbour may make this node track, per
# second and at once: each broadcast is announced once per link, so this
# is far above honest traffic, and one flooder fills a fraction of
# MAX_MISSING (a flooded id is given up within about a second).
ANNOUNCED_IDS_PER_SECOND = 1_000.0
ANNOUNCED_IDS_BURST = 5_000.0
# Ids waited for at most, and announcers remembered for each.
MAX_MISSING = 20_000
MAX_ANNOUNCERS = 8


def _neighboursOnly(handler: Callable[..., None]) -> Callable[..., None]:
    """
    Only neighbour links carry broadcasts: what comes over a direct link
    (opened for direct messages, past the bound on neighbours) is ignored.
    """
    def handle(connection: PeerConnection, message: P2PMessage) -> None:
        if connection.role == NEIGHBOUR:
            handler(connection, message)
    return handle


class EpidemicBroadcast(ConnectionListener):
    """
    The broadcast state of the node C{nodeId}: eager and lazy neighbours,
    recent payloads, and the ids announced but not yet received.

    It hears of neighbours coming and going from the node's connections
    and handles every broadcast message; it sends what the protocol calls
    for and calls C{deliver} once with each new broadcast.
    """

    def __init__(self, nodeId: str, config: NodeConfig, clock,
                 registry: PeerRegistry, dispatcher: Dispatcher,
                 deliver: Callable[[ReceivedMessage], None],
                 stats: NodeStats, signer: Optional[Signer],
                 verifier: Verifier) -> None:
        self.nodeId = nodeId
        self.signer = signer
        self.clock = clock
        self.peers = registry
        self.deliver = deliver
        self.stats = stats
        self.tree = config.broadcastMode == "tree"
        self.maxLineLength = config.maxLineLength
        self.graftClock = GraftTimeout(config.graftTimeout)
        self.lazyDelay = config.lazyDelay
        self.seen = SeenCache(config.seenCacheSize, config.seenCacheTTL,
                              clock.seconds)
        self.checks = BroadcastChecks(verifier, config.broadcastWindow,
                                      self.seen, clock)
        self.eager: Set[str] = set()
        self.lazy: Set[str] = set()
        # id -> the encoded line to relay; the newest last.
        self._payloads: "OrderedDict[str, bytes]" = OrderedDict()
        self._payloadBytes = 0
        # id -> node ids that announced it, in the order heard, and when
        # it was first announced.
        self._missing: Dict[str, List[str]] = {}
        self._firstHeard: Dict[str, float] = {}
        self._graftTimers: Dict[str, "IDelayedCall"] = {}
        # node id -> ids waiting to go out in one IHAVE.
        self._announce: Dict[str, List[str]] = {}
        self._flushCall: Optional["IDelayedCall"] = None
        # node id -> its budget of announced ids.
        self._announceBudget: Dict[str, TokenBucket] = {}
        # node id -> ids whose payload a GRAFT of its has had (at most once
        # each: a repeated GRAFT must not make this node send it again).
        self._grafted: Dict[str, "OrderedDict[str, None]"] = {}
        for messageType, handler in (
                (Broadcast, self.payloadReceived), (IHave, self.ihaveReceived),
                (Graft, self.graftReceived), (Prune, self.pruneReceived)):
            dispatcher.register(messageType, _neighboursOnly(handler))

    # -- neighbours -----------------------------------------------------

    def roleChanged(self, nodeId: str, old: Optional[str], new: str) -> None:
        if old == new:
            return
        if new == NEIGHBOUR:
            self.neighbourUp(nodeId)
        elif old == NEIGHBOUR:
            self.neighbourDown(nodeId)

    def peerRemoved(self, info: PeerInfo, connection: PeerConnection,
                    reason: CloseReason) -> None:
        if connection.role == NEIGHBOUR:
            self.neighbourDown(info.node_id)
        # A direct link may have sent IHAVE or GRAFT too.
        self._announceBudget.pop(info.node_id, None)
        self._grafted.pop(info.node_id, None)

    def neighbourUp(self, nodeId: str) -> None:
        self.lazy.discard(nodeId)
        self.eager.add(nodeId)

    def neighbourDown(self, nodeId: str) -> None:
        self.eager.discard(nodeId)
        self.lazy.discard(nodeId)
        self._announce.pop(nodeId, None)
        self._announceBudget.pop(nodeId, None)
        self._grafted.pop(nodeId, None)
        for announcers in self._missing.values():
            if nodeId in announcers:
                announcers.remove(nodeId)

    def _makeEager(self, nodeId: str) -> None:
        if nodeId in self.lazy or nodeId in self.eager:
            self.lazy.discard(nodeId)
            self.eager.add(nodeId)

    def _makeLazy(self, nodeId: str) -> None:
        if nodeId in self.eager:
            self.eager.discard(nodeId)
            self.lazy.add(nodeId)

    # -- originating and relaying -----------------------------------------

    def originate(self, message: Broadcast) -> int:
        """
        Broadcast a message of this node's own, stamped with the time now
        and signed (by a node with a key).

        @return: how many neighbours were told (payload or id).
        @raise MessageTooLarge: if it would not fit a line; nobody is told.
        """
        message = replace(message, time=self.checks.now())
        if self.signer is not None:
            message = self.signer.broadcast(message)
        line = message.encode()
        if len(line) > self.maxLineLength:
            raise MessageTooLarge.of(len(line), self.maxLineLength)
        self.seen.add(message.id, message.time)
        self._remember(message.id, line)
        return self._push(message.id, line, exclude=None)

    def payloadReceived(self, connection: "PeerConnection",
                        message: Broadcast) -> None:
        sender = connection.info.node_id
        # The cheap check first: a duplicate is dropped unread.
        if message.id in self.seen:
            self.stats.broadcastDuplicates += 1
            if self.tree and sender in self.eager:
                self._makeLazy(sender)
                self._sendControl(connection, Prune())
            return
        if not self.checks.fresh(message):
            self.stats.broadcastsStale += 1
            return
        wrong = self.checks.signature(message)
        if wrong is not None:
            # Honest nodes relay only what they checked: the sender is to
            # blame, whoever the origin.
            self.stats.broadcastsForged += 1
            connection.protocolError(f"BROADCAST {message.id} {wrong}")
            return
        self.seen.add(message.id, message.time)
        self._stopWaiting(message.id)
        self._makeEager(sender)
        connection.lastUseful = self.clock.seconds()  # first with news
        if message.origin == self.nodeId:
            return  # Our own, come back before its id was seen: not news.
        self.stats.broadcastsDelivered += 1
        self.deliver(ReceivedMessage(
            kind="broadcast", message_id=message.id, body=message.body,
            sender_id=message.origin, sender_name=message.origin_name,
            sender=self.peers.get(message.origin), via=connection.info))
        if message.ttl > 1:
            line = replace(message, ttl=message.ttl - 1).encode()
            self._remember(message.id, line)
            self._push(message.id, line, exclude=sender)

    def _push(self, messageId: str, line: bytes,
              exclude: Optional[str]) -> int:
        told = 0
        registry = self.peers
        stats = self.stats
        for nodeId in list(self.eager):
            if nodeId == exclude:
                continue
            connection = registry.connection(nodeId)
            if connection is None or connection.closing:
                continue
            if connection.sendEncoded(line, Broadcast.TYPE):
                told += 1
                stats.broadcastPayloadsSent += 1
                stats.broadcastPayloadBytes += len(line) + 1
            else:
                stats.broadcastsDropped += 1
        for nodeId in self.lazy:
            if nodeId != exclude:
                self._announce.setdefault(nodeId, []).append(messageId)
                told += 1
        if self._announce:
            self._scheduleFlush()
        return told

    def _remember(self, messageId: str, line: bytes) -> None:
        old = self._payloads.pop(messageId, None)
        if old is not None:
            self._payloadBytes -= len(old)
        self._payloads[messageId] = line
        self._payloadBytes += len(line)
        while self._payloads and (
                len(self._payloads) > PAYLOAD_CACHE_SIZE
                or self._payloadBytes > PAYLOAD_CACHE_BYTES):
            _, dropped = self._payloads.popitem(last=False)
            self._payloadBytes -= len(dropped)

    # -- lazy announcements ---------------------------------------------

    def _scheduleFlush(self) -> None:
        if self.lazyDelay <= 0:
            self.flushAnnouncements()
        elif self._flushCall is None:
            self._flushCall = self.clock.callLater(
                self.lazyDelay, self.flushAnnouncements)

    def flushAnnouncements(self) -> None:
        """Send every queued id to its lazy neighbour, in IHAVE batches."""
        if self._flushCall is not None and self._flushCall.active():
            self._flushCall.cancel()
        self._flushCall = None
        announce, self._announce = self._announce, {}
        for nodeId, ids in announce.items():
            connection = self.peers.connection(nodeId)
            if connection is None:
                continue
            for start in range(0, len(ids), MAX_IDS):
                self._sendControl(connection,
                                  IHave(tuple(ids[start:start + MAX_IDS])))

    def ihaveReceived(self, connection: "PeerConnection",
                      message: IHave) -> None:
        sender = connection.info.node_id
        budget = self._announceBudget.get(sender)
        if budget is None:
            budget = self._announceBudget[sender] = TokenBucket(
                ANNOUNCED_IDS_PER_SECOND, ANNOUNCED_IDS_BURST, self.clock)
        for index, messageId in enumerate(message.ids):
            if messageId in self.seen:
                continue
            # Past its budget, or past what this node waits for, an id is
            # ignored: its payload may still come, eagerly or announced
            # again.  A peer past its budget is read more slowly, so that
            # a flood of ids costs this node little.
            if not budget.take():
                connection.slowDown(
                    (len(message.ids) - index) / ANNOUNCED_IDS_PER_SECOND)
                break
            announcers = self._missing.get(messageId)
            if announcers is None:
                if len(self._missing) >= MAX_MISSING:
                    continue
                announcers = self._missing[messageId] = []
                self._firstHeard[messageId] = self.clock.seconds()
            if sender not in announcers and len(announcers) < MAX_ANNOUNCERS:
                announcers.append(sender)
            if messageId not in self._graftTimers:
                self._graftTimers[messageId] = self.clock.callLater(
                    self.graftTimeout, self._graftTimedOut, messageId)

    def _graftTimedOut(self, messageId: str) -> None:
        """
        An announced payload has not come: ask an announcer for it (and
        take the link into the tree); ask the next one after a shorter wait.
        """
        del self._graftTimers[messageId]
        announcers = self._missing.get(messageId)
        while announcers:
            nodeId = announcers.pop(0)
            connection = self.peers.connection(nodeId)
            if connection is None or connection.closing:
                continue
            self._makeEager(nodeId)
            self._sendControl(connection, Graft((messageId,)))
            self._graftTimers[messageId] = self.clock.callLater(
                self.graftTimeout / 2, self._graftTimedOut, messageId)
            return
        self._missing.pop(messageId, None)
        self._firstHeard.pop(messageId, None)

    def _stopWaiting(self, messageId: str) -> None:
        """The payload of C{messageId} came: how late it was, if announced
        first, sets the graft timeout."""
        self._missing.pop(messageId, None)
        heard = self._firstHeard.pop(messageId, None)
        if heard is not None:
            self.graftClock.observed(self.clock.seconds() - heard)
        timer = self._graftTimers.pop(messageId, None)
        if timer is not None and timer.active():
            timer.cancel()

    # -- tree maintenance -----------------------------------------------

    def graftReceived(self, connection: "PeerConnection",
                      message: Graft) -> None:
        sender = connection.info.node_id
        self._makeEager(sender)
        grafted = self._grafted.setdefault(sender, OrderedDict())
        for messageId in message.ids:
            line = self._payloads.get(messageId)
            if line is None or messageId in grafted:
                continue
            if connection.sendEncoded(line, Broadcast.TYPE):
                grafted[messageId] = None
                if len(grafted) > PAYLOAD_CACHE_SIZE:
                    grafted.popitem(last=False)
                self.stats.broadcastPayloadsSent += 1
                self.stats.broadcastPayloadBytes += len(line) + 1

    def pruneReceived(self, connection: "PeerConnection",
                      message: Prune) -> None:
        if self.tree:
            self._makeLazy(connection.info.node_id)

    def _sendControl(self, connection: "PeerConnection",
                     message: P2PMessage) -> None:
        line = message.encode()
        # Small, and the tree breaks if they go missing: queue them even
        # when the peer reads slowly.
        if connection.sendEncoded(line, message.TYPE, force=True):
            self.stats.broadcastControlSent += 1
            self.stats.broadcastControlBytes += len(line) + 1

    @property
    def graftTimeout(self) -> float:
        """How long this node waits now for an announced payload."""
        return self.graftClock.seconds

    @property
    def waitingFor(self) -> int:
        """How many announced ids this node waits to receive."""
        return len(self._missing)

    def stop(self) -> None:
        """Cancel every timer (the node is stopping)."""
        if self._flushCall is not None and self._flushCall.active():
            self._flushCall.cancel()
        self._flushCall = None
        for timer in self._graftTimers.values():
            if timer.active():
                timer.cancel()
        self._graftTimers.clear()
        self._missing.clear()
        self._firstHeard.clear()
