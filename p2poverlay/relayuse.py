"""
The relays a node nobody can dial is reached through.

A private node (L{p2poverlay.reachability}) keeps reservations with up to
L{MAX_RELAYS} peers it dialed itself, which can therefore be dialed, and
advertises the first in its signed record ("reachable through R":
L{p2poverlay.ownaddress.OwnAddress.relayedRecord}).  A relay that goes,
or refuses, is replaced by another peer; the node's peers hear of each
change (L{p2poverlay.addressnews}).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, FrozenSet, List, Optional, Tuple

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from p2poverlay.addresses import formatAddress
from p2poverlay.errors import PeerUnreachable
from p2poverlay.interfaces import ConnectionListener
from p2poverlay.message import DIRECT, PROBE

MAX_RELAYS = 2
# After a refusal, or with no peer to ask, the next try after this long.
RETRY = 30.0

Via = Tuple[str, str, int]  # a relay's node id, host and port


class RelayUse(ConnectionListener):
    """
    Keeps this node's reservations while it C{wants} them.

    @param reserve: C{reserve(connection)}, a Deferred that fires once the
        peer of C{connection} holds a reservation for this node (fails if
        it refuses); see L{p2poverlay.relay}.
    @param changed: called when the relay advertised changes.
    """

    log = Logger()

    # Empty for most nodes, so one empty set the class holds until a
    # node needs its own (each is replaced, never changed in place).
    _asking: FrozenSet[str] = frozenset()
    _refusedBy: FrozenSet[str] = frozenset()

    def __init__(self, clock: Any, peers: Any,
                 reserve: Callable[[Any], Any], wants: Callable[[], bool],
                 changed: Callable[[], None]) -> None:
        self.clock = clock
        self.peers = peers
        self.reserve = reserve
        self.wants = wants
        self.changed = changed
        self._reserved: "OrderedDict[str, Via]" = OrderedDict()
        self._retry: Optional[IDelayedCall] = None
        self.stopped = False

    def current(self) -> Optional[Via]:
        """The relay advertised: the first reservation held, if any."""
        return next(iter(self._reserved.values()), None)

    def relays(self) -> List[Via]:
        """Every relay holding a reservation for this node."""
        return list(self._reserved.values())

    def check(self) -> None:
        """Ask for reservations until L{MAX_RELAYS} are held or asked."""
        if self.stopped or not self.wants():
            return
        for connection in self._candidates():
            if len(self._reserved) + len(self._asking) >= MAX_RELAYS:
                return
            nodeId = connection.peer.node_id
            self._asking |= {nodeId}
            d = self.reserve(connection)
            d.addCallbacks(self._reservedBy, self._refused,
                           callbackArgs=(connection,),
                           errbackArgs=(connection,))
        if len(self._reserved) + len(self._asking) < MAX_RELAYS:
            self._later()

    def _candidates(self) -> List[Any]:
        """Peers this node dialed that can be dialed and are not asked."""
        busy = set(self._reserved) | self._asking
        found = [c for c in self.peers.connections()
                 if c.outbound and not c.closing and c.peer is not None
                 and c.role != PROBE and c.peer.port
                 and c.peer.node_id not in busy]
        # Those that refused before go last.
        return sorted(found, key=lambda c: c.peer.node_id in self._refusedBy)

    def _reservedBy(self, _: object, connection: Any) -> None:
        info = connection.peer
        self._asking -= {info.node_id}
        if connection.closing or self.stopped:
            return
        record = info.record
        host = record.host if record is not None else info.host
        before = self.current()
        self._reserved[info.node_id] = (info.node_id, host, info.port)
        self.log.info("reserved a relay at {peer}", peer=info.describe())
        if self.current() != before:
            self.changed()

    def _refused(self, reason: Failure, connection: Any) -> None:
        nodeId = connection.peer.node_id
        self._asking -= {nodeId}
        self._refusedBy |= {nodeId}
        self.log.info("{peer} keeps no reservation for this node: {why}",
                      peer=connection.peer.describe(),
                      why=reason.getErrorMessage())
        self._later()

    def _later(self) -> None:
        if self.stopped or (self._retry is not None and self._retry.active()):
            return
        self._retry = self.clock.callLater(RETRY, self._retried)

    def _retried(self) -> None:
        self._retry = None
        self.check()

    # -- peers coming and going -----------------------------------------------

    def peerAdded(self, info: Any, connection: Any) -> None:
        if connection.outbound and len(self._reserved) < MAX_RELAYS:
            self.clock.callLater(0, self.check)

    def peerRemoved(self, info: Any, connection: Any, reason: Any) -> None:
        if info.node_id in self._reserved:
            before = self.current()
            del self._reserved[info.node_id]
            if self.current() != before:
                self.changed()
            self.clock.callLater(0, self.check)

    def stop(self) -> None:
        self.stopped = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None


def connectThrough(connections: Any, client: Any,
                   known: Any) -> "Deferred[Any]":
    """
    A connection to the known node C{known}, reached through the relay
    its record names: a link to the relay (L{connections}' own, or a new
    direct one), then a circuit through it (C{client}, a
    L{p2poverlay.relay.RelayClient}); fires with the node's L{PeerInfo}.
    """
    record = known.record
    d = connections.connect(record.host, record.port, DIRECT)

    def reached(relay: Any) -> "Deferred[Any]":
        if relay.node_id != record.relay:
            raise PeerUnreachable(
                f"{formatAddress(record.host, record.port)} is no longer "
                f"the relay of {known.shortId}")
        return client.dial(connections.peers.connection(relay.node_id),
                           known.node_id)
    return d.addCallback(reached)
