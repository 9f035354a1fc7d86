"""
Direct messages: to one node, confirmed by it.

L{DirectMessages} finds the target (a peer, a node of the address book, or
an address to dial), sends C{DATA} over the one connection to it and keeps
every message until its C{ACK} comes.  At most C{sendWindow} messages are
unconfirmed on a connection; the next ones wait in order, and the node
takes at most C{sendQueueLimit} waiting (L{p2poverlay.sendwindow}).  A
message whose connection closes unconfirmed goes over the peer's other
connection if it has one, else it fails; so does one not confirmed within
C{ackTimeout} of being written.  Received C{DATA} is delivered once (a
resent copy is only confirmed again).
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure

from p2poverlay.addressbook import AddressBook
from p2poverlay.addresses import parseAddress
from p2poverlay.config import NodeConfig
from p2poverlay.dispatch import Dispatcher
from p2poverlay.errors import (
    DeliveryFailed, MessageTooLarge, SendQueueFull, UnknownPeer,
)
from p2poverlay.events import NodeStats, ReceivedMessage
from p2poverlay.interfaces import ConnectionListener
from p2poverlay.message import DIRECT, Ack, Data, newMessageId
from p2poverlay.protocol import PeerConnection
from p2poverlay.reasons import CloseReason
from p2poverlay.records import KnownPeer, PeerInfo, matchIdOrName
from p2poverlay.registry import AmbiguousPeer, PeerRegistry
from p2poverlay.seen import SeenCache
from p2poverlay.sendwindow import Backlog, Outgoing, SendWindow

# Front ends stop feeding messages once this many windows' worth wait.
HIGH_WATER_WINDOWS = 2


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
        self._windows: Dict[PeerConnection, SendWindow] = {}
        # Unconfirmed lines stay well within the send buffer, whose
        # overflow would fail a message.
        self._windowBytes = max(1, config.maxSendBuffer // 4)
        self.backlog = Backlog(config.sendQueueLimit,
                               HIGH_WATER_WINDOWS * config.sendWindow,
                               clock)
        dispatcher.register(Data, self.dataReceived)
        dispatcher.register(Ack, self.ackReceived)

    # -- sending ----------------------------------------------------------

    def send(self, target: str, body: str) -> "Deferred[PeerInfo]":
        """
        Send C{body} to C{target}: ``host:port``, a node id or a unique
        prefix of one, or a node's name.  A node that is not connected is
        dialed first (a I{direct} connection, not a neighbour), by its
        address or from the address book.  The message waits, in order,
        behind those to the same peer still unconfirmed beyond the window
        (C{sendWindow}).

        @return: fires with the recipient's L{PeerInfo} once it confirms
            delivery; fails with an L{p2poverlay.errors.OverlayError}
            (L{MessageTooLarge} at once for one that would not fit a line,
            L{SendQueueFull} at once when C{sendQueueLimit} messages
            already wait).
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
        if info is None:
            if known is not None:
                host, port = known.host, known.port
            else:
                try:
                    host, port = parseAddress(target)
                except ValueError:
                    return fail(UnknownPeer(
                        f"no peer matches {target!r} (use host:port, a node "
                        f"id prefix or a name; see 'peers' and 'known')"))
        try:
            self.backlog.add()
        except SendQueueFull as e:
            return fail(e)
        outgoing = Outgoing(message, line, Deferred())
        if info is not None:
            self._sendTo(info, outgoing)
        else:
            d = self.connect(host, port, role=DIRECT)
            d.addCallbacks(self._sendTo, self._notSent,
                           callbackArgs=(outgoing,), errbackArgs=(outgoing,))
        return outgoing.done

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

    def _sendTo(self, info: PeerInfo, outgoing: Outgoing) -> None:
        connection = self.peers.connection(info.node_id)
        if connection is None:
            self._notSent(Failure(DeliveryFailed(
                f"{info.describe()} is not connected")), outgoing)
        else:
            self._enqueue(connection, outgoing)

    def _notSent(self, reason: Failure, outgoing: Outgoing) -> None:
        """A message in the backlog fails before it was written."""
        outgoing.done.errback(reason)
        self.backlog.remove()

    def sendData(self, connection: PeerConnection, message: Data,
                 line: Optional[bytes] = None) -> "Deferred[PeerInfo]":
        """
        Send C{message} (encoded as C{line}, if given) over C{connection},
        behind the messages waiting for its window; the result fires with
        the peer's info once it confirms delivery, or fails with
        L{DeliveryFailed} (L{SendQueueFull} at once if the backlog is
        full).
        """
        try:
            self.backlog.add()
        except SendQueueFull as e:
            return fail(e)
        outgoing = Outgoing(message, line if line is not None
                            else message.encode(), Deferred())
        self._enqueue(connection, outgoing)
        return outgoing.done

    def _enqueue(self, connection: PeerConnection, outgoing: Outgoing) -> None:
        """Put C{outgoing}, counted in the backlog, in line on C{connection}."""
        if connection.closing:
            self._notSent(Failure(DeliveryFailed(
                f"connection to {connection.describe()} is closing")), outgoing)
            return
        window = self._windowOf(connection)
        window.waiting.append(outgoing)
        self._pump(connection, window)

    def _windowOf(self, connection: PeerConnection) -> SendWindow:
        window = self._windows.get(connection)
        if window is None:
            window = self._windows[connection] = SendWindow(
                self.config.sendWindow, self._windowBytes)
        return window

    def _pump(self, connection: PeerConnection, window: SendWindow) -> None:
        """Write the waiting messages the window has room for, in order."""
        while True:
            outgoing = window.nextReady()
            if outgoing is None:
                break
            connection.lastUsed = self.clock.seconds()
            if connection.closing:
                self._notSent(Failure(DeliveryFailed(
                    f"connection to {connection.describe()} is closing")),
                    outgoing)
            elif connection.sendEncoded(outgoing.line, Data.TYPE):
                outgoing.timeout = self.clock.callLater(
                    self.config.ackTimeout, self._ackTimedOut, connection,
                    outgoing.message.id)
                window.written(outgoing)
                # Only now: room in the backlog may bring the next send.
                self.backlog.remove()
            else:
                self._notSent(Failure(DeliveryFailed(
                    f"send buffer to {connection.describe()} is full: it "
                    f"reads too slowly")), outgoing)
        self._forgetIfEmpty(connection, window)

    def _forgetIfEmpty(self, connection: PeerConnection,
                       window: SendWindow) -> None:
        if not window and self._windows.get(connection) is window:
            del self._windows[connection]

    def awaitingAcks(self, connection: PeerConnection) -> bool:
        """Are direct messages sent over C{connection} still unconfirmed?"""
        return bool(self._windows.get(connection))

    def unconfirmed(self, connection: PeerConnection) -> Tuple[str, ...]:
        """The ids of the messages C{connection} still waits to confirm."""
        window = self._windows.get(connection)
        return tuple(window.unconfirmed) if window is not None else ()

    def waiting(self, connection: PeerConnection) -> Tuple[str, ...]:
        """The ids of the messages waiting for room in its window."""
        window = self._windows.get(connection)
        return tuple(o.message.id for o in window.waiting) \
            if window is not None else ()

    def _confirmed(self, connection: PeerConnection,
                   messageId: str) -> Optional[Outgoing]:
        """Take an unconfirmed message out of its window, letting in more."""
        window = self._windows.get(connection)
        if window is None:
            return None
        outgoing = window.confirmed(messageId)
        if outgoing is None:
            return None
        if outgoing.timeout is not None and outgoing.timeout.active():
            outgoing.timeout.cancel()
        self._pump(connection, window)
        return outgoing

    def ackReceived(self, connection: PeerConnection, ack: Ack) -> None:
        outgoing = self._confirmed(connection, ack.id)
        if outgoing is not None:
            outgoing.done.callback(connection.info)
        # Else late or duplicate: the sender already gave up or knows.

    def _ackTimedOut(self, connection: PeerConnection, messageId: str) -> None:
        outgoing = self._confirmed(connection, messageId)
        if outgoing is not None:
            outgoing.done.errback(DeliveryFailed(
                f"{connection.describe()} did not confirm delivery within "
                f"{self.config.ackTimeout:g} s"))

    def connectionClosed(self, connection: PeerConnection,
                         reason: CloseReason) -> None:
        """
        Direct messages that the closed connection never confirmed, and
        those still waiting for it, go in the same order over the peer's
        other connection if it has one, else they fail.
        """
        window = self._windows.pop(connection, None)
        if not window:
            return
        written = len(window.unconfirmed)
        everything = window.takeAll()
        for outgoing in everything:
            if outgoing.timeout is not None and outgoing.timeout.active():
                outgoing.timeout.cancel()
            outgoing.timeout = None
        info = connection.peer
        other = self.peers.connection(info.node_id) if info else None
        if other is not None and not other.closing:
            self.backlog.readd(written)
            otherWindow = self._windowOf(other)
            otherWindow.waiting.extendleft(reversed(everything))
            self._pump(other, otherWindow)
            return
        for outgoing in everything:
            outgoing.done.errback(DeliveryFailed(
                f"connection to {connection.describe()} closed before "
                f"delivery was confirmed ({reason.text})"))
        self.backlog.remove(len(everything) - written)

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
