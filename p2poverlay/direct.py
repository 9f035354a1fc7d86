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

What one read brings is confirmed together: a peer of protocol version 2
gets one C{ACKS} for the C{DATA} of a read (up to L{ACK_BATCH} ids each),
after all of them were delivered; a version 1 peer an C{ACK} for each.
One C{ACKS} confirms many at once, and the sends that its confirmations
bring go out in one write.  A peer that confirms many ids that are not
waiting is read more slowly.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Dict, List, Optional, Tuple

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
from p2poverlay.limits import TokenBucket
from p2poverlay.message import DIRECT, Ack, Acks, Data, newMessageId
from p2poverlay.protocol import PeerConnection
from p2poverlay.reasons import CloseReason
from p2poverlay.records import KnownPeer, PeerInfo, matchIdOrName
from p2poverlay.registry import AmbiguousPeer, PeerRegistry
from p2poverlay.seen import SeenCache
from p2poverlay.sendwindow import Backlog, Outgoing, SendWindow

# Front ends stop feeding messages once this many windows' worth wait.
HIGH_WATER_WINDOWS = 2
# Most ids in one ACKS sent: its line (35 bytes an id) stays under 4 KiB,
# whatever line limit the peer set.
ACK_BATCH = 100
# Confirmations of ids not waiting (late, after their timeout, from an
# honest peer) a connection may send a second, and at once: past that it is
# read more slowly.
STRAY_IDS_PER_SECOND = 1000
STRAY_IDS_BURST = 4000


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
        # Dials a known node reached through a relay (see p2poverlay.relay).
        self.connectThrough: Optional[
            Callable[[KnownPeer], "Deferred[PeerInfo]"]] = None
        self.deliver = deliver
        self.stats = stats
        self._seen = SeenCache(config.seenCacheSize, config.seenCacheTTL,
                               clock.seconds)
        self._windows: Dict[PeerConnection, SendWindow] = {}
        # Ids received in the read being handled, to confirm at its end.
        self._acks: Dict[PeerConnection, List[str]] = {}
        # The budget of stray confirmations of a connection that sent some.
        self._strays: Dict[PeerConnection, TokenBucket] = {}
        # Unconfirmed lines stay well within the send buffer, whose
        # overflow would fail a message.
        self._windowBytes = max(1, config.maxSendBuffer // 4)
        self.backlog = Backlog(config.sendQueueLimit,
                               HIGH_WATER_WINDOWS * config.sendWindow,
                               clock)
        dispatcher.register(Data, self.dataReceived)
        dispatcher.register(Ack, self.ackReceived)
        dispatcher.register(Acks, self.acksReceived)

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
        # The common case first: the node id of a peer.
        connection = self.peers.connection(target)
        info = known = None
        if connection is None:
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
                            f"no peer matches {target!r} (use host:port, a "
                            f"node id prefix or a name; see 'peers' and "
                            f"'known')"))
        try:
            self.backlog.add()
        except SendQueueFull as e:
            return fail(e)
        outgoing = Outgoing(message, line, Deferred())
        if connection is not None:
            self._enqueue(connection, outgoing)
        elif info is not None:
            self._sendTo(info, outgoing)
        else:
            d = self._dial(known, host, port)
            d.addCallbacks(self._sendTo, self._notSent,
                           callbackArgs=(outgoing,), errbackArgs=(outgoing,))
        return outgoing.done

    def _dial(self, known: Optional[KnownPeer], host: str,
              port: int) -> "Deferred[PeerInfo]":
        """A direct link to C{host:port}, or through the relay C{known}
        names in its record."""
        if known is not None and known.relayed:
            if self.connectThrough is None:
                return fail(DeliveryFailed(
                    f"{known.shortId} is reached only through a relay"))
            return self.connectThrough(known)
        return self.connect(host, port, role=DIRECT)

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
        window = self._windows.get(connection)
        if window is None:
            window = self._windowOf(connection)
        window.waiting.append(outgoing)
        if not window.holding:
            self._pump(connection, window)

    def _windowOf(self, connection: PeerConnection) -> SendWindow:
        window = self._windows.get(connection)
        if window is None:
            window = self._windows[connection] = SendWindow(
                self.config.sendWindow, self._windowBytes)
        return window

    def _pump(self, connection: PeerConnection, window: SendWindow) -> None:
        """
        Write the waiting messages the window has room for, in order and
        in one write; those the connection does not take fail.
        """
        if window.holding:
            return
        now = self.clock.seconds()
        deadline = now + self.config.ackTimeout
        while True:
            batch = window.writeReady(deadline)
            if not batch:
                break
            connection.lastUsed = now
            taken = connection.sendEncodedLines([o.line for o in batch],
                                                Data.TYPE)
            if taken:
                if window.timer is None:
                    self._setTimer(connection, window, now)
                # Only now: room in the backlog may bring the next send.
                self.backlog.remove(taken)
            for outgoing in batch[taken:]:
                window.confirmed(outgoing.message.id)
                self._notSent(Failure(DeliveryFailed(
                    f"connection to {connection.describe()} is closing"
                    if connection.closing else
                    f"send buffer to {connection.describe()} is full: it "
                    f"reads too slowly")), outgoing)
        self._forgetIfEmpty(connection, window)

    def _forgetIfEmpty(self, connection: PeerConnection,
                       window: SendWindow) -> None:
        if not window and self._windows.get(connection) is window:
            window.stopTimer()
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

    def ackReceived(self, connection: PeerConnection, ack: Ack) -> None:
        self._confirm(connection, (ack.id,))

    def acksReceived(self, connection: PeerConnection, acks: Acks) -> None:
        self._confirm(connection, acks.ids)

    def _confirm(self, connection: PeerConnection,
                 ids: Tuple[str, ...]) -> None:
        """
        The peer confirmed the messages C{ids}: take them out of the
        window, let in as many more, and tell each sender in turn.  An id
        not waiting (late, repeated or unknown) means nothing: the sender
        already gave up or knows.
        """
        window = self._windows.get(connection)
        confirmed = window.confirmedAll(ids) if window is not None else []
        if len(confirmed) < len(ids):
            self._stray(connection, len(ids) - len(confirmed))
        if window is None or not confirmed:
            return
        info = connection.info
        # What the senders send now waits, and goes in one write with the
        # rest after them.
        window.holding = True
        try:
            for outgoing in confirmed:
                outgoing.done.callback(info)
        finally:
            window.holding = False
        self._pump(connection, window)

    def _stray(self, connection: PeerConnection, count: int) -> None:
        """C{connection} confirmed C{count} ids that were not waiting."""
        budget = self._strays.get(connection)
        if budget is None:
            budget = self._strays[connection] = TokenBucket(
                STRAY_IDS_PER_SECOND, STRAY_IDS_BURST, self.clock)
        if not budget.take(count):
            connection.slowDown(count / STRAY_IDS_PER_SECOND)

    def _setTimer(self, connection: PeerConnection, window: SendWindow,
                  now: float) -> None:
        """Set the window's timer for its oldest deadline, if any."""
        oldest = window.oldestDeadline()
        if oldest is not None:
            window.timer = self.clock.callLater(
                max(0.0, oldest - now), self._ackTimedOut, connection, window)

    def _ackTimedOut(self, connection: PeerConnection,
                     window: SendWindow) -> None:
        """
        The window's timer: fail what is past its deadline, and set the
        timer again for the oldest left.
        """
        window.timer = None
        now = self.clock.seconds()
        expired = window.expired(now)
        if self._windows.get(connection) is window:
            self._setTimer(connection, window, now)
            self._pump(connection, window)
        for outgoing in expired:
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
        self._acks.pop(connection, None)
        self._strays.pop(connection, None)
        window = self._windows.pop(connection, None)
        if window is None:
            return
        written = len(window.unconfirmed)
        everything = window.takeAll()
        if not everything:
            return
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
        messageId = message.id
        if self._seen.add(messageId):
            self.stats.directDelivered += 1
            via = connection.info
            self.deliver(ReceivedMessage(
                kind="direct", message_id=messageId, body=message.body,
                sender_id=via.node_id, sender_name=via.name, sender=via,
                via=via))
        # Confirmed with the others of the same read, once delivered.
        pending = self._acks.get(connection)
        if pending is None:
            self._acknowledge(connection, messageId)
        else:
            pending.append(messageId)
            if len(pending) >= ACK_BATCH:
                self._sendAcks(connection)

    def _acknowledge(self, connection: PeerConnection, messageId: str) -> None:
        """Confirm C{messageId}, the first of its read."""
        connection.lastUsed = self.clock.seconds()  # for the whole read
        if connection.version < 2:
            connection.sendMessage(Ack(messageId))
        else:
            self._acks[connection] = [messageId]
            connection.afterRead(partial(self._sendAcks, connection))

    def _sendAcks(self, connection: PeerConnection) -> None:
        ids = self._acks.pop(connection, None)
        if ids:
            connection.sendMessage(Ack(ids[0]) if len(ids) == 1
                                   else Acks(tuple(ids)))
