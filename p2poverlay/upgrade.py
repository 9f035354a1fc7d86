"""
From a relayed connection to a direct one.

Where one side of a connection through a relay can be dialed, it asks
the other, over that connection, to dial it directly
(L{p2poverlay.natwire.DialMe}: connection reversal).  The new connection
duplicates the relayed one, and both sides keep their own
(L{p2poverlay.connections.Connections}): the circuit closes.  Every
attempt and success is counted by kind, for the metrics.
"""

from __future__ import annotations

from typing import Any, Dict, FrozenSet

from twisted.logger import Logger
from twisted.python.failure import Failure

from p2poverlay.admission import isRelayed
from p2poverlay.interfaces import ConnectionListener
from p2poverlay.natwire import DialMe
from p2poverlay.reachability import PUBLIC

REVERSAL = "reversal"
PUNCH = "punch"  # see p2poverlay.holepunch
KINDS = (REVERSAL, PUNCH)


class DirectUpgrade(ConnectionListener):
    """
    Turns relayed connections into direct ones where one side can be
    dialed.

    @ivar upgraded: the node ids whose direct connection replaced a
        relayed one, with the kind of upgrade (for C{peers}).
    """

    log = Logger()

    # Empty for most nodes, so one empty set the class holds until a
    # node needs its own (each is replaced, never changed in place).
    _asked: FrozenSet[str] = frozenset()  # peers asked to be dialed, now

    def __init__(self, connections: Any, reachability: Any,
                 dispatcher: Any) -> None:
        self.connections = connections
        self.reachability = reachability
        self.upgraded: Dict[str, str] = {}
        self.attempts = {kind: 0 for kind in KINDS}
        self.successes = {kind: 0 for kind in KINDS}
        # Peers last reached through relays, and when.
        self._relayed: Dict[str, float] = {}
        dispatcher.register(DialMe, self.dialMeReceived)

    def linkOf(self, nodeId: str, connection: Any) -> str:
        """How this node is linked to C{nodeId} over C{connection}:
        C{"relayed"}, L{PUNCH}, L{REVERSAL} or C{"direct"}."""
        if isRelayed(connection):
            return "relayed"
        return self.upgraded.get(nodeId, "direct")

    def peerReached(self, info: Any, connection: Any) -> None:
        """A relayed connection from a node this one can be dialed by:
        ask it to dial directly."""
        now = self.connections.clock.seconds()
        if isRelayed(connection):
            self._relayed[info.node_id] = now
            if self.reachability.state == PUBLIC \
                    and self.reachability.address is not None:
                host, port = self.reachability.address
                connection.sendMessage(DialMe(host, port))
        elif info.node_id in self._relayed:
            # A link of their own replaced the relayed one: if no punch
            # made it, the peer dialed this node as it asked.
            relayedAt = self._relayed.pop(info.node_id)
            if self.upgraded.setdefault(info.node_id, REVERSAL) == REVERSAL:
                self.log.info(
                    "dialed back by {peer}: the link {link:.0f} ms after "
                    "the relayed one", peer=info.describe(),
                    link=1000 * (now - relayedAt))

    def dialMeReceived(self, connection: Any, message: DialMe) -> None:
        """The peer of a relayed connection asks to be dialed directly."""
        if not isRelayed(connection):
            connection.protocolError("DIAL_ME on a direct connection")
            return
        peer = connection.info.node_id
        if peer in self._asked:
            return  # Once per peer at a time.
        self._asked |= {peer}
        self.attempts[REVERSAL] += 1
        d = self.connections.connect(message.host, message.port,
                                     connection.role)

        def dialed(info: Any) -> None:
            self._asked -= {peer}
            if info.node_id != peer:
                self.log.warn("{address} is not {peer}: no direct link",
                              address=f"{message.host}:{message.port}",
                              peer=peer[:8])
                return
            self.successes[REVERSAL] += 1
            self.upgraded[peer] = REVERSAL
            self.log.info("direct link to {peer} replaces the relayed one",
                          peer=info.describe())

        def failed(reason: Failure) -> None:
            self._asked -= {peer}
            self.log.info("no direct link to {peer}: {why}", peer=peer[:8],
                          why=reason.getErrorMessage())

        d.addCallbacks(dialed, failed)

    def peerRemoved(self, info: Any, connection: Any, reason: Any) -> None:
        self._relayed.pop(info.node_id, None)
        if not isRelayed(connection):
            self.upgraded.pop(info.node_id, None)

    def counters(self) -> Dict[str, object]:
        """For L{p2poverlay.metrics}."""
        return {"upgrade_attempts": dict(self.attempts),
                "upgrade_successes": dict(self.successes)}
