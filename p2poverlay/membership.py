"""
Membership: which nodes exist, and staying connected to them.

The node tells its membership when a peer connects and when one is lost;
the membership keeps the address book, detects silent peers (PING/PONG),
redials lost neighbours through L{PeerLink}s, forgets peers that stay
unreachable, and saves the address book to the node's data directory.
Which nodes become neighbours is the topology's business
(L{p2poverlay.topology}).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Dict, Optional

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from p2poverlay.addressbook import AddressBook
from p2poverlay.records import (
    CONNECTED, DEAD, KNOWN, KnownPeer, LEFT, RECONNECTING,
)
from p2poverlay.message import DIRECT, Ping
from p2poverlay.reconnect import PeerLink
from p2poverlay.addresses import formatAddress
from p2poverlay.records import PeerInfo
from p2poverlay.store import NodeStore
from p2poverlay.topology import DUPLICATE_CONNECTION, isTurnedAway

if TYPE_CHECKING:
    from p2poverlay.node import Node
    from p2poverlay.protocol import PeerConnection

# How soon after a change the address book is written to disk.
SAVE_DELAY = 1.0


class Membership:
    log = Logger()

    def __init__(self, node: "Node", store: Optional[NodeStore]) -> None:
        self.node = node
        self.store = store
        self.book = AddressBook(node.config.addressBookSize,
                                node.reactor.seconds)
        self.links: Dict[str, PeerLink] = {}
        self._liveness = LoopingCall(self._checkLiveness)
        self._liveness.clock = node.reactor
        self._nonce = 0
        self._saveCall = None

    # -- life -------------------------------------------------------------

    def start(self) -> None:
        """
        Start failure detection and load the saved peers into the address
        book (the topology dials them).
        """
        self._liveness.start(self.node.config.pingInterval, now=False)
        if self.store is None:
            return
        saved = [p for p in self.store.loadPeers()
                 if p.node_id != self.node.nodeId]
        # The most recently seen first: a full book keeps those.
        saved.sort(key=lambda p: p.last_seen, reverse=True)
        for peer in saved:
            self.book.learn(peer.node_id, peer.host, peer.port, peer.name,
                            peer.last_seen)

    def stop(self) -> Deferred:
        """Stop probing and redialing; save the address book."""
        if self._liveness.running:
            self._liveness.stop()
        links, self.links = list(self.links.values()), {}
        self.save()
        return DeferredList([link.stopService() for link in links])

    # -- what the node reports ----------------------------------------------

    def connected(self, info: PeerInfo, connection: "PeerConnection") -> None:
        """C{connection} is now the one connection to C{info}'s node."""
        self.book.update(info.node_id, info.host, info.port, info.name,
                         CONNECTED)
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

    def lost(self, info: PeerInfo, connection: "PeerConnection") -> None:
        """The connection to C{info}'s node closed; decide what comes next."""
        if self.node._stopping:
            return
        nodeId = info.node_id
        link = self.links.get(nodeId)
        if connection.role == DIRECT:
            # A direct link ends when it is no longer used; it is no loss.
            self.book.setState(nodeId, KNOWN)
        elif isTurnedAway(connection.remoteReason) \
                or isTurnedAway(connection.closeReason):
            self.turnedAway(nodeId)
        elif connection.remoteReason \
                and connection.remoteReason != DUPLICATE_CONNECTION:
            # It said BYE: it left on purpose.  Do not chase it.  (Closing
            # a duplicate is no leave: the pair keeps its other connection
            # if the peer still has it, else it is redialed below.)
            self._stopLink(nodeId)
            self.book.setState(nodeId, LEFT)
        elif connection.closeReason.startswith(("protocol error", "banned")) \
                or not info.port:
            self._stopLink(nodeId)
            self.book.setState(nodeId, DEAD)
            # Not to be dialed again until it is forgotten.
            self.node.topology.avoid(nodeId, self.node.config.forgetAfter)
        elif link is not None and connection.link is link:
            link.lostAt = self.node.reactor.seconds()
            self.book.setState(nodeId, RECONNECTING)
        else:
            entry = self.book.get(nodeId)
            if entry is not None:
                self._startLink(entry)
        self._scheduleSave()

    def turnedAway(self, nodeId: str) -> None:
        """One of this node and C{nodeId} has no room for the other."""
        self._stopLink(nodeId)
        self.book.setState(nodeId, KNOWN)
        self.node.topology.turnedAway(nodeId)

    # -- links ----------------------------------------------------------------

    def _startLink(self, entry: KnownPeer, lostAt: Optional[float] = None) -> None:
        if entry.node_id in self.links or not self.node.running \
                or self.node._stopping:
            return
        link = PeerLink(self.node, entry.node_id, entry.host, entry.port,
                        lostAt)
        self.links[entry.node_id] = link
        self.book.setState(entry.node_id, RECONNECTING)
        link.startService()

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
                      id=link.nodeId[:8], after=self.node.config.forgetAfter)
        self._scheduleSave()

    # -- failure detection ----------------------------------------------------

    def _checkLiveness(self) -> None:
        """
        Probe every peer; drop those silent for longer than C{peerTimeout}
        or whose outgoing data has been stuck as long.
        """
        config = self.node.config
        now = self.node.reactor.seconds()
        self._nonce += 1
        for connection in self.node.peers.connections():
            silent = now - connection.lastHeard
            stalled = connection.outbox.pausedSince
            if silent >= config.peerTimeout:
                self.log.info("peer {peer} silent for {silent:.1f} s: "
                              "dropping it", peer=connection.describe(),
                              silent=silent)
                connection.abort(f"no response for {silent:.1f} s")
            elif stalled is not None and now - stalled >= config.peerTimeout:
                self.log.warn("peer {peer} has not read for {stalled:.1f} s: "
                              "dropping it", peer=connection.describe(),
                              stalled=now - stalled)
                connection.abort("not reading")
            else:
                connection.sendMessage(Ping(self._nonce))
        for entry in self.book.all():
            if entry.state in (DEAD, LEFT) and \
                    now - entry.since >= config.forgetAfter:
                self.book.forget(entry.node_id)

    # -- persistence ----------------------------------------------------------

    def _scheduleSave(self) -> None:
        if self.store is None or self._saveCall is not None:
            return
        self._saveCall = self.node.reactor.callLater(SAVE_DELAY, self.save)

    def save(self) -> None:
        """Write the address book to the data directory now."""
        if self._saveCall is not None and self._saveCall.active():
            self._saveCall.cancel()
        self._saveCall = None
        if self.store is None:
            return
        now = self.node.reactor.seconds()
        peers = [replace(e, last_seen=now) if e.state == CONNECTED else e
                 for e in self.book.all() if e.port]
        try:
            self.store.savePeers(peers)
        except OSError as e:
            self.log.warn("cannot save peers to {directory}: {error}",
                          directory=self.store.directory, error=e)
