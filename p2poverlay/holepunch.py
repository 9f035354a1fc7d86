"""
TCP hole punching: two nodes behind NATs, connected through a relay,
make a direct connection by dialing each other at once.

The node that opened the relayed connection (A) sends its public address
(the host its peers agree on, and its listening port) in L{HolePunch}
C{connect}, with the round trip over the circuit it measured (asking the
relay for it until it was ready).  The other (B) answers with its own
address and dials half that round trip later, when A, dialing as it
reads the answer, dials too: one round trip over the relay, then TCP's.
Each dials from its listening port (L{p2poverlay.reuseport}) to the
other's public one, so each NAT has a mapping for the other's SYN and
TCP's simultaneous open joins the two attempts into one connection.  Of
it A is the TLS client and the dialing side of the HELLO handshake, B
the server and the accepting side, as if A had dialed alone.  Up to
L{TRIES} tries, each with the round trip the last one measured; a node
whose NAT maps per destination (symmetric) answers C{none}, and the pair
stays relayed.
"""

from __future__ import annotations

from typing import Any, Dict, FrozenSet, Optional, Tuple

from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure

from p2poverlay.admission import isRelayed
from p2poverlay.factory import PeerConnectionFactory
from p2poverlay.interfaces import ConnectionListener
from p2poverlay.natwire import (
    MAX_PUNCH_RTT, PUNCH_CONNECT, PUNCH_NONE, HolePunch,
)
from p2poverlay.observations import PER_DESTINATION
from p2poverlay.reachability import PUBLIC
from p2poverlay.reuseport import dialFrom
from p2poverlay.upgrade import PUNCH

TRIES = 3
# How long one try's dial may take: SYNs lost before the other NAT has
# its mapping are sent again after 1 s and 3 s.
DIAL_TIMEOUT = 6.0


def _handshakeOf(protocol: Any) -> Any:
    """The handshake of the PeerConnection C{protocol} is or wraps."""
    return getattr(protocol, "wrappedProtocol", protocol).handshake


