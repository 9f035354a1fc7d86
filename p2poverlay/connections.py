"""
Connections: every connection of one node, from dial or accept to close.

L{Connections} admits new connections (bans, per-direction limits), dials
(one dial per address at a time, whoever asks), runs the accepting side of
the HELLO handshake, keeps one connection per pair of nodes when both
dialed, asks its admission policy (the topology) whether a new neighbour
fits, registers peers in the L{PeerRegistry}, tells its
L{IConnectionListener}s, and hands every message of an established
connection to its handler in the L{Dispatcher}.  Each connection runs its
own life cycle (L{p2poverlay.protocol.PeerConnection}).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from p2poverlay.addresses import formatAddress
from p2poverlay.admission import (
    InboundPolicy, OpenAdmission, isLocal, isRelayed,
)
from p2poverlay.closing import abortAll, closeAll
from p2poverlay.config import NodeConfig
from p2poverlay.dispatch import Dispatcher
from p2poverlay.errors import DialLimit, PeerFull, PeerUnreachable, SelfConnection
from p2poverlay.factory import PeerConnectionFactory
from p2poverlay.identity import fingerprintOf
from p2poverlay.interfaces import IAdmission, IConnectionListener, IPeerConnectionOwner
from p2poverlay.limits import Misbehaviour
from p2poverlay.message import DIRECT, NEIGHBOUR, PROBE, Hello, P2PMessage
from p2poverlay.metrics import Metrics
from p2poverlay.network import INetwork
from p2poverlay.ownaddress import OwnAddress
from p2poverlay.pairs import keepsNew
from p2poverlay.pins import Pins
from p2poverlay.private import PrivateOverlay
from p2poverlay.protocol import PeerConnection
from p2poverlay.queries import Queries
from p2poverlay.reachability import NoReachability
from p2poverlay.reasons import SHUTTING_DOWN, CloseKind, CloseReason
from p2poverlay.records import INBOUND, OUTBOUND, PeerInfo
from p2poverlay.registry import PeerRegistry


@implementer(IPeerConnectionOwner)
class Connections:
    """
    The connections of the node C{nodeId}.

    @ivar admission: decides whether a new neighbour fits (L{IAdmission}).
    @ivar listeners: L{IConnectionListener}s, told in this order.
    """

    log = Logger()

    def __init__(self, nodeId: str, config: NodeConfig, clock,
                 network: INetwork, registry: PeerRegistry,
                 misbehaviour: Misbehaviour, metrics: Metrics,
                 dispatcher: Dispatcher,
                 hello: Callable[[str], Hello]) -> None:
        self.nodeId = nodeId
        self.config = config
        self.clock = clock
        self.network = network
        self.peers = registry
        self.misbehaviour = misbehaviour
        # Misbehaviour of node ids, apart from that of addresses.
        self.offenders = Misbehaviour(
            config.banThreshold, config.banTime,
            misbehaviour.decayPerSecond, clock.seconds)
        self.inbound = InboundPolicy(config, clock)
        self.metrics = metrics
        self.dispatcher = dispatcher
        self._hello = hello
        self.admission: IAdmission = OpenAdmission()
        self.listeners: List[IConnectionListener] = []
        self.factory = PeerConnectionFactory(self)
        self.queries = Queries(self)
        self.stopping = False
        # A dict, not a set: walked in the order connections came.
        self._connections: Dict[PeerConnection, None] = {}
        self._outbound = 0  # of them, those this node dialed
        self._dials: Dict[Tuple[str, int], List[Deferred]] = {}
        self._selfAddresses: Set[Tuple[str, int]] = set()
        self.pins = Pins(config.pins)
        self.private = PrivateOverlay(config.networkKey, config.allowed)
        self.ownAddress = OwnAddress()
        # Hears the peers' view of this node and settles probes.
        self.reachability: Any = NoReachability()

    def __len__(self) -> int:
        return len(self._connections)

    def __iter__(self) -> Iterator[PeerConnection]:
        return iter(list(self._connections))

    def __contains__(self, connection: object) -> bool:
        return connection in self._connections

    @property
    def dialsInFlight(self) -> int:
        """How many addresses are being dialed now."""
        return len(self._dials)

    def isSelf(self, host: str, port: int) -> bool:
        """Did dialing C{host:port} reach this node itself?"""
        return (host, port) in self._selfAddresses

    def _emit(self, event: str, *args: object) -> None:
        for listener in self.listeners:
            getattr(listener, event)(*args)

    # -- IPeerConnectionOwner ----------------------------------------------

    def helloFor(self, connection: PeerConnection) -> Hello:
        hello = self.ownAddress.signedHello(self._hello(connection.role),
                                            connection)
        factory = connection.factory
        return replace(
            hello, network_proof=self.private.proofFor(connection),
            observed="" if connection.remoteHost == "?"
            or isRelayed(connection) else connection.remoteAddress,
            nonce=getattr(factory, "nonce", "") if connection.outbound else "",
            query=int(connection.query and connection.outbound))

    def connectionMade(self, connection: PeerConnection) -> None:
        self._connections[connection] = None
        self._outbound += connection.outbound
        if self.stopping:
            connection.close(SHUTTING_DOWN)
        elif connection.outbound:
            if self._outbound - self.queries.lingering > self.config.maxOutbound:
                connection.close(CloseReason(CloseKind.TOO_MANY, OUTBOUND))
        else:
            self._admitInbound(connection)

    def _admitInbound(self, connection: PeerConnection) -> None:
        """Keep a new inbound connection if its address may have another
        and there is room, or room can be made."""
        inbound = [c for c in self._connections
                   if not c.outbound and not c.closing]
        refusal = self.inbound.refusal(
            connection, inbound,
            self.misbehaviour.banReason(connection.remoteHost))
        if refusal is not None:
            connection.close(refusal)
        elif len(inbound) > self.config.maxInbound:
            victim = self.inbound.evictionFor(
                connection, inbound, self.admission.spareLink(inbound))
            if victim is None:
                connection.close(CloseReason(CloseKind.TOO_MANY, INBOUND))
            else:
                self._evict(victim)

    def _evict(self, victim: PeerConnection, whom: str = "a newcomer") -> None:
        self.log.info("evicting {peer} to make room for {whom}",
                      peer=victim.describe(), whom=whom)
        victim.close(CloseReason(CloseKind.EVICTED, whom))

    def misbehaved(self, connection: PeerConnection, points: float,
                   reason: str) -> None:
        """
        Count misbehaviour against the connection's node and address; the
        connection itself is closed already.  A node past the threshold is
        banned for C{banTime} (its HELLO is refused), and an address past
        it gets a new connection only now and then.  Other connections
        from the address (a NAT, a shared host) did nothing wrong, and
        keep going; connections from this node's own address are never
        held against it.
        """
        info = connection.peer
        if info is not None and self.offenders.penalize(info.node_id, points,
                                                        reason):
            self.log.warn("banning node {node} for {time:g} s: {reason}",
                          node=info.node_id, time=self.config.banTime,
                          reason=reason)
        host = connection.remoteHost
        if not (isLocal(connection) or isRelayed(connection)) and \
                self.misbehaviour.penalize(host, points, reason):
            self.log.warn("banning {host} for {time:g} s: {reason}",
                          host=host, time=self.config.banTime, reason=reason)

    def messageReceived(self, connection: PeerConnection,
                        message: P2PMessage) -> None:
        handler = self.dispatcher.handler(message)
        if handler is None:
            connection.protocolError(f"unexpected {message.TYPE}")
        elif connection.query:
            self.queries.received(connection, message, handler)
        else:
            handler(connection, message)

    # -- dialing ------------------------------------------------------------

    def connect(self, host: str, port: int,
                role: str = NEIGHBOUR) -> "Deferred[PeerInfo]":
        """
        Make sure this node is connected to the node listening at
        C{host:port}; the result is that node's L{PeerInfo}.  Dials to one
        address are made once, whoever asks.

        @param role: what a new connection is for: C{"neighbour"} (part of
            the overlay) or C{"direct"} (direct messages only).
        """
        known = self.peers.byAddress(host, port)
        # A direct link is no neighbour: dialed again, it may become one.
        if known is not None and (known.role, role) != (DIRECT, NEIGHBOUR):
            return succeed(known)
        key = (host, port)
        waiter: Deferred[PeerInfo] = Deferred()
        if key in self._dials:
            self._dials[key].append(waiter)
            return waiter
        if (refusal := self.dialRefusal(host, port)) is not None:
            return fail(refusal)
        self._dials[key] = [waiter]
        d = self.dial(host, port, role).addCallback(lambda c: c.handshake)
        d.addBoth(self._dialDone, key)
        return waiter

    def dialRefusal(self, host: str, port: int) -> Optional[Exception]:
        """Why a new dial to C{host:port} may not go (None: it may)."""
        if (host, port) in self._selfAddresses:
            return SelfConnection(
                f"{formatAddress(host, port)} is this node itself")
        if self.misbehaviour.isBanned(host):
            return PeerUnreachable(
                f"{host} is banned: {self.misbehaviour.banReason(host)}")
        if self._outbound - self.queries.lingering >= self.config.maxOutbound:
            return DialLimit(
                f"cannot dial {formatAddress(host, port)}: "
                f"{self.config.maxOutbound} outbound connections already")
        return None

    def dial(self, host: str, port: int, role: str,
             query: Optional[P2PMessage] = None) -> "Deferred[Any]":
        """Dial C{host:port} (no checks: see L{dialRefusal})."""
        endpoint = self.network.clientEndpoint(host, port,
                                               self.config.connectTimeout)
        return endpoint.connect(PeerConnectionFactory(
            self, outbound=True, role=role, dialed=(host, port), query=query))

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

    # -- the handshake --------------------------------------------------------

    def helloReceived(self, connection: PeerConnection, hello: Hello) -> None:
        outsider = self.private.refusal(connection, hello.node_id,
                                        hello.network_proof)
        if outsider is not None:
            # Before our HELLO: an outsider learns nothing of this node.
            self.log.warn("refusing {peer}: {reason}",
                          peer=connection.remoteAddress, reason=outsider)
            connection.rejected(CloseReason(CloseKind.OUTSIDER, outsider))
            return
        if not connection.outbound:
            # Our HELLO only now, followed at once by whatever comes of
            # theirs (BYE for a self-connection, a duplicate, no room): the
            # dialer never counts a connection the node turns away.
            connection.role = hello.role
            if hello.query:
                connection.query = True
            connection.sendMessage(self.helloFor(connection))
        if hello.node_id == self.nodeId:
            # Both ends are this node: the dialing end reports it, the
            # accepting end closes quietly.
            selfConnection = CloseReason(CloseKind.SELF)
            if connection.outbound:
                connection.rejected(selfConnection, error=SelfConnection)
            else:
                connection.close(selfConnection, tellPeer=False)
            return
        if not connection.provesNodeId(hello.node_id):
            connection.protocolError("node id does not match its key")
            return
        if (wrong := self.ownAddress.check(hello)) is not None:
            connection.protocolError(wrong)
            return
        if connection.role == PROBE:
            self.reachability.probeSettled(connection, hello)
            return
        self.reachability.heard(connection, hello)
        pinned = self.pins.mismatch(connection.dialed, hello.node_id)
        if pinned is not None:
            host, port = connection.dialed or ("?", 0)
            self.log.warn("{address} is node {found}, not {pinned} as pinned: "
                          "not connecting", address=formatAddress(host, port),
                          found=hello.node_id, pinned=pinned)
            connection.rejected(CloseReason(CloseKind.NOT_PINNED))
            return
        banReason = self.offenders.banReason(hello.node_id)
        if banReason is not None:
            connection.rejected(CloseReason(CloseKind.BANNED, banReason))
            return
        connection.neighbourCount = hello.neighbours
        info = PeerInfo(
            node_id=hello.node_id, host=connection.remoteHost, port=hello.port,
            name=hello.name, direction=connection.direction,
            since=self.clock.seconds(), role=connection.role,
            fingerprint=(fingerprintOf(connection.peerKey)
                         if connection.peerKey is not None else None),
            record=self.ownAddress.recordIn(hello), dht=hello.dht == 1)
        if connection.query:
            self.queries.handshaken(connection, info)
            return
        existing = self.peers.connection(hello.node_id)
        # A direct link dialed again as a neighbour needs a slot too.
        if (existing is None or existing.role != connection.role == NEIGHBOUR) \
                and (refusal := self._noRoomFor(connection, info.node_id)):
            self._turnAway(connection, hello, refusal)
        elif existing is not None:
            self._settleDuplicate(connection, existing, info)
        else:
            self.peers.add(info, connection)
            self._emit("roleChanged", hello.node_id, None, connection.role)
            self._emit("peerReached", info, connection)
            self.log.emit(info.logLevel, "peer connected: {peer}",
                          peer=info.describe())
            self._emit("peerAdded", info, connection)
            # Last: whoever waits on this dial sees the peer fully settled.
            connection.established(info)

    def _settleDuplicate(self, new: PeerConnection, existing: PeerConnection,
                         info: PeerInfo) -> None:
        """Two connections to one peer: keep one, close the other."""
        duplicate = CloseReason(CloseKind.DUPLICATE)
        # Close the loser first: then the listeners see which of the two
        # connections is settled as the peer's.
        if keepsNew(new, existing, self.nodeId, info.node_id):
            self.peers.add(info, new)
            existing.rejected(duplicate)
            self._emit("roleChanged", info.node_id, existing.role, new.role)
            self._emit("peerReached", info, new)
            new.established(info)
        else:
            kept = self.peers.get(info.node_id)
            new.rejected(duplicate, peer=kept)
            self._emit("peerReached", kept, existing)

    def _noRoomFor(self, connection: PeerConnection,
                   nodeId: str) -> Optional[CloseReason]:
        """
        Why C{connection}, through its handshake, cannot be kept, or
        L{None}.  A direct link always can; a neighbour needs a slot its
        address may take, and a free one or one an inbound neighbour of a
        more crowded address group gives up.
        """
        if connection.role != NEIGHBOUR:
            return None
        neighbours = self.peers.neighbours()
        refusal = self.inbound.neighbourRefusal(connection, nodeId, neighbours)
        if refusal is not None or self.admission.hasRoomFor(connection):
            return refusal
        victim = self.inbound.evictionFor(
            connection, [c for c in neighbours if not c.outbound])
        if victim is not None:
            self._evict(victim)
        elif (victim := self.inbound.swapForNeed(connection, neighbours)):
            self._evict(victim, "a node in need")
        else:
            return CloseReason(CloseKind.FULL)
        return None

    def _turnAway(self, connection: PeerConnection, hello: Hello,
                  reason: CloseReason) -> None:
        """
        This node has no room for another neighbour: tell the newcomer of
        other nodes, and say goodbye.
        """
        self._emit("peerTurnedAway", hello, connection.remoteHost)
        if not connection.outbound:
            sample = self.admission.turnAwaySample(connection, hello)
            if sample.peers:
                connection.sendMessage(sample)
        connection.rejected(reason, error=PeerFull)

    # -- closing --------------------------------------------------------------

    def connectionLost(self, connection: PeerConnection,
                       reason: CloseReason) -> None:
        if connection in self._connections:
            del self._connections[connection]
            self._outbound -= connection.outbound
        self.metrics.connectionClosed(reason)
        if connection.query:
            self.queries.connectionLost(connection)
        info = connection.peer
        if info is not None and self.peers.remove(info.node_id, connection):
            self.log.emit(info.logLevel, "peer disconnected: {peer} ({reason})",
                          peer=info.describe(), reason=reason.text)
            self._emit("peerRemoved", info, connection, reason)
        self._emit("connectionClosed", connection, reason)

    def closeAll(self) -> "Deferred[None]":
        """Say BYE on every connection and refuse new ones (see
        L{p2poverlay.closing.closeAll})."""
        self.stopping = True
        return closeAll(list(self), self.clock)

    def abortAll(self) -> "Deferred[None]":
        """Cut every connection at once, saying nothing; refuse new ones."""
        self.stopping = True
        return abortAll(list(self))
