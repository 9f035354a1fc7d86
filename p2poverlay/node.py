"""
Node: one member of the overlay, as a Twisted service.

The node listens for peers, joins the overlay through any member, keeps a
bounded set of neighbours (L{p2poverlay.topology}), learns other members by
peer exchange, sends direct messages, and broadcasts along a spanning tree
(L{p2poverlay.broadcast}) so that every node delivers each broadcast exactly
once.  All of its state belongs to the reactor thread; see
L{p2poverlay.threads} for use from other threads.
"""

from __future__ import annotations

import random
import time
from typing import Dict, List, Optional, Set, Tuple

from twisted.application.service import Service
from twisted.internet.defer import (
    Deferred, DeferredList, fail, maybeDeferred, succeed)
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python.failure import Failure
from p2poverlay.addressbook import AddressBook
from p2poverlay.records import KnownPeer
from p2poverlay.broadcast import EpidemicBroadcast
from p2poverlay.config import NodeConfig
from p2poverlay.errors import (
    DeliveryFailed, PeerFull, PeerUnreachable, SelfConnection, UnknownPeer,
)
from p2poverlay.events import (
    INodeObserver, NodeObserver, NodeStats, ReceivedMessage,
)
from p2poverlay.factory import PeerConnectionFactory, dial
from p2poverlay.message import (
    DIRECT, NEIGHBOUR, PROTOCOL_VERSION, Ack, Broadcast, Data, Graft, Hello,
    IHave, P2PMessage, Peers, Prune, newMessageId, newNodeId,
)
from p2poverlay.limits import Misbehaviour
from p2poverlay.listening import ListeningService
from p2poverlay.membership import Membership
from p2poverlay.metrics import Metrics
from p2poverlay.network import INetwork, TCPNetwork
from p2poverlay.protocol import PeerConnection
from p2poverlay.addresses import formatAddress, parseAddress
from p2poverlay.records import PeerInfo, matchIdOrName
from p2poverlay.registry import AmbiguousPeer, PeerRegistry
from p2poverlay.seen import SeenCache
from p2poverlay.store import NodeStore
from p2poverlay.topology import DUPLICATE_CONNECTION, FULL, Topology

__all__ = ["INodeObserver", "Node", "NodeConfig", "NodeObserver",
           "ReceivedMessage"]

# How long stopService waits for peers to take their BYE before cutting.
STOP_GRACE = 1.5