class HolePunching(ConnectionListener):
    """
    Punches through to the peers of relayed connections.

    @param network: the node's L{p2poverlay.network.TCPNetwork} (its
        C{reactor}, and C{tls} unless plaintext).
    @param local: the listening address, C{(host, port)}, now.
    @param upgrade: the L{p2poverlay.upgrade.DirectUpgrade} that counts.
    """

    log = Logger()

    # Empty for most nodes, so one empty set the class holds until a
    # node needs its own (each is replaced, never changed in place).
    _dialing: FrozenSet[str] = frozenset()

    def __init__(self, connections: Any, reachability: Any, network: Any,
                 local: Any, upgrade: Any, dispatcher: Any) -> None:
        self.connections = connections
        self.reachability = reachability
        self.network = network
        self.local = local
        self.upgrade = upgrade
        # A's side: peer -> (when this try began, its number, when the
        # first try began).
        self._started: Dict[str, Tuple[float, int, float]] = {}
        # Either side: the peers a dial is on its way to.
        dispatcher.register(HolePunch, self.punchReceived)

    def _ownAddress(self) -> Optional[Tuple[str, int]]:
        """This node's public address, if it may punch at all."""
        observations = self.reachability.observations
        host = observations.candidate()
        if host is None or observations.mapping() == PER_DESTINATION \
                or self.reachability.state == PUBLIC:
            return None  # (A public node asks to be dialed instead.)
        return host, self.local()[1]

    def peerReached(self, info: Any, connection: Any) -> None:
        if isRelayed(connection) and connection.outbound \
                and self._ownAddress() is not None:
            self._start(connection, info.node_id, 1,
                        getattr(connection, "circuitRoundTrip", 0.0))

    def _start(self, connection: Any, peer: str, attempt: int,
               rtt: float) -> None:
        address = self._ownAddress()
        if address is None or connection.closing:
            return
        now = self.connections.clock.seconds()
        first = self._started[peer][2] if attempt > 1 \
            and peer in self._started else now
        self._started[peer] = (now, attempt, first)
        self.upgrade.attempts[PUNCH] += 1
        connection.sendMessage(HolePunch(
            PUNCH_CONNECT, *address,
            rtt=min(MAX_PUNCH_RTT, round(1000 * rtt))))

    def punchReceived(self, connection: Any, message: HolePunch) -> None:
        if not isRelayed(connection):
            connection.protocolError("HOLE_PUNCH on a direct connection")
            return
        peer = connection.info.node_id
        started = self._started.get(peer)
        if message.step == PUNCH_NONE:
            self._started.pop(peer, None)
        elif peer in self._dialing:
            return  # (One dial at a time.)
        elif message.step == PUNCH_CONNECT and started is not None \
                and connection.outbound:
            # B's answer: A dials now, as B does (half a round trip after
            # it read A's connect).
            t0, attempt, _ = started
            self._dial(connection, message.host, message.port, True, attempt,
                       self.connections.clock.seconds() - t0)
        elif message.step == PUNCH_CONNECT and not connection.outbound:
            address = self._ownAddress()
            if address is None:
                connection.sendMessage(HolePunch(PUNCH_NONE))
                return
            connection.sendMessage(HolePunch(PUNCH_CONNECT, *address))
            self._dialing |= {peer}
            self.connections.clock.callLater(
                message.rtt / 2000, self._dial, connection, message.host,
                message.port, False, 0)

    def _dial(self, relayed: Any, host: str, port: int, asClient: bool,
              attempt: int, rtt: float = 0.0) -> None:
        """Dial C{host:port} from the listening port, as the TLS client
        and HELLO dialer (A; C{rtt}: the round trip this try measured,
        for the next) or as the server and acceptor (B)."""
        peer = relayed.info.node_id
        if relayed.closing:
            self._dialing -= {peer}
            return
        self._dialing |= {peer}
        factory: Any = PeerConnectionFactory(
            self.connections, outbound=asClient, role=relayed.role,
            dialed=(host, port) if asClient else None)
        tls = getattr(self.network, "tls", None)
        if tls is not None:
            factory = TLSMemoryBIOFactory(tls, asClient, factory)
        clock = self.connections.clock
        d = dialFrom(self.network.reactor, self.local(), host, port, factory,
                     DIAL_TIMEOUT)
        began = self._started[peer][2] if peer in self._started else None
        tcpAt = 0.0

        def tcpUp(protocol: Any) -> Any:
            nonlocal tcpAt
            tcpAt = clock.seconds()
            return _handshakeOf(protocol)

        d.addCallback(tcpUp)

        def settled(result: Any) -> Any:
            self._dialing -= {peer}
            return result

        d.addBoth(settled)

        def punched(info: Any) -> None:
            if info.node_id != peer:
                return
            self._started.pop(peer, None)
            if asClient:
                self.upgrade.successes[PUNCH] += 1
            self.upgrade.upgraded[peer] = PUNCH
            if began is None:
                self.log.info("punched through to {peer}",
                              peer=info.describe())
                return
            self.log.info(
                "punched through to {peer} on try {attempt}: TCP up "
                "{tcp:.0f} ms and the link {link:.0f} ms after the relayed "
                "one", peer=info.describe(), attempt=attempt,
                tcp=1000 * (tcpAt - began),
                link=1000 * (clock.seconds() - began))

        def missed(reason: Failure) -> None:
            self.log.info("punching through to {peer}: {why}", peer=peer[:8],
                          why=reason.getErrorMessage())
            if asClient and attempt < TRIES:
                self._start(relayed, peer, attempt + 1, rtt)
            elif asClient:
                self._started.pop(peer, None)

        d.addCallbacks(punched, missed)

    def peerRemoved(self, info: Any, connection: Any, reason: Any) -> None:
        if isRelayed(connection):
            self._started.pop(info.node_id, None)
            self._dialing -= {info.node_id}
