"""
PeerConnection: one TCP connection to another node.

The protocol frames lines, decodes them, runs the HELLO handshake and
keeps the per-connection state (delivery confirmations, timers).  What a
message means for the overlay is the L{Node}'s business.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Optional

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from p2poverlay.errors import DeliveryFailed, HandshakeFailed
from p2poverlay.message import (
    NEIGHBOUR, PROTOCOL_VERSION, Ack, Broadcast, Bye, Data, Hello,
    MessageError, P2PMessage, Ping, Pong,
)
from p2poverlay.limits import TokenBucket
from p2poverlay.outbox import Outbox
from p2poverlay.addresses import formatAddress
from p2poverlay.records import INBOUND, OUTBOUND, PeerInfo

if TYPE_CHECKING:
    from p2poverlay.node import Node

# How long a closing connection may take to flush before it is aborted.
CLOSE_GRACE = 5.0
# How long reading stops when a peer sends faster than its rate limit.
THROTTLE_PAUSE = 0.1
# Misbehaviour points (see Node.penalize; 100 bans by default).
PROTOCOL_ERROR_POINTS = 60
THROTTLE_POINTS = 1


class PeerConnection(LineReceiver):
    """
    A connection to another node, in either direction.

    @ivar peer: the L{PeerInfo} of the remote node once the handshake is
        done, else L{None}.
    @ivar handshake: fires with the remote L{PeerInfo} of the node this
        connection reached, or fails with L{HandshakeFailed}.
    """

    delimiter = b"\n"
    log = Logger()

    def __init__(self, node: "Node", outbound: bool,
                 role: str = NEIGHBOUR) -> None:
        self.node = node
        self.outbound = outbound
        # NEIGHBOUR or DIRECT: the dialer's choice, learned from its HELLO.
        self.role = role
        self.lastUsed = 0.0  # when a direct message last went either way
        self.MAX_LENGTH = node.config.maxLineLength
        self.metrics = node.metrics
        self.peer: Optional[PeerInfo] = None
        self.version = PROTOCOL_VERSION
        self.closing = False
        self.closeReason = ""
        self.remoteReason = ""
        self.lastHeard = 0.0
        self.link = None  # the PeerLink that dialed this connection, if any
        self.outbox: Optional[Outbox] = None
        self.handshake: Deferred[PeerInfo] = Deferred()
        if not outbound:
            # Nobody waits on an inbound handshake; its failure is logged
            # where it happens.
            self.handshake.addErrback(lambda _: None)
        self._pending: "OrderedDict[str, tuple[Data, Deferred[PeerInfo], IDelayedCall]]" = OrderedDict()
        self._timer: Optional[IDelayedCall] = None
        self._throttled: Optional[IDelayedCall] = None
        self._closedWaiters: "list[Deferred[None]]" = []

    @property
    def direction(self) -> str:
        return OUTBOUND if self.outbound else INBOUND

    @property
    def remoteHost(self) -> str:
        """The observed remote host (the source address of the peer)."""
        return getattr(self.transport.getPeer(), "host", "?")

    @property
    def remoteAddress(self) -> str:
        """The observed remote address, ``host:port``."""
        return formatAddress(self.remoteHost,
                             getattr(self.transport.getPeer(), "port", 0))

    def describe(self) -> str:
        if self.peer is not None:
            return self.peer.describe()
        return self.remoteAddress

    # -- connection life ------------------------------------------------

    def connectionMade(self) -> None:
        clock = self.node.reactor
        self.lastHeard = self.lastUsed = clock.seconds()
        # Lines are small and often answered (ACK, PONG, replies): without
        # this, Nagle's algorithm and delayed ACKs hold a line back ~40 ms.
        setNoDelay = getattr(self.transport, "setTcpNoDelay", None)
        if setNoDelay is not None:
            setNoDelay(True)
        config = self.node.config
        self.outbox = Outbox(self.transport, config.maxSendBuffer,
                             clock.seconds, self.delimiter)
        self.bucket = TokenBucket(config.messageRate, config.messageBurst,
                                  clock.seconds)
        if self.outbound:
            # The accepting side answers once it has read this HELLO (see
            # Node.handshakeReceived).
            self.sendMessage(self.node.helloMessage(self.role))
        self._timer = clock.callLater(
            self.node.config.handshakeTimeout, self._handshakeTimedOut)
        self.node.connectionMade(self)

    def _handshakeTimedOut(self) -> None:
        self._timer = None
        self.log.warn("closing connection with {peer}: {reason}",
                      peer=self.describe(), reason="handshake timeout")
        self.close("handshake timeout")

    def connectionLost(self, reason: Failure = None) -> None:
        self.closing = True
        self._cancelTimer()
        if self._throttled is not None and self._throttled.active():
            self._throttled.cancel()
        if not self.handshake.called:
            why = self.closeReason or self.remoteReason or "connection lost"
            self.handshake.errback(HandshakeFailed(why))
        pending, self._pending = self._pending, OrderedDict()
        self.node.connectionLost(self, pending)
        waiters, self._closedWaiters = self._closedWaiters, []
        for waiter in waiters:
            waiter.callback(None)

    def whenClosed(self) -> "Deferred[None]":
        """A Deferred that fires once this connection has closed."""
        waiter: Deferred[None] = Deferred()
        self._closedWaiters.append(waiter)
        return waiter

    def _cancelTimer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def close(self, reason: str, tellPeer: bool = True) -> None:
        """
        Close this connection, telling the peer why in a BYE first.  What
        is already written is flushed; a peer that does not read it within
        L{CLOSE_GRACE} seconds is cut off.
        """
        if not self._beginClosing(reason):
            return
        self.outbox.flush()
        if tellPeer:
            self._write(Bye(reason[:200]).encode(), Bye.TYPE, force=True)
        # A registered producer would hold the connection open.
        self.transport.unregisterProducer()
        self.transport.loseConnection()
        self._timer = self.node.reactor.callLater(
            CLOSE_GRACE, self.transport.abortConnection)

    def abort(self, reason: str) -> None:
        """Drop this connection at once, unsent data and all."""
        if self._beginClosing(reason):
            self.transport.abortConnection()

    def _beginClosing(self, reason: str) -> bool:
        """Mark this connection closing; False if it already was."""
        if self.closing:
            return False
        self.closing = True
        self.closeReason = reason
        self._cancelTimer()
        return True

    def protocolError(self, reason: str) -> None:
        """The peer sent something invalid: log it, close, count it."""
        self.log.warn("closing connection with {peer}: {reason}",
                      peer=self.describe(), reason=reason)
        self.close(f"protocol error: {reason}")
        self.node.penalize(self, PROTOCOL_ERROR_POINTS, f"protocol error: {reason}")

    def _throttle(self) -> None:
        """
        The peer is over its message rate: stop reading for a moment (TCP
        slows the sender down; nothing is lost) and count it against it.
        """
        self.pauseProducing()
        self._throttled = self.node.reactor.callLater(
            THROTTLE_PAUSE, self._unthrottle)
        self.node.penalize(
            self, THROTTLE_POINTS,
            f"more than {self.node.config.messageRate:g} messages/s")

    def _unthrottle(self) -> None:
        self._throttled = None
        if not self.closing:
            self.resumeProducing()

    def dataReceived(self, data: bytes) -> None:
        """
        Frame lines: split everything that arrived at once and keep the
        unfinished tail.  (L{LineReceiver}'s own loop splits the rest of the
        buffer again for every line: quadratic in the lines of one read.)
        """
        if self._busyReceiving:
            # From inside lineReceived (a resume): the running loop sees it.
            self._buffer += data
            return
        self._busyReceiving = True
        try:
            buffered = self._buffer + data if self._buffer else data
            while not self.closing:
                lines = buffered.split(self.delimiter)
                self._buffer = lines.pop()
                for index, line in enumerate(lines):
                    if self.paused or self.closing:
                        # Throttled: keep the rest for resumeProducing.
                        self._buffer = self.delimiter.join(
                            lines[index:] + [self._buffer])
                        return
                    if len(line) > self.MAX_LENGTH:
                        self.lineLengthExceeded(line)
                        return
                    self.lineReceived(line)
                if len(self._buffer) > self.MAX_LENGTH:
                    self.lineLengthExceeded(self._buffer)
                    return
                # Data that arrived while lines were handled, if any.
                if self.delimiter not in self._buffer or self.paused:
                    return
                buffered = self._buffer
        finally:
            self._busyReceiving = False

    def lineLengthExceeded(self, line: bytes) -> None:
        self.clearLineBuffer()
        if self.closing:
            return
        self.protocolError(f"line longer than {self.MAX_LENGTH} bytes")

    # -- receiving ------------------------------------------------------

    def lineReceived(self, line: bytes) -> None:
        if self.closing:
            return
        self.lastHeard = self.node.reactor.seconds()
        if not self.bucket.take() and self._throttled is None:
            self._throttle()
            if self.closing:
                return  # The throttling got the peer banned.
        try:
            message = P2PMessage.decode(line)
        except MessageError as e:
            self.protocolError(str(e))
            return
        self.metrics.received(message.TYPE, len(line) + 1)
        if self.peer is None and not self.handshake.called:
            if not isinstance(message, Hello):
                self.protocolError(f"expected HELLO, got {message.TYPE}")
                return
            self._cancelTimer()
            self.version = min(self.version, message.version)
            self.node.handshakeReceived(self, message)
        elif isinstance(message, Hello):
            self.protocolError("HELLO sent twice")
        elif isinstance(message, Ping):
            self.sendMessage(Pong(message.nonce))
        elif isinstance(message, Pong):
            pass  # lastHeard is all a PONG is for.
        elif isinstance(message, Ack):
            self._ackReceived(message)
        elif isinstance(message, Bye):
            self.remoteReason = message.reason or "peer left"
            self.close(self.remoteReason, tellPeer=False)
        else:
            self.node.messageReceived(self, message)

    def established(self, info: PeerInfo) -> None:
        """The node accepted the handshake and registered this connection."""
        self.peer = info
        self.handshake.callback(info)

    def rejected(self, reason: str, peer: Optional[PeerInfo] = None,
                 error: type = HandshakeFailed) -> None:
        """
        The node will not use this connection.  If it already has a
        connection to the same peer, C{peer} names it and the handshake
        succeeds with it: whoever waited for this dial reached that peer.
        Otherwise the handshake fails with C{error}.
        """
        self.close(reason)
        if self.handshake.called:
            return
        if peer is not None:
            self.handshake.callback(peer)
        else:
            self.handshake.errback(error(reason))

    # -- sending --------------------------------------------------------

    def sendMessage(self, message: P2PMessage) -> None:
        """Send a small control message; it is queued even when full."""
        if not self.closing:
            self._write(message.encode(), message.TYPE, force=True)

    def sendEncoded(self, line: bytes, messageType: str = Broadcast.TYPE,
                    force: bool = False) -> bool:
        """
        Send a message that was encoded once for several connections.

        @param messageType: the C{TYPE} of the encoded message.
        @param force: queue it even when the send buffer is full (for small
            control messages).
        @return: False if it was dropped because the peer reads too slowly
            or the connection is closing.
        """
        return not self.closing and self._write(line, messageType, force)

    def _write(self, line: bytes, messageType: str,
               force: bool = False) -> bool:
        """Every line this connection sends goes out (and is counted) here."""
        if self.outbox.write(line, force):
            self.metrics.sent(messageType, len(line) + 1)
            return True
        return False

    @property
    def awaitingAcks(self) -> bool:
        """Are direct messages sent here still waiting for their ACK?"""
        return bool(self._pending)

    def sendData(self, message: Data) -> "Deferred[PeerInfo]":
        """
        Send a direct message; the result fires with this peer's info once
        the peer confirms delivery, or fails with L{DeliveryFailed}.
        """
        done: Deferred[PeerInfo] = Deferred()
        self.lastUsed = self.node.reactor.seconds()
        if self.closing:
            done.errback(DeliveryFailed(
                f"connection to {self.describe()} is closing"))
            return done
        if not self._write(message.encode(), Data.TYPE):
            done.errback(DeliveryFailed(
                f"send buffer to {self.describe()} is full: it reads too "
                f"slowly"))
            return done
        timeout = self.node.reactor.callLater(
            self.node.config.ackTimeout, self._ackTimedOut, message.id)
        self._pending[message.id] = (message, done, timeout)
        return done

    def _ackReceived(self, ack: Ack) -> None:
        entry = self._pending.pop(ack.id, None)
        if entry is None:
            return  # Late or duplicate: the sender already gave up or knows.
        _, done, timeout = entry
        timeout.cancel()
        done.callback(self.peer)

    def _ackTimedOut(self, messageId: str) -> None:
        entry = self._pending.pop(messageId, None)
        if entry is not None:
            entry[1].errback(DeliveryFailed(
                f"{self.describe()} did not confirm delivery within "
                f"{self.node.config.ackTimeout:g} s"))
