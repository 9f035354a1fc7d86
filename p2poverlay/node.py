"""
Node: one member of the overlay, as a Twisted service.

A facade over its parts: connections (L{p2poverlay.connections}),
neighbours (L{p2poverlay.topology}), the address book and redials
(L{p2poverlay.membership}), direct messages (L{p2poverlay.direct}),
broadcast (L{p2poverlay.broadcast}) and routing by id (L{p2poverlay.dht}:
C{node.dht.findNode}, C{node.values.put} and C{get}).  It wires, starts
and stops them, and offers join, send, broadcast and observers.  Its state belongs to the
reactor thread; see L{p2poverlay.threads} for other threads.
"""

from __future__ import annotations

import random
from functools import partial
from typing import Optional, Tuple

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger

from p2poverlay.addressbook import AddressBook
from p2poverlay.addresses import addressOf
from p2poverlay.broadcast import EpidemicBroadcast
from p2poverlay.config import NodeConfig
from p2poverlay.connections import Connections
from p2poverlay.dht.reach import Reach
from p2poverlay.dht.service import Kademlia
from p2poverlay.dht.values import DHTValues
from p2poverlay.direct import DirectMessages
from p2poverlay.dispatch import Dispatcher
from p2poverlay.events import NodeStats, ObserverList
from p2poverlay.identity import NodeKey
from p2poverlay.joining import joinConfigured, joinThrough
from p2poverlay.limits import Misbehaviour
from p2poverlay.listening import ListeningService
from p2poverlay.membership import Membership
from p2poverlay.message import (
    NEIGHBOUR, PROTOCOL_VERSION, Broadcast, Hello, newMessageId,
)
from p2poverlay.metrics import Metrics
from p2poverlay.nat import attachNatTraversal
from p2poverlay.network import INetwork
from p2poverlay.nodeidentity import identityOf
from p2poverlay.ownaddress import OwnAddress
from p2poverlay.records import PeerInfo
from p2poverlay.registry import PeerRegistry
from p2poverlay.signing import signingFor
from p2poverlay.store import NodeStore
from p2poverlay.topology import Topology

