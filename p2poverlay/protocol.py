"""
PeerConnection: one TCP connection to another node.

The protocol frames lines (L{LineFraming}), decodes them, throttles a peer that sends too
fast, and runs its own life cycle as a state machine (L{Lifecycle}:
C{handshaking}, C{ready}, C{closingDown}, C{closed}).  Everything
a line means for the overlay is its owner's business: an
L{IPeerConnectionOwner}, in practice L{p2poverlay.connections.Connections}.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol, Tuple

from automat import TypeMachineBuilder
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from p2poverlay.addresses import formatAddress
from p2poverlay.errors import HandshakeFailed, PeerFull
from p2poverlay.framing import LineFraming
from p2poverlay.interfaces import IPeerConnectionOwner
from p2poverlay.limits import TokenBucket
from p2poverlay.message import (
    NEIGHBOUR, PROTOCOL_VERSION, UNSAID, Bye, Hello, MessageError, P2PMessage,
)
from p2poverlay.outbox import Outbox
from p2poverlay.reasons import LOST_CONNECTION, CloseKind, CloseReason
from p2poverlay.records import INBOUND, OUTBOUND, PeerInfo
from p2poverlay.sending import LineSending
from p2poverlay.tls import ProvesKey

# How long a closing connection may take to flush before it is aborted.
CLOSE_GRACE = 5.0
# How long reading stops when a peer sends faster than its rate limit.
THROTTLE_PAUSE = 0.1
# The longest a peer is not read for sending more than it may: well under
# the peer timeout, since its PONGs wait too.
MAX_SLOWDOWN = 1.0
# Misbehaviour points (100 ban by default).  Sending too fast is none:
# the peer is only slowed down.
PROTOCOL_ERROR_POINTS = 60


class PeerConnection(LineFraming, LineSending, ProvesKey):
    """
    A connection to another node, in either direction.

    @ivar peer: the L{PeerInfo} of the remote node once the handshake is
        done, else L{None}.
    @ivar handshake: fires with the remote L{PeerInfo} of the node this
        connection reached, or fails with L{HandshakeFailed}.
    @ivar closing: whether the connection is closing or closed.
    @ivar closeReason: why it closes (a L{CloseReason}), once it does.
    """

    delimiter = b"\n"
    log = Logger()
    # A TCP transport, or one like it (in memory, in tests): a consumer
    # with getPeer, loseConnection and abortConnection.
    transport: Any
    # Made once connected, with the transport it writes to.
    outbox: Outbox
    bucket: TokenBucket

    # Defaults until a connection sets its own, and the owner's clock and
    # metrics: few attributes stay inline (past about twenty, CPython
    # gives a connection a whole dict, 0.8 KiB more).
    clock = property(lambda self: self.owner.clock)
    metrics = property(lambda self: self.owner.metrics)
    peer: Optional[PeerInfo] = None
    version = PROTOCOL_VERSION
    closeReason: Optional[CloseReason] = None
    lastHeard = lastUsed = 0.0  # lastUsed: a direct message either way
    lastUseful = 0.0  # when the peer last sent news first
    neighbourCount = UNSAID  # the peer's neighbours, as it last said
    link = None  # the PeerLink that dialed this connection, if any
    dialed: Optional[Tuple[str, int]] = None  # (host, port), if it dialed
    query = False  # for DHT requests only (p2poverlay.queries)
    _timer: Optional[IDelayedCall] = None
    _throttled: Optional[IDelayedCall] = None
    _closedWaiters: Tuple[Deferred[None], ...] = ()

    def __init__(self, owner: IPeerConnectionOwner, outbound: bool,
                 role: str = NEIGHBOUR) -> None:
        self.owner = owner
        self.outbound = outbound
        # NEIGHBOUR or DIRECT: the dialer's choice, learned from its HELLO.
        self.role = role
        self.MAX_LENGTH = owner.config.maxLineLength
        self.handshake: Deferred[PeerInfo] = Deferred()
        self._lifecycle: Lifecycle = _lifecycle(self)
        if not outbound:
            # Nobody waits on an inbound handshake; its failure is logged
            # where it happens.
            self.handshake.addErrback(lambda _: None)

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

    @property
    def info(self) -> PeerInfo:
        """
        The peer's L{PeerInfo}, on a connection through its handshake
        (those whose messages are dispatched).

        @raise HandshakeFailed: on one that is not.
        """
        if self.peer is None:
            raise HandshakeFailed(f"{self.remoteAddress} has not completed "
                                  f"its handshake")
        return self.peer

    def describe(self) -> str:
        if self.peer is not None:
            return self.peer.describe()
        return self.remoteAddress

    def whenClosed(self) -> "Deferred[None]":
        """A Deferred that fires once this connection has closed."""
        waiter: Deferred[None] = Deferred()
        self._closedWaiters += (waiter,)
        return waiter

    # -- the life cycle ---------------------------------------------------
    # Its inputs are L{Lifecycle}'s; the machine, built below the class,
    # runs the methods from _accept to _finish as its outputs.

    def established(self, info: PeerInfo) -> None:
        """The owner accepted the handshake and registered this connection."""
        self._lifecycle.established(info)

    def rejected(self, reason: CloseReason, peer: Optional[PeerInfo] = None,
                 error: type = HandshakeFailed) -> None:
        """
        The owner will not use this connection.  If it already has a
        connection to the same peer, C{peer} names it and the handshake
        succeeds with it: whoever waited for this dial reached that peer.
        Otherwise the handshake fails with C{error}.
        """
        self._lifecycle.rejected(reason, peer, error)

    def close(self, reason: CloseReason, tellPeer: bool = True) -> None:
        """
        Close this connection, telling the peer why in a BYE first (unless
        C{tellPeer} is false).  What is already written is flushed; a peer
        that does not read it within L{CLOSE_GRACE} seconds is cut off.
        """
        if tellPeer:
            self._lifecycle.closeTelling(reason)
        else:
            self._lifecycle.closeQuietly(reason)

    def abort(self, reason: CloseReason) -> None:
        """Drop this connection at once, unsent data and all."""
        self._lifecycle.abort(reason)

    def _accept(self, info: PeerInfo) -> None:
        self._cancelTimer()
        self.peer = info
        self.handshake.callback(info)

    def _beginClosing(self, reason: CloseReason) -> None:
        self.settleRead()  # What the lines read so far owe goes before BYE.
        self.closing = True
        self.closeReason = reason
        self._cancelTimer()

    def _closeDown(self, reason: CloseReason, bye: bool) -> None:
        """Flush what is written (then a BYE, with C{bye}) and close."""
        self._beginClosing(reason)
        self.outbox.flush()
        if bye:
            self._write([reason.bye().encode()], Bye.TYPE, force=True)
        # A registered producer would hold the connection open.
        self.transport.unregisterProducer()
        self.transport.loseConnection()
        self._timer = self.clock.callLater(
            CLOSE_GRACE, self.transport.abortConnection)

    def _settleHandshake(self, peer: Optional[PeerInfo],
                         error: type) -> None:
        if self.handshake.called:
            return
        if peer is not None:
            self.handshake.callback(peer)
        else:
            self.handshake.errback(error(str(self.closeReason)))

    def _finish(self) -> None:
        self.closing = True
        reason = self.closeReason or LOST_CONNECTION
        self.closeReason = reason
        self._cancelTimer()
        if self._throttled is not None and self._throttled.active():
            self._throttled.cancel()
        if not self.handshake.called:
            error = PeerFull if reason.isRefusal else HandshakeFailed
            self.handshake.errback(error(reason.text))
        self.owner.connectionLost(self, reason)
        waiters, self._closedWaiters = self._closedWaiters, ()
        for waiter in waiters:
            waiter.callback(None)

    def _cancelTimer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    # -- Twisted's protocol calls -------------------------------------------

    def connectionMade(self) -> None:
        self.lastHeard = self.lastUsed = self.clock.seconds()
        # Lines are small and often answered (ACK, PONG, replies): without
        # this, Nagle's algorithm and delayed ACKs hold a line back ~40 ms.
        setNoDelay = getattr(self.transport, "setTcpNoDelay", None)
        if setNoDelay is not None:
            setNoDelay(True)
        config = self.owner.config
        self.outbox = Outbox(self.transport, config.maxSendBuffer,
                             self.clock, self.delimiter)
        self.bucket = TokenBucket(config.messageRate, config.messageBurst,
                                  self.clock)
        if self.outbound and not self.overTLS:
            # The accepting side answers once it has read this HELLO.
            # (Over TLS it goes once the handshake is through: see
            # keyProven.)
            self._sayHello()
        self._timer = self.clock.callLater(config.handshakeTimeout,
                                           self._handshakeTimedOut)
        self.owner.connectionMade(self)

    def connectionLost(self, reason: Optional[Failure] = None) -> None:
        self._lifecycle.transportGone()

    def keyProven(self) -> None:
        if self.outbound:
            # In the same flight as TLS's last message: no round trip lost,
            # and what it proves may depend on the session.
            self._sayHello()

    def _sayHello(self) -> None:
        """The dialer's HELLO, and a query connection's request with it."""
        self.sendMessage(self.owner.helloFor(self))
        if self.query:
            self.sendMessage(self.factory.query)

    def _handshakeTimedOut(self) -> None:
        self._timer = None
        self.log.warn("closing connection with {peer}: {reason}",
                      peer=self.describe(), reason="handshake timeout")
        self.close(CloseReason(CloseKind.HANDSHAKE_TIMEOUT))

    def protocolError(self, reason: str) -> None:
        """The peer sent something invalid: log it, close, count it."""
        self.log.warn("closing connection with {peer}: {reason}",
                      peer=self.describe(), reason=reason)
        why = CloseReason(CloseKind.PROTOCOL_ERROR, reason)
        self.close(why)
        self.owner.misbehaved(self, PROTOCOL_ERROR_POINTS, why.text)

    def _throttle(self) -> None:
        """
        The peer is over its message rate: stop reading for a moment.  TCP
        slows the sender down and nothing is lost; it is no misbehaviour
        (a busy relay, or a person typing fast).
        """
        self.slowDown(THROTTLE_PAUSE)

    def slowDown(self, seconds: float) -> None:
        """
        Stop reading from the peer for C{seconds} (at most
        L{MAX_SLOWDOWN}): it sends more than this node takes (ids or
        addresses past their budget), and TCP makes it wait.
        """
        if self._throttled is not None or self.closing:
            return
        self.pauseProducing()
        self._throttled = self.clock.callLater(min(seconds, MAX_SLOWDOWN),
                                               self._unthrottle)

    def _unthrottle(self) -> None:
        self._throttled = None
        if not self.closing:
            self.resumeProducing()

    # -- receiving ------------------------------------------------------

    def lineLengthExceeded(self, line: bytes) -> None:
        self.clearLineBuffer()
        if self.closing:
            return
        # This link only: an honest relay may pass on what it was given.
        why = CloseReason(CloseKind.TOO_LONG, f"{self.MAX_LENGTH} bytes")
        self.log.warn("closing connection with {peer}: {reason}",
                      peer=self.describe(), reason=why.text)
        self.close(why)

    def lineReceived(self, line: bytes) -> None:
        if self.closing:
            return
        self.lastHeard = self.clock.seconds()
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
        if isinstance(message, Bye):
            # Before HELLO too: a node with no room (or stopping) says BYE
            # at once, and that is no protocol error.
            self.close(CloseReason.fromBye(message), tellPeer=False)
        elif self.peer is None and not self.handshake.called:
            if not isinstance(message, Hello):
                self.protocolError(f"expected HELLO, got {message.TYPE}")
                return
            if message.version < self.version:
                self.version = message.version
            self.owner.helloReceived(self, message)
        elif isinstance(message, Hello):
            self.protocolError("HELLO sent twice")
        else:
            self.owner.messageReceived(self, message)


class Lifecycle(Protocol):
    """
    The inputs of a L{PeerConnection}'s life cycle, as its methods of the
    same names say.  Its states: C{handshaking} (connected, the HELLO
    handshake not done), C{ready} (the owner accepted the handshake: the
    connection carries messages), C{closingDown} (BYE said or not,
    flushing what is written) and C{closed} (the transport is gone).  An
    input that comes while another runs waits for it to end.
    """

    def established(self, info: PeerInfo) -> None: ...
    def rejected(self, reason: CloseReason, peer: Optional[PeerInfo],
                 error: type) -> None: ...
    def closeTelling(self, reason: CloseReason) -> None: ...
    def closeQuietly(self, reason: CloseReason) -> None: ...
    def abort(self, reason: CloseReason) -> None: ...
    def transportGone(self) -> None: ...


def _buildLifecycle():
    builder = TypeMachineBuilder(Lifecycle, PeerConnection)
    handshaking = builder.state("handshaking")
    ready = builder.state("ready")
    closingDown = builder.state("closingDown")
    closed = builder.state("closed")

    @handshaking.upon(Lifecycle.established).to(ready)
    def established(inputs: Lifecycle, connection: PeerConnection,
                    info: PeerInfo) -> None:
        connection._accept(info)

    def rejected(inputs: Lifecycle, connection: PeerConnection,
                 reason: CloseReason, peer: Optional[PeerInfo],
                 error: type) -> None:
        connection._closeDown(reason, bye=True)
        connection._settleHandshake(peer, error)

    def closeTelling(inputs: Lifecycle, connection: PeerConnection,
                     reason: CloseReason) -> None:
        connection._closeDown(reason, bye=True)

    def closeQuietly(inputs: Lifecycle, connection: PeerConnection,
                     reason: CloseReason) -> None:
        connection._closeDown(reason, bye=False)

    def abort(inputs: Lifecycle, connection: PeerConnection,
              reason: CloseReason) -> None:
        connection._beginClosing(reason)
        connection.transport.abortConnection()

    def finish(inputs: Lifecycle, connection: PeerConnection) -> None:
        connection._finish()

    for state in (handshaking, ready):
        state.upon(Lifecycle.rejected).to(closingDown)(rejected)
        state.upon(Lifecycle.closeTelling).to(closingDown)(closeTelling)
        state.upon(Lifecycle.closeQuietly).to(closingDown)(closeQuietly)
        state.upon(Lifecycle.abort).to(closingDown)(abort)
        state.upon(Lifecycle.transportGone).to(closed)(finish)

    # Closing already: the first reason stands.
    @closingDown.upon(Lifecycle.rejected).loop()
    def settle(inputs: Lifecycle, connection: PeerConnection,
               reason: CloseReason, peer: Optional[PeerInfo],
               error: type) -> None:
        connection._settleHandshake(peer, error)

    closingDown.upon(Lifecycle.transportGone).to(closed)(finish)
    for state in (closingDown, closed):
        for kind in (Lifecycle.closeTelling, Lifecycle.closeQuietly,
                     Lifecycle.abort):
            state.upon(kind).loop().returns(None)
    closed.upon(Lifecycle.rejected).loop().returns(None)
    return builder.build()


_lifecycle = _buildLifecycle()