class Node(Service):
    """
    A member of the overlay.

    Start it as a service (directly or as a child of a running
    application); L{listening} fires with the listening port.
    """

    log = Logger()

    def __init__(self, config: NodeConfig, reactor=None,
                 nodeId: Optional[str] = None,
                 store: Optional[NodeStore] = None,
                 network: Optional[INetwork] = None,
                 rng: Optional[random.Random] = None) -> None:
        """
        @param store: an open data directory; the node takes its identity
            from it (creating one the first time) and saves its peers there.
        @param network: where the node listens and dials; TCP through
            C{reactor} by default.
        @param rng: the source of the node's random choices (neighbours,
            samples, jitter); seed one to make a run repeatable.
        """
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.network = network if network is not None else TCPNetwork(reactor)
        self.random = rng if rng is not None else random.Random()
        self.config = config
        if nodeId is None and store is not None:
            nodeId = store.loadIdentity()
            if nodeId is None:
                nodeId = newNodeId()
                store.saveIdentity(nodeId)
        self.nodeId = nodeId or newNodeId()
        self.store = store
        self.name = config.name
        self.peers = PeerRegistry()
        self.stats = NodeStats()
        self.metrics = Metrics(self)
        self.listener = ListeningService(
            self.network.serverEndpoint, config.listen,
            PeerConnectionFactory(self), "listen", onListening=self._listened)
        self.listening: Deferred[IListeningPort] = self.listener.listening
        self._observers: List[object] = []
        self._connections: Set[PeerConnection] = set()
        self._dials: Dict[Tuple[str, int], List[Deferred]] = {}
        self._selfAddresses: Set[Tuple[str, int]] = set()
        self._seenData = SeenCache(
            config.seenCacheSize, config.seenCacheTTL, reactor.seconds)
        self._stopping = False
        self.membership = Membership(self, store)
        self.topology = Topology(self, self.random)
        self.broadcaster = EpidemicBroadcast(
            self, tree=config.broadcastMode == "tree")
        self.misbehaviour = Misbehaviour(
            threshold=config.banThreshold, banDuration=config.banTime,
            decayPerSecond=1.0, now=reactor.seconds)

    @property
    def shortId(self) -> str:
        return self.nodeId[:8]

    @property
    def addressBook(self) -> AddressBook:
        """Every node this node knows of (reactor thread only)."""
        return self.membership.book

    @property
    def port(self) -> Optional[IListeningPort]:
        """The listening port, once the node listens."""
        return self.listener.port

    @property
    def listenPort(self) -> int:
        """The port this node listens on, 0 before it listens."""
        return self.port.getHost().port if self.port is not None else 0

    # -- observers ------------------------------------------------------

    def addObserver(self, observer: object) -> None:
        """Register an L{INodeObserver} (or any object with some of its methods)."""
        self._observers.append(observer)

    def removeObserver(self, observer: object) -> None:
        if observer in self._observers:
            self._observers.remove(observer)

    def _notify(self, method: str, *args: object) -> None:
        for observer in list(self._observers):
            callback = getattr(observer, method, None)
            if callback is None:
                continue
            try:
                callback(*args)
            except Exception:
                self.log.failure("observer {observer!r} failed in {method}",
                                 observer=observer, method=method)

    # -- service life ---------------------------------------------------

    def _listened(self, port: IListeningPort) -> None:
        host = port.getHost()
        self.log.info("node {id} listening on {address}", id=self.nodeId,
                      address=formatAddress(host.host, host.port))

    def privilegedStartService(self) -> None:
        """
        Listen before the reactor runs, so that a port in use stops the
        program at start-up.

        @raise p2poverlay.errors.ListenError: if the node cannot listen.
        """
        Service.privilegedStartService(self)
        self.listener.privilegedStartService()

    def startService(self) -> None:
        Service.startService(self)
        self._stopping = False
        self.listener.startService()
        self.membership.start()
        self.topology.start()
        for host, port in self.config.join:
            # join() logs a failure; a node that cannot join keeps serving.
            self.join(host, port).addErrback(lambda _: None)

    def join(self, host: str, port: int) -> "Deferred[PeerInfo]":
        """
        Join the overlay through the member at C{host:port}.  Should this
        node ever be left with no neighbour, it joins through it again.
        """
        self.topology.addSeed(host, port)
        d = self.connect(host, port)

        def joined(peer: PeerInfo) -> PeerInfo:
            self.log.info("joined the overlay through {peer}",
                          peer=peer.describe())
            return peer

        def failed(reason: Failure) -> Failure:
            if reason.check(SelfConnection):
                self.log.warn("not joining {address}: that address is this "
                              "node itself", address=formatAddress(host, port))
            else:
                self.log.error("could not join {address}: {why}",
                               address=formatAddress(host, port),
                               why=reason.getErrorMessage())
            return reason

        d.addCallbacks(joined, failed)
        return d

    def stopService(self) -> "Deferred[None]":
        """Say BYE to every peer and wait (briefly) for them to go."""
        Service.stopService(self)
        self._stopping = True
        waits = []
        waits.append(self.listener.stopService())
        lost = []
        for connection in list(self._connections):
            lost.append(connection.whenClosed())
            connection.close("node shutting down")
        # After the BYEs: stopping a link closes its connection silently.
        waits.append(self.membership.stop())
        self.topology.stop()
        self.broadcaster.stop()
        if lost:
            allGone = DeferredList(lost)
            allGone.addTimeout(STOP_GRACE, self.reactor)
            allGone.addErrback(self._abortRemaining)
            waits.append(allGone)
        return DeferredList(waits).addCallback(lambda _: None)

    def abort(self) -> "Deferred[None]":
        """
        Stop at once, as a killed process stops: no BYE to anyone, the
        listening port closed, every connection cut, no more probes or
        redials.

        @return: fires once every connection is gone.
        """
        Service.stopService(self)
        self._stopping = True
        lost = [c.whenClosed() for c in self._connections]
        for connection in list(self._connections):
            connection.transport.abortConnection()
        self.topology.stop()
        self.broadcaster.stop()
        waits = [self.listener.stopService(), self.membership.stop()] + lost
        return DeferredList(waits).addCallback(lambda _: None)

    def _abortRemaining(self, reason: Failure) -> None:
        for connection in list(self._connections):
            connection.transport.abortConnection()

    # -- connections ----------------------------------------------------

    def helloMessage(self, role: str = NEIGHBOUR) -> Hello:
        return Hello(self.nodeId, PROTOCOL_VERSION, self.listenPort, self.name,
                     role)

    def connectionMade(self, connection: PeerConnection) -> None:
        self._connections.add(connection)
        host = connection.remoteHost
        if self._stopping:
            connection.close("node shutting down")
        elif self.misbehaviour.isBanned(host):
            connection.close(f"banned: {self.misbehaviour.banReason(host)}")
        elif self._count(connection.outbound) > (
                self.config.maxOutbound if connection.outbound
                else self.config.maxInbound):
            connection.close(f"too many {connection.direction} connections")

    def _count(self, outbound: bool) -> int:
        return sum(1 for c in self._connections if c.outbound == outbound)

    def penalize(self, connection: PeerConnection, points: float,
                 reason: str) -> None:
        """
        Count misbehaviour against the connection's address; past the
        threshold the address is banned for C{banTime} and disconnected.
        """
        host = connection.remoteHost
        if self.misbehaviour.penalize(host, points, reason):
            self.log.warn("banning {host} for {time:g} s: {reason}",
                          host=host, time=self.config.banTime, reason=reason)
            for other in list(self._connections):
                if other.remoteHost == host:
                    other.close(f"banned: {reason}")

    def connect(self, host: str, port: int,
                role: str = NEIGHBOUR) -> "Deferred[PeerInfo]":
        """
        Make sure this node is connected to the node listening at
        C{host:port}; the result is that node's L{PeerInfo}.

        @param role: what a new connection is for: C{"neighbour"} (part of
            the overlay) or C{"direct"} (direct messages only).
        """
        known = self.peers.byAddress(host, port)
        if known is not None:
            return succeed(known)
        key = (host, port)
        if key in self._selfAddresses:
            return fail(SelfConnection(
                f"{formatAddress(host, port)} is this node itself"))
        if self.misbehaviour.isBanned(host):
            return fail(PeerUnreachable(
                f"{host} is banned: {self.misbehaviour.banReason(host)}"))
        if key not in self._dials and \
                self._count(True) >= self.config.maxOutbound:
            return fail(PeerUnreachable(
                f"cannot dial {formatAddress(host, port)}: "
                f"{self.config.maxOutbound} outbound connections already"))
        waiter: Deferred[PeerInfo] = Deferred()
        if key in self._dials:
            self._dials[key].append(waiter)
            return waiter
        self._dials[key] = [waiter]
        d = dial(self, host, port, role)
        d.addCallback(lambda connection: connection.handshake)
        d.addBoth(self._dialDone, key)
        return waiter

    def _dialDone(self, result, key: Tuple[str, int]) -> None:
        if isinstance(result, Failure) and not result.check(PeerUnreachable):
            result = Failure(PeerUnreachable(
                f"cannot reach {formatAddress(*key)}: "
                f"{result.getErrorMessage()}"))
        if isinstance(result, Failure) and result.check(SelfConnection):
            self._selfAddresses.add(key)
        for waiter in self._dials.pop(key, []):
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)

    def handshakeReceived(self, connection: PeerConnection, hello: Hello) -> None:
        if not connection.outbound:
            # Our HELLO only now, followed at once by whatever comes of
            # theirs (BYE for a self-connection, a duplicate, no room): the
            # dialer never counts a connection the node turns away.
            connection.role = hello.role
            connection.sendMessage(self.helloMessage(hello.role))
        if hello.node_id == self.nodeId:
            # Both ends are this node: the dialing end reports it, the
            # accepting end closes quietly.
            if connection.outbound:
                connection.rejected("connected to self", error=SelfConnection)
            else:
                connection.close("connected to self", tellPeer=False)
            return
        info = PeerInfo(
            node_id=hello.node_id, host=connection.remoteHost, port=hello.port,
            name=hello.name, direction=connection.direction,
            since=time.time(), role=connection.role)
        existing = self.peers.connection(hello.node_id)
        if existing is not None:
            # Close the loser first: then the membership sees which of the
            # two connections is settled as the peer's.
            if self._prefer(connection, existing, hello.node_id):
                self.peers.add(info, connection)
                existing.rejected(DUPLICATE_CONNECTION)
                self._roleSettled(hello.node_id, existing.role, connection.role)
                self.membership.connected(info, connection)
                connection.established(info)
            else:
                info = self.peers.get(hello.node_id)
                connection.rejected(DUPLICATE_CONNECTION, peer=info)
                self.membership.connected(info, existing)
            return
        if not self.topology.hasRoomFor(connection):
            self._turnAway(connection, hello)
            return
        self.peers.add(info, connection)
        self._roleSettled(hello.node_id, None, connection.role)
        self.membership.connected(info, connection)
        self.log.info("peer connected: {peer}", peer=info.describe())
        if connection.role == NEIGHBOUR:
            self.topology.sendSample(connection, info)
        self._notify("peerConnected", info)
        # Last: whoever waits on this dial sees the peer fully settled.
        connection.established(info)

    def _turnAway(self, connection: PeerConnection, hello: Hello) -> None:
        """
        This node has C{maxPeers} neighbours: tell the newcomer of other
        nodes, and say goodbye.
        """
        self.membership.book.learn(hello.node_id, connection.remoteHost,
                                   hello.port, hello.name)
        self.membership.turnedAway(hello.node_id)
        if not connection.outbound:
            sample = self.topology.sample(hello.node_id, connection.remoteHost)
            if sample.peers:
                connection.sendMessage(sample)
        connection.rejected(FULL, error=PeerFull)

    def _roleSettled(self, nodeId: str, old: Optional[str], new: str) -> None:
        """The connection kept for C{nodeId} went from role C{old} to C{new}."""
        if old == new:
            return
        if new == NEIGHBOUR:
            self.broadcaster.neighbourUp(nodeId)
        else:
            if old == NEIGHBOUR:
                self.broadcaster.neighbourDown(nodeId)
            self.topology.makeRoomForDirectLink()

    def _prefer(self, new: PeerConnection, old: PeerConnection,
                remoteId: str) -> bool:
        """
        Of two connections to one peer, both sides keep the one dialed by
        the node with the lower id.  If one node dialed both, the older one
        stays: a HELLO that merely repeats a connected node's id cannot
        push that node off.
        """
        preferredDialer = min(self.nodeId, remoteId)

        def dialer(connection: PeerConnection) -> str:
            return self.nodeId if connection.outbound else remoteId

        if dialer(new) == dialer(old):
            return False
        return dialer(new) == preferredDialer

    def connectionLost(self, connection: PeerConnection, pending) -> None:
        self._connections.discard(connection)
        self.metrics.connectionClosed(connection.remoteReason,
                                      connection.closeReason)
        link = connection.link
        if link is not None and link.connection is connection:
            link.connection = None
        info = connection.peer
        if info is not None and self.peers.remove(info.node_id, connection):
            reason = connection.remoteReason or connection.closeReason \
                or "connection lost"
            self.log.info("peer disconnected: {peer} ({reason})",
                          peer=info.describe(), reason=reason)
            if connection.role == NEIGHBOUR:
                self.broadcaster.neighbourDown(info.node_id)
            self.membership.lost(info, connection)
            self.topology.schedule()
            self._notify("peerDisconnected", info, reason)
        self._redeliver(connection, pending)

    def _redeliver(self, connection: PeerConnection, pending) -> None:
        """
        Direct messages that the closed connection never confirmed go over
        the peer's other connection if it has one, else they fail.
        """
        if not pending:
            return
        info = connection.peer
        other = self.peers.connection(info.node_id) if info else None
        for message, done, timeout in pending.values():
            if timeout.active():
                timeout.cancel()
            if other is not None and not other.closing:
                other.sendData(message).chainDeferred(done)
            else:
                why = connection.remoteReason or connection.closeReason \
                    or "connection lost"
                done.errback(DeliveryFailed(
                    f"connection to {connection.describe()} closed before "
                    f"delivery was confirmed ({why})"))

    # -- peer exchange --------------------------------------------------

    def _peersReceived(self, connection: PeerConnection, message: Peers) -> None:
        if self._stopping:
            return
        book = self.membership.book
        for entry in message.peers[:self.config.maxPeersPerExchange]:
            if entry.node_id != self.nodeId and entry.node_id not in self.peers:
                book.learn(entry.node_id, entry.host, entry.port, entry.name)
        self.topology.schedule()

    # -- messages -------------------------------------------------------

    def messageReceived(self, connection: PeerConnection,
                        message: P2PMessage) -> None:
        """Dispatch a message from an established connection."""
        if isinstance(message, Broadcast):
            self.broadcaster.payloadReceived(connection, message)
        elif isinstance(message, IHave):
            self.broadcaster.ihaveReceived(connection, message)
        elif isinstance(message, Data):
            self._dataReceived(connection, message)
        elif isinstance(message, Graft):
            self.broadcaster.graftReceived(connection, message)
        elif isinstance(message, Prune):
            self.broadcaster.pruneReceived(connection)
        elif isinstance(message, Peers):
            self._peersReceived(connection, message)
        else:
            connection.protocolError(f"unexpected {message.TYPE}")

    def _dataReceived(self, connection: PeerConnection, message: Data) -> None:
        connection.lastUsed = self.reactor.seconds()
        if self._seenData.add(message.id):
            self.stats.directDelivered += 1
            via = connection.peer
            self._notify("messageReceived", ReceivedMessage(
                kind="direct", message_id=message.id, body=message.body,
                sender_id=via.node_id, sender_name=via.name, sender=via,
                via=via))
        connection.sendMessage(Ack(message.id))

    def deliverBroadcast(self, connection: PeerConnection,
                         message: Broadcast) -> None:
        """Hand a broadcast, new to this node, to the observers."""
        self.stats.broadcastsDelivered += 1
        self._notify("messageReceived", ReceivedMessage(
            kind="broadcast", message_id=message.id, body=message.body,
            sender_id=message.origin, sender_name=message.origin_name,
            sender=self.peers.get(message.origin), via=connection.peer))

    # -- the public API ---------------------------------------------------

    def broadcast(self, body: str) -> Tuple[str, int]:
        """
        Send C{body} to every node of the overlay.

        @return: the message id and the number of neighbours told of it.
        """
        message = Broadcast(newMessageId(), self.nodeId,
                            self.config.broadcastTTL, body, self.name)
        return message.id, self.broadcaster.originate(message)

    def send(self, target: str, body: str) -> "Deferred[PeerInfo]":
        """
        Send C{body} to one node: C{target} is ``host:port``, a node id or a
        unique prefix of one, or a node's name.  A node that is not
        connected is dialed first (a I{direct} connection, not a
        neighbour), by its address or from the address book.

        @return: fires with the recipient's L{PeerInfo} once it confirms
            delivery; fails with an L{p2poverlay.errors.OverlayError}.
        """
        try:
            info = self.peers.find(target)
            known = None if info else self._findKnown(target)
        except AmbiguousPeer as e:
            return fail(UnknownPeer(str(e)))
        if info is not None:
            return self._sendTo(info, body)
        if known is not None:
            host, port = known.host, known.port
        else:
            try:
                host, port = parseAddress(target)
            except ValueError:
                return fail(UnknownPeer(
                    f"no peer matches {target!r} (use host:port, a node id "
                    f"prefix or a name; see 'peers' and 'known')"))
        d = self.connect(host, port, role=DIRECT)
        d.addCallback(self._sendTo, body)
        return d

    def _findKnown(self, reference: str) -> Optional[KnownPeer]:
        """
        A node of the address book by node id, unique id prefix or name.

        @raise AmbiguousPeer: if several match.
        """
        matches = matchIdOrName(
            reference, [e for e in self.membership.book.all() if e.port])
        if len(matches) > 1:
            raise AmbiguousPeer(
                f"{reference!r} matches {len(matches)} known nodes")
        return matches[0] if matches else None

    def _sendTo(self, info: PeerInfo, body: str) -> "Deferred[PeerInfo]":
        connection = self.peers.connection(info.node_id)
        if connection is None:
            return fail(DeliveryFailed(f"{info.describe()} is not connected"))
        return connection.sendData(Data(newMessageId(), body))