class Node(Service):
    """
    A member of the overlay.

    Start it as a service (directly or as a child of a running
    application); L{listening} fires with the listening port.

    @ivar peers: the connected peers, readable from any thread.
    @ivar observers: the L{INodeObserver}s told what happens here.
    """

    log = Logger()

    def __init__(self, config: NodeConfig, reactor=None,
                 nodeId: Optional[str] = None,
                 store: Optional[NodeStore] = None,
                 network: Optional[INetwork] = None,
                 rng: Optional[random.Random] = None,
                 key: Optional[NodeKey] = None) -> None:
        """
        @param key: the node's key, whence its id: by default C{store}'s
            (made the first time), else a new one.
        @param nodeId: an id of one's choosing instead (no key: in memory
            or plaintext only).
        @param store: an open data directory, for the key and the peers.
        @param network: where the node listens and dials; TCP through
            C{reactor} by default, over TLS unless C{config.plaintext}.
        @param rng: the source of the node's random choices (neighbours,
            samples, jitter); seed one to make a run repeatable.
        @raise p2poverlay.config.ConfigError: if C{config} is not valid.
        """
        if reactor is None:
            from twisted.internet import reactor
        config.check()
        self.reactor = reactor
        self.config = config
        self.random = rng if rng is not None else random.Random()
        self.key, self.nodeId, self.network = identityOf(
            config, reactor, store, nodeId, key, network)
        self.store = store
        self.signer, self.verifier = signingFor(self.key, config.plaintext)
        # Service.name too: a parent MultiService finds the node by it.
        self.name = config.name  # type: ignore[assignment]
        self.peers = PeerRegistry()
        self.stats = NodeStats()
        self.observers = ObserverList()
        self._build(config, reactor, store)

    def _build(self, config: NodeConfig, clock,
               store: Optional[NodeStore]) -> None:
        """Make the node's parts and wire them to one another."""
        book = AddressBook(config.addressBookSize, clock.seconds)
        deliver = partial(self.observers.notify, "messageReceived")
        dispatcher = Dispatcher()
        self.metrics = Metrics(clock, self.stats, self.peers, book)
        self.misbehaviour = Misbehaviour(
            threshold=config.banThreshold, banDuration=config.banTime,
            decayPerSecond=1.0, now=clock.seconds)
        self.connections = Connections(
            self.nodeId, config, clock, self.network, self.peers,
            self.misbehaviour, self.metrics, dispatcher, self.helloMessage)
        self.membership = Membership(
            self.nodeId, config, clock, store, book, self.peers,
            self.network, self.connections, dispatcher, self.random)
        self.direct = DirectMessages(
            config, clock, self.peers, book, dispatcher,
            self.connections.connect, deliver, self.stats)
        self.dht = Kademlia(self.nodeId, config, clock, self.random,
                            self.peers, self.connections.connect, dispatcher,
                            self.verifier, queries=self.connections.queries)
        self.topology = Topology(
            self.nodeId, config, clock, self.random, self.peers, book,
            self.connections, self.misbehaviour, dispatcher,
            isLinked=self.membership.isLinked,
            awaitingAcks=lambda c: self.direct.awaitingAcks(c)
            or self.dht.requests.busy(c), verifier=self.verifier)
        self.broadcaster = EpidemicBroadcast(
            self.nodeId, config, clock, self.peers, dispatcher,
            deliver, self.stats, self.signer, self.verifier)
        self.values = DHTValues(self.dht, self.signer, dispatcher)
        self.verifier.holders += [book.recordOf, self.dht.table.recordOf]
        self.metrics.sources += [self.dht.counters, self.values.counters]
        self.reach = Reach(self.direct, self.dht, self.peers, book,
                           self.connections.connect)
        self.connections.admission = self.topology
        # The order they are told in: see IConnectionListener.
        self.connections.listeners += [
            self.broadcaster, self.membership, self.topology, self.observers,
            self.direct, self.dht]
        self.listener = ListeningService(
            self.network.serverEndpoint, config.listen,
            self.connections.factory, "listen", onListening=self._listened)
        self.listening: Deferred[IListeningPort] = self.listener.listening
        self.connections.ownAddress = OwnAddress(
            self.signer, self.verifier, self.listener, clock)
        self.nat = nat = attachNatTraversal(self)
        self.reachability, self.relaying, self.upgrade = \
            nat.reachability, nat.relaying, nat.upgrade

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
        return getattr(self.listener.address, "port", 0)

    def helloMessage(self, role: str = NEIGHBOUR) -> Hello:
        """The C{HELLO} this node says on a connection of C{role}."""
        return Hello(self.nodeId, PROTOCOL_VERSION, self.listenPort,
                     self.config.name, role,
                     neighbours=self.peers.neighbourCount(),
                     dht=int(self.config.dht))

    # -- observers ------------------------------------------------------

    def addObserver(self, observer: object) -> None:
        """Register an L{INodeObserver} (or any object with some of its methods)."""
        self.observers.add(observer)

    def removeObserver(self, observer: object) -> None:
        self.observers.remove(observer)

    # -- service life ---------------------------------------------------

    def _listened(self, port: IListeningPort) -> None:
        self.log.info("node {id} listening on {address}", id=self.nodeId,
                      address=addressOf(port))

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
        self.connections.stopping = False
        self.listener.startService()
        self.membership.start()
        self.topology.start()
        self.dht.start()
        self.values.start()
        joinConfigured(self)

    def stopService(self) -> "Deferred[None]":
        """Say BYE to every peer and wait (briefly) for them to go."""
        Service.stopService(self)
        waits = [self.listener.stopService(), self.connections.closeAll()]
        # After the BYEs: stopping a link closes its connection silently.
        waits.append(self.membership.stop())
        self._stopParts()
        return DeferredList(waits).addCallback(lambda _: None)

    def abort(self) -> "Deferred[None]":
        """
        Stop at once, as a killed process stops: no BYE to anyone, the
        port closed, every connection cut, no more probes or redials.
        @return: fires once every connection is gone.
        """
        Service.stopService(self)
        self._stopParts()
        waits = [self.listener.stopService(), self.membership.stop(save=False),
                 self.connections.abortAll()]
        return DeferredList(waits).addCallback(lambda _: None)

    def _stopParts(self) -> None:
        for part in (self.topology, self.broadcaster, self.dht, self.values,
                     self.nat):
            part.stop()

    # -- the public API ---------------------------------------------------

    def join(self, host: str, port: int,
             nodeId: Optional[str] = None) -> "Deferred[PeerInfo]":
        """
        Join the overlay through the member at C{host:port}.  Should this
        node ever be left with no neighbour, it joins through it again.

        @param nodeId: the node that must be there; by default the first
            one met there over TLS is trusted from then on.
        """
        self.topology.addSeed(host, port)
        return joinThrough(self.connections, host, port, nodeId)

    def connect(self, host: str, port: int,
                role: str = NEIGHBOUR) -> "Deferred[PeerInfo]":
        """Be connected to the node at C{host:port}: L{Connections.connect}."""
        return self.connections.connect(host, port, role)

    def send(self, target: str, body: str) -> "Deferred[PeerInfo]":
        """
        Send C{body} to one node: C{target} is ``host:port``, a node id or
        a unique prefix of one, or a name (see L{DirectMessages.send}); a
        node id this node never heard of is looked up in the DHT first.

        At most C{config.sendWindow} messages are unconfirmed on a
        connection; the next ones wait in order.  A program sending many
        waits on L{whenSendable} between them: past
        C{config.sendQueueLimit} waiting, C{send} fails with
        L{p2poverlay.errors.SendQueueFull}.

        @return: fires with the recipient's L{PeerInfo} once it confirms
            delivery; fails with an L{p2poverlay.errors.OverlayError}.
        """
        return self.reach.send(target, body)

    @property
    def sendBacklog(self) -> int:
        """How many direct messages wait to be written (see L{send})."""
        return self.direct.backlog.count

    def whenSendable(self) -> "Deferred[None]":
        """
        Fires at once while the backlog of direct messages is low, else once
        it has drained to half its high-water mark: a sender waiting on it
        between sends never overruns its receivers, nor fills the queue."""
        return self.direct.backlog.whenRoom()

    def broadcast(self, body: str) -> Tuple[str, int]:
        """
        Send C{body} to every node of the overlay.

        @return: the message id and the number of neighbours told of it.
        @raise p2poverlay.errors.MessageTooLarge: if it would not fit a line.
        """
        message = Broadcast(newMessageId(), self.nodeId,
                            self.config.broadcastTTL, body, self.config.name)
        return message.id, self.broadcaster.originate(message)
