"""
Membership: which nodes exist, and staying connected to them.

The membership listens to the node's connections: it keeps the address
book, detects silent peers (PING/PONG), redials lost neighbours through
L{PeerLink}s, forgets peers that stay unreachable, and saves the address
book to the node's data directory, with the outbound neighbours it had
when it stopped (the anchors the next start dials first).  Which nodes become neighbours is the
topology's business (L{p2poverlay.topology}).
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Dict, Optional

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from p2poverlay.addressbook import AddressBook
from p2poverlay.addresses import formatAddress
from p2poverlay.config import NodeConfig
from p2poverlay.dispatch import Dispatcher
from p2poverlay.factory import PeerConnectionFactory
from p2poverlay.interfaces import ConnectionListener, IPeerConnectionOwner
from p2poverlay.message import NEIGHBOUR, UNSAID, Hello, Ping, Pong
from p2poverlay.network import INetwork
from p2poverlay.protocol import PeerConnection
from p2poverlay.reasons import CloseKind, CloseReason, Departure, departure
from p2poverlay.reconnect import PeerLink
from p2poverlay.records import (
    CONNECTED, DEAD, KNOWN, LEFT, OUTBOUND, RECONNECTING, KnownPeer,
    PeerInfo,
)
from p2poverlay.registry import PeerRegistry
from p2poverlay.store import NodeStore

# How soon after a change the address book is written to disk.
SAVE_DELAY = 1.0
# Outbound neighbours of the last run dialed first, at most.
MAX_ANCHORS = 16


class Membership(ConnectionListener):
    """
    The address book and the redial links of the node C{nodeId}.

    @ivar random: the source of redial jitter.
    """

    log = Logger()

    def __init__(self, nodeId: str, config: NodeConfig, clock,
                 store: Optional[NodeStore], book: AddressBook,
                 registry: PeerRegistry, network: INetwork,
                 owner: IPeerConnectionOwner, dispatcher: Dispatcher,
                 rng: random.Random) -> None:
        self.nodeId = nodeId
        self.config = config
        self.clock = clock
        self.store = store
        self.peers = registry
        self.network = network
        self.owner = owner
        self.random = rng
        self.book = book
        self.links: Dict[str, PeerLink] = {}
        self.running = False
        self._liveness = LoopingCall(self._checkLiveness)
        self._liveness.clock = clock
        self._nonce = 0
        self._saveCall = None
        dispatcher.register(Ping, self._pingReceived)
        dispatcher.register(Pong, self._pongReceived)

    # -- life -------------------------------------------------------------

    def start(self) -> None:
        """
        Start failure detection and load the saved peers and anchors into
        the address book (the topology dials them, anchors first).
        """
        self.running = True
        self._liveness.start(self.config.pingInterval, now=False)
        if self.store is None:
            return
        saved = [p for p in self.store.loadPeers() if p.node_id != self.nodeId]
        # Tried first, then the most recently seen: a full book keeps those.
        saved.sort(key=lambda p: (p.tried, p.last_seen), reverse=True)
        self.book.restore(saved)
        anchors = [p for p in self.store.takeAnchors()
                   if p.node_id != self.nodeId][:MAX_ANCHORS]
        self.book.restore(replace(p, tried=True) for p in anchors)
        self.book.setAnchors(p.node_id for p in anchors)

    def stop(self, save: bool = True) -> Deferred:
        """
        Stop probing and redialing; save the address book and the
        outbound neighbours (the anchors of the next start), unless the
        node stops as a killed process would (C{save} false).
        """
        self.running = False
        if self._liveness.running:
            self._liveness.stop()
        links, self.links = list(self.links.values()), {}
        if save:
            self.save()
            self.saveAnchors()
        elif self._saveCall is not None and self._saveCall.active():
            self._saveCall.cancel()
            self._saveCall = None
        return DeferredList([link.stopService() for link in links])

    # -- what the connections report --------------------------------------------

    def peerReached(self, info: PeerInfo, connection: PeerConnection) -> None:
        """C{connection} is now the one connection to C{info}'s node."""
        self.book.update(info.node_id, info.host, info.port, info.name,
                         CONNECTED, record=info.record)
        link = self.links.get(info.node_id)
        if link is not None:
            if connection.link is link:
                link.reached()
            elif not link.handshaking:
                # Reached through another connection: the link's work is
                # done.  (A link still in its handshake is left alone: the
                # rule for duplicate connections decides which one stays,
                # and both nodes must see that connection through.)
                self._stopLink(info.node_id)
        self._scheduleSave()

    def peerRemoved(self, info: PeerInfo, connection: PeerConnection,
                    reason: CloseReason) -> None:
        """The connection to C{info}'s node closed; decide what comes next."""
        if not self.running:
            return
        nodeId = info.node_id
        link = self.links.get(nodeId)
        gone = departure(reason, connection.role, info.port)
        if gone is Departure.UNUSED:
            self.book.setState(nodeId, KNOWN)
        elif gone is Departure.TURNED_AWAY:
            self._turnedAway(nodeId)
        elif gone in (Departure.LEFT, Departure.BANISHED):
            self._stopLink(nodeId)
            self.book.setState(nodeId, LEFT if gone is Departure.LEFT
                               else DEAD)
        elif link is not None and connection.link is link:
            link.lostAt = self.clock.seconds()
            self.book.setState(nodeId, RECONNECTING)
        else:
            entry = self.book.get(nodeId)
            if entry is not None:
                self._startLink(entry)
        self._scheduleSave()

    def peerTurnedAway(self, hello: Hello, host: str) -> None:
        """This node had no room for the node that said C{hello}."""
        self.book.learn(hello.node_id, host, hello.port, hello.name,
                        source=host)
        self._turnedAway(hello.node_id)

    def _turnedAway(self, nodeId: str) -> None:
        """One of this node and C{nodeId} has no room for the other."""
        self._stopLink(nodeId)
        self.book.setState(nodeId, KNOWN)

    def connectionClosed(self, connection: PeerConnection,
                         reason: CloseReason) -> None:
        link = connection.link
        if link is not None and link.connection is connection:
            link.connection = None

    # -- links ----------------------------------------------------------------

    def _startLink(self, entry: KnownPeer) -> None:
        if entry.node_id in self.links or not self.running:
            return
        link = self.makeLink(entry.node_id, entry.host, entry.port)
        self.links[entry.node_id] = link
        self.book.setState(entry.node_id, RECONNECTING)
        link.startService()

    def makeLink(self, nodeId: str, host: str, port: int,
                 lostAt: Optional[float] = None) -> PeerLink:
        """A link (not started) that redials C{nodeId} at C{host:port}."""
        config = self.config
        return PeerLink(
            nodeId, host, port, self.clock, config,
            self.network.clientEndpoint(host, port, config.connectTimeout),
            lambda link: PeerConnectionFactory(self.owner, outbound=True,
                                               link=link),
            jitter=lambda: self.random.uniform(0, config.reconnectInitialDelay),
            waiting=self.linkWaiting, gaveUp=self.linkGaveUp, lostAt=lostAt)

    def isLinked(self, nodeId: str) -> bool:
        """Is C{nodeId} being redialed?"""
        return nodeId in self.links

    def _stopLink(self, nodeId: str) -> None:
        link = self.links.pop(nodeId, None)
        if link is not None:
            link.stopService()

    def linkWaiting(self, link: PeerLink) -> None:
        """A link failed to connect and waits for its next try."""
        if self.links.get(link.nodeId) is link:
            self.book.setState(link.nodeId, RECONNECTING, link.nextAttempt)

    def linkGaveUp(self, link: PeerLink) -> None:
        """A link has not reached its peer for C{forgetAfter} seconds."""
        if self.links.get(link.nodeId) is not link:
            return
        self._stopLink(link.nodeId)
        self.book.forget(link.nodeId)
        self.log.info("forgetting {address} ({id}): unreachable for {after} s",
                      address=formatAddress(link.host, link.port),
                      id=link.nodeId[:8], after=self.config.forgetAfter)
        self._scheduleSave()

    # -- failure detection ----------------------------------------------------

    def _pingReceived(self, connection: PeerConnection, ping: Ping) -> None:
        self._heardCount(connection, ping.neighbours)
        connection.sendMessage(Pong(ping.nonce, self.peers.neighbourCount()))

    def _pongReceived(self, connection: PeerConnection, pong: Pong) -> None:
        # Hearing from the peer (lastHeard) is what a PONG is for, and
        # its count of neighbours.
        self._heardCount(connection, pong.neighbours)

    @staticmethod
    def _heardCount(connection: PeerConnection, neighbours: int) -> None:
        """The peer says it has C{neighbours} (whether it could spare one,
        L{p2poverlay.admission.InboundPolicy.swapForNeed})."""
        if neighbours != UNSAID:
            connection.neighbourCount = neighbours

    def _checkLiveness(self) -> None:
        """
        Probe every peer; drop those silent for longer than C{peerTimeout}
        or whose outgoing data has been stuck as long.
        """
        config = self.config
        now = self.clock.seconds()
        self._nonce += 1
        ping = Ping(self._nonce, self.peers.neighbourCount())
        line = ping.encode()  # (the same line for every peer)
        for connection in self.peers.connections():
            silent = now - connection.lastHeard
            stalled = connection.outbox.pausedSince
            if silent >= config.peerTimeout:
                self.log.info("peer {peer} silent for {silent:.1f} s: "
                              "dropping it", peer=connection.describe(),
                              silent=silent)
                connection.abort(CloseReason(CloseKind.SILENT,
                                             f"{silent:.1f} s"))
            elif stalled is not None and now - stalled >= config.peerTimeout:
                self.log.warn("peer {peer} has not read for {stalled:.1f} s: "
                              "dropping it", peer=connection.describe(),
                              stalled=now - stalled)
                connection.abort(CloseReason(CloseKind.NOT_READING))
            else:
                connection.sendEncoded(line, ping.TYPE, force=True)
        for entry in self.book.all():
            if entry.state in (DEAD, LEFT) and \
                    now - entry.since >= config.forgetAfter:
                self.book.forget(entry.node_id)

    # -- persistence ----------------------------------------------------------

    def _scheduleSave(self) -> None:
        if self.store is None or self._saveCall is not None:
            return
        self._saveCall = self.clock.callLater(SAVE_DELAY, self.save)

    def save(self) -> None:
        """Write the address book to the data directory now."""
        if self._saveCall is not None and self._saveCall.active():
            self._saveCall.cancel()
        self._saveCall = None
        if self.store is None:
            return
        now = self.clock.seconds()
        peers = [replace(e, last_seen=now) if e.state == CONNECTED else e
                 for e in self.book.all() if e.port]
        try:
            self.store.savePeers(peers)
        except OSError as e:
            self.log.warn("cannot save peers to {directory}: {error}",
                          directory=self.store.directory, error=e)

    def saveAnchors(self) -> None:
        """Write the outbound neighbours, to be dialed first next time."""
        if self.store is None:
            return
        anchors = []
        for connection in self.peers.connections():
            info = connection.info
            if connection.role != NEIGHBOUR or info.direction != OUTBOUND \
                    or not info.port:
                continue
            entry = self.book.get(info.node_id)
            anchors.append(entry if entry is not None else KnownPeer(
                info.node_id, info.host, info.port, info.name, tried=True))
        if not anchors:
            return
        try:
            self.store.saveAnchors(anchors[:MAX_ANCHORS])
        except OSError as e:
            self.log.warn("cannot save anchors to {directory}: {error}",
                          directory=self.store.directory, error=e)
