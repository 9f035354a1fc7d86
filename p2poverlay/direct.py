"""
Direct messages: to one node, confirmed by it.

L{DirectMessages} finds the target (a peer, a node of the address book, or
an address to dial), sends C{DATA} over the one connection to it and keeps
every message until its C{ACK} comes.  A message whose connection closes
unconfirmed goes over the peer's other connection if it has one, else it
fails; so does one not confirmed within C{ackTimeout}.  Received C{DATA}
is delivered once (a resent copy is only confirmed again).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Dict, Optional, Tuple

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall

from p2poverlay.addressbook import AddressBook
from p2poverlay.addresses import parseAddress
from p2poverlay.config import NodeConfig
from p2poverlay.dispatch import Dispatcher
from p2poverlay.errors import DeliveryFailed, MessageTooLarge, UnknownPeer
from p2poverlay.events import NodeStats, ReceivedMessage
from p2poverlay.interfaces import ConnectionListener
from p2poverlay.message import DIRECT, Ack, Data, newMessageId
from p2poverlay.protocol import PeerConnection
from p2poverlay.reasons import CloseReason
from p2poverlay.records import KnownPeer, PeerInfo, matchIdOrName
from p2poverlay.registry import AmbiguousPeer, PeerRegistry
from p2poverlay.seen import SeenCache

Pending = Tuple[Data, "Deferred[PeerInfo]", IDelayedCall]


class DirectMessages(ConnectionListener):
    """
    The direct messages of one node.

    @param connect: C{connect(host, port, role)} reaches a node and fires
        with its L{PeerInfo} (L{p2poverlay.connections.Connections.connect}).
    @param deliver: called with each new L{ReceivedMessage}.
    """

    def __init__(self, config: NodeConfig, clock, registry: PeerRegistry,
                 book: AddressBook, dispatcher: Dispatcher,
                 connect: Callable[..., "Deferred[PeerInfo]"],
                 deliver: Callable[[ReceivedMessage], None],
                 stats: NodeStats) -> None:
        self.config = config
        self.clock = clock
        self.peers = registry
        self.book = book
        self.connect = connect
        self.deliver = deliver
        self.stats = stats
        self._seen = SeenCache(config.seenCacheSize, config.seenCacheTTL,
                               clock.seconds)
        self._pending: Dict[PeerConnection, "OrderedDict[str, Pending]"] = {}
        dispatcher.register(Data, self.dataReceived)
        dispatcher.register(Ack, self.ackReceived)

    # -- sending ----------------------------------------------------------

    def send(self, target: str, body: str) -> "Deferred[PeerInfo]":
        """
        Send C{body} to C{target}: ``host:port``, a node id or a unique
        prefix of one, or a node's name.  A node that is not connected is
        dialed first (a I{direct} connection, not a neighbour), by its
        address or from the address book.

        @return: fires with the recipient's L{PeerInfo} once it confirms
            delivery; fails with an L{p2poverlay.errors.OverlayError}
            (L{MessageTooLarge} at once for one that would not fit a line).
        """
        message = Data(newMessageId(), body)
        line = message.encode()
        if len(line) > self.config.maxLineLength:
            return fail(MessageTooLarge.of(len(line), self.config.maxLineLength))
        try:
            info = self.peers.find(target)
            known = None if info else self._findKnown(target)
        except AmbiguousPeer as e:
            return fail(UnknownPeer(str(e)))
        if info is not None:
            return self._sendTo(info, message, line)
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
        d.addCallback(self._sendTo, message, line)
        return d

    def _findKnown(self, reference: str) -> Optional[KnownPeer]:
        """
        A node of the address book by node id, unique id prefix or name.

        @raise AmbiguousPeer: if several match.
        """
        matches = matchIdOrName(reference,
                                [e for e in self.book.all() if e.port])
        if len(matches) > 1:
            raise AmbiguousPeer(
                f"{reference!r} matches {len(matches)} known nodes")
        return matches[0] if matches else None

    def _sendTo(self, info: PeerInfo, message: Data,
                line: bytes) -> "Deferred[PeerInfo]":
        connection = self.peers.connection(info.node_id)
        if connection is None:
            return fail(DeliveryFailed(f"{info.describe()} is not connected"))
        return self.sendData(connection, message, line)

    def sendData(self, connection: PeerConnection, message: Data,
                 line: Optional[bytes] = None) -> "Deferred[PeerInfo]":
        """
        Send C{message} (encoded as C{line}, if given) over C{connection};
        the result fires with the peer's info once it confirms delivery,
        or fails with L{DeliveryFailed}.
        """
        done: Deferred[PeerInfo] = Deferred()
        connection.lastUsed = self.clock.seconds()
        if connection.closing:
            done.errback(DeliveryFailed(
                f"connection to {connection.describe()} is closing"))
            return done
        if line is None:
            line = message.encode()
        if not connection.sendEncoded(line, Data.TYPE):
            done.errback(DeliveryFailed(
                f"send buffer to {connection.describe()} is full: it reads "
                f"too slowly"))
            return done
        timeout = self.clock.callLater(self.config.ackTimeout,
                                       self._ackTimedOut, connection,
                                       message.id)
        self._pending.setdefault(connection, OrderedDict())[message.id] = (
            message, done, timeout)
        return done

    def awaitingAcks(self, connection: PeerConnection) -> bool:
        """Are direct messages sent over C{connection} still unconfirmed?"""
        return bool(self._pending.get(connection))

    def unconfirmed(self, connection: PeerConnection) -> Tuple[str, ...]:
        """The ids of the messages C{connection} still waits to confirm."""
        return tuple(self._pending.get(connection, ()))

    def _take(self, connection: PeerConnection,
              messageId: str) -> Optional[Pending]:
        pending = self._pending.get(connection)
        if pending is None:
            return None
        entry = pending.pop(messageId, None)
        if not pending:
            del self._pending[connection]
        return entry

    def ackReceived(self, connection: PeerConnection, ack: Ack) -> None:
        entry = self._take(connection, ack.id)
        if entry is None:
            return  # Late or duplicate: the sender already gave up or knows.
        _, done, timeout = entry
        timeout.cancel()
        done.callback(connection.info)

    def _ackTimedOut(self, connection: PeerConnection, messageId: str) -> None:
        entry = self._take(connection, messageId)
        if entry is not None:
            entry[1].errback(DeliveryFailed(
                f"{connection.describe()} did not confirm delivery within "
                f"{self.config.ackTimeout:g} s"))

    def connectionClosed(self, connection: PeerConnection,
                         reason: CloseReason) -> None:
        """
        Direct messages that the closed connection never confirmed go over
        the peer's other connection if it has one, else they fail.
        """
        pending = self._pending.pop(connection, None)
        if not pending:
            return
        info = connection.peer
        other = self.peers.connection(info.node_id) if info else None
        for message, done, timeout in pending.values():
            if timeout.active():
                timeout.cancel()
            if other is not None and not other.closing:
                self.sendData(other, message).chainDeferred(done)
            else:
                done.errback(DeliveryFailed(
                    f"connection to {connection.describe()} closed before "
                    f"delivery was confirmed ({reason.text})"))

    # -- receiving --------------------------------------------------------

    def dataReceived(self, connection: PeerConnection, message: Data) -> None:
        connection.lastUsed = self.clock.seconds()
        if self._seen.add(message.id):
            self.stats.directDelivered += 1
            via = connection.info
            self.deliver(ReceivedMessage(
                kind="direct", message_id=message.id, body=message.body,
                sender_id=via.node_id, sender_name=via.name, sender=via,
                via=via))
        connection.sendMessage(Ack(message.id))
