"""
The control endpoint: the console of a node that runs in the background.

A client connects (by default to the UNIX socket C{control.sock} in the
node's data directory, readable and writable by its owner only), sends
commands as JSON lines and reads the answers, and meanwhile sees what
happens at the node, as the console shows it.  A TCP endpoint asks for the
node's cookie (L{p2poverlay.cookie}) before anything else, and every
endpoint hangs up on what looks like HTTP.  The protocol is described in
C{docs/control.rst}.
"""

from __future__ import annotations

import hmac
from typing import Any, Callable, Optional, Set

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IDelayedCall, IListeningPort
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from p2poverlay.commands import CommandInterpreter, Reply
from p2poverlay.console import stopReactor
from p2poverlay.addresses import formatAddress, isLoopback
from p2poverlay.controllisten import (
    SOCKET_MODE, listenControl, listenUNIXPrivately, needsCookie,
    removeStaleSocket,
)
from p2poverlay.controlwire import (
    HTTP_REFUSAL, BadRequest, RequestId, closingMessage, defaultControlPath,
    encode, eventMessage, helloMessage, looksLikeHTTP, parseAuth,
    parseObject, parseRequest, replyMessage, unixDescription,
)
from p2poverlay.cookie import (
    CookieError, defaultCookiePath, removeCookie, writeCookie,
)
from p2poverlay.errors import ListenError
from p2poverlay.node import Node
from p2poverlay.pacing import InputPacer
from p2poverlay.views import describeNode
from p2poverlay.watch import NodeEvent, NodeWatcher
from p2poverlay.whereabouts import Whereabouts

# The paths and endpoint descriptions of the control socket are the wire
# and listening modules'; they are part of this module's API too.
__all__ = [
    "AUTH_TIMEOUT", "SOCKET_MODE", "ControlFactory", "ControlProtocol",
    "ControlService", "defaultControlPath", "listenControl",
    "listenUNIXPrivately", "removeStaleSocket", "unixDescription",
]

# How long a TCP client has to present the cookie.
AUTH_TIMEOUT = 10.0


def replyTo(requestId: RequestId, reply: Reply, wantJSON: bool) -> dict:
    """The control protocol's reply to request C{requestId}."""
    return replyMessage(requestId, reply.lines, reply.result, reply.error,
                        wantJSON)


class ControlProtocol(LineReceiver):
    """
    One control client: answers its requests, in whatever order they
    finish, and sends it every event of the node.

    A client that does not read what it is sent misses events (it is told
    how many) and is not read from until it catches up, so it never makes
    the node hold an unbounded amount of output.
    """

    # Its transport: a stream (UNIX, TCP or standard I/O) once connected.
    transport: Any

    delimiter = b"\n"
    MAX_LENGTH = 1 << 20

    log = Logger()

    def __init__(self, node: Node, stop: Callable[[], None],
                 whereabouts: Optional[Whereabouts] = None,
                 cookie: Optional[str] = None, clock=None) -> None:
        """
        @param cookie: the secret the client must present first; C{None}
            for none (a UNIX socket).
        @param clock: what times out a client that does not present it.
        """
        self.node = node
        self.whereabouts = whereabouts
        self.cookie = cookie
        self.clock = clock
        self.interpreter = CommandInterpreter(node, stop)
        self.watcher = NodeWatcher(node, self.sendEvent)
        self.closing = False
        self.firstLine = True
        self.authTimeout: Optional[IDelayedCall] = None
        self.writesPaused = False
        self.pacer = InputPacer(node, self._stopReading, self._readOn)
        self.droppedEvents = 0

    def send(self, message: dict) -> None:
        if not self.closing:
            self.transport.write(encode(message))

    # -- life -------------------------------------------------------------

    @property
    def authenticated(self) -> bool:
        """Whether the client may run commands (and is sent events)."""
        return self.cookie is None

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)
        if self.authenticated:
            self._greet()
        elif self.clock is not None:
            self.authTimeout = self.clock.callLater(
                AUTH_TIMEOUT, self.refuse,
                f"no cookie within {AUTH_TIMEOUT:g} s")

    def _greet(self) -> None:
        self.watcher.start()
        node, about = self.node, self.whereabouts
        self.send(helloMessage(
            node.nodeId, node.name, node.listenPort, describeNode(node),
            log=about.log if about else None,
            web=about.webText() if about and about.web is not None else None))

    def connectionLost(self, reason: Optional[Failure] = None) -> None:
        self.closing = True
        self._cancelTimeout()
        self.watcher.stop()
        factory = getattr(self, "factory", None)
        if factory is not None:
            factory.clients.discard(self)

    def close(self, why: str) -> None:
        """Say C{why} to the client, then hang up once it is all sent."""
        if not self.closing:
            self.send(closingMessage(why))
            self.closing = True
            self.transport.loseConnection()

    def refuse(self, why: str, answer: Optional[bytes] = None) -> None:
        """
        Hang up on a client before it runs anything, with one line saying
        C{why} (or the bytes C{answer}), and ignore what it sent after.
        """
        if self.closing:
            return
        self.log.info("control client refused: {why}", why=why)
        self._cancelTimeout()
        self.transport.write(answer if answer is not None
                             else encode(closingMessage(why)))
        self.closing = True
        self.clearLineBuffer()
        self.transport.loseConnection()

    def _cancelTimeout(self) -> None:
        if self.authTimeout is not None and self.authTimeout.active():
            self.authTimeout.cancel()
        self.authTimeout = None

    # -- flow control -------------------------------------------------------

    # Requests are not read while the client reads its answers too slowly,
    # nor while the node's backlog of direct messages is high.

    def pauseProducing(self) -> None:
        self.writesPaused = True
        self._stopReading()

    def resumeProducing(self) -> None:
        self.writesPaused = False
        if self.droppedEvents:
            dropped, self.droppedEvents = self.droppedEvents, 0
            self.sendEvent(NodeEvent(
                "dropped", f"! {dropped} events not shown: the client read "
                           "too slowly", {"count": dropped}))
        self._readOn()

    def _stopReading(self) -> None:
        if not self.paused:
            LineReceiver.pauseProducing(self)

    def _readOn(self) -> None:
        if self.paused and not (self.writesPaused or self.pacer.holding) \
                and not self.closing:
            LineReceiver.resumeProducing(self)

    # -- events ---------------------------------------------------------------

    def sendEvent(self, event: NodeEvent) -> None:
        if self.writesPaused:
            self.droppedEvents += 1
            return
        self.send(eventMessage(event.kind, event.line, event.data))

    # -- requests -------------------------------------------------------------

    def lineReceived(self, line: bytes) -> None:
        if self.closing:
            return
        if not line.strip():
            return
        if self.firstLine:
            self.firstLine = False
            if not self._firstLine(line):
                return
        try:
            requestId, command, wantJSON = parseRequest(line)
        except BadRequest as e:
            self.log.info("bad control request: {why}", why=str(e))
            self.send(replyTo(None, Reply.failed(f"bad request: {e}"), False))
            return
        d = self.interpreter.execute(command)
        if d is None:
            d = succeed(Reply([], None, "empty command"))
        d.addCallback(
            lambda reply: self.send(replyTo(requestId, reply, wantJSON)))
        self.pacer.check()

    def _firstLine(self, line: bytes) -> bool:
        """
        Check the client's first line: refuse HTTP, what is not a JSON
        object and, where one is asked, a wrong cookie.

        @return: whether the line is a request to handle.
        """
        if looksLikeHTTP(line):
            self.refuse("an HTTP request", HTTP_REFUSAL)
            return False
        if self.authenticated:
            try:
                parseObject(line)
            except BadRequest:
                self.refuse("the first line must be a JSON object")
                return False
            return True
        try:
            cookie = parseAuth(line)
        except BadRequest as e:
            self.refuse(f"authentication required: {e}")
            return False
        assert self.cookie is not None
        if not hmac.compare_digest(cookie.encode("utf-8", "replace"),
                                   self.cookie.encode("ascii")):
            self.refuse("wrong cookie")
            return False
        self._cancelTimeout()
        self.cookie = None
        self._greet()
        return False

    def lineLengthExceeded(self, line: bytes) -> None:
        if self.firstLine:
            self.refuse(f"the first line is longer than {self.MAX_LENGTH} "
                        f"bytes")
            return
        self.clearLineBuffer()
        self.send(replyTo(None, Reply.failed(
            f"bad request: line longer than {self.MAX_LENGTH} bytes"), False))


class ControlFactory(ServerFactory):
    """Makes a L{ControlProtocol} per client and keeps track of them."""

    noisy = False

    def __init__(self, node: Node, stop: Callable[[], None],
                 whereabouts: Optional[Whereabouts] = None,
                 cookie: Optional[str] = None, clock=None) -> None:
        """
        @param cookie: the secret each client must present first, if any.
        @param clock: what times out a client that does not present it.
        """
        self.node = node
        self.stop = stop
        self.whereabouts = whereabouts
        self.cookie = cookie
        self.clock = clock
        self.clients: Set[ControlProtocol] = set()

    def buildProtocol(self, addr) -> ControlProtocol:
        protocol = ControlProtocol(self.node, self.stop, self.whereabouts,
                                   self.cookie, self.clock)
        protocol.factory = self
        self.clients.add(protocol)
        return protocol


class ControlService(Service):
    """
    Listens for control clients of C{node} on the server endpoint
    C{description}, from before the reactor runs.

    @param stop: what the C{exit} command calls; stops the reactor by
        default.
    @param optional: if true, an endpoint that cannot listen is a warning
        and the node runs without it (for the default socket, whose path
        may be too long for a UNIX socket); if false, it stops the program.
    @param cookieFile: where an endpoint that is not a UNIX socket keeps
        the cookie its clients present; by default C{control.cookie} in
        the data directory of C{whereabouts}.  Written at start, removed
        at stop.
    """

    log = Logger()

    def __init__(self, node: Node, description: str, reactor=None,
                 stop: Optional[Callable[[], None]] = None,
                 optional: bool = False,
                 whereabouts: Optional[Whereabouts] = None,
                 cookieFile: Optional[str] = None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        if stop is None:
            def stop() -> None:
                stopReactor(self.reactor)
        self.node = node
        self.description = description
        self.reactor = reactor
        self.factory = ControlFactory(node, stop, whereabouts, clock=reactor)
        self.optional = optional
        self.port: Optional[IListeningPort] = None
        self.failed = False
        self.exposed: Optional[str] = None
        self.cookieFile: Optional[str] = None
        self.needsCookie = needsCookie(description, reactor)
        if self.needsCookie:
            if cookieFile is None and whereabouts is not None \
                    and whereabouts.dataDir:
                cookieFile = defaultCookiePath(whereabouts.dataDir)
            self.cookieFile = cookieFile

    def privilegedStartService(self) -> None:
        """
        Listen before the reactor runs, so that a bad endpoint stops the
        program at start-up.

        @raise ListenError: if it cannot listen.
        """
        Service.privilegedStartService(self)
        self._listen()

    def startService(self) -> None:
        Service.startService(self)
        self._listen()
        if self.exposed is not None:
            # Here rather than when listening: the console, if any, has
            # started by now and shows it.
            self.log.warn(
                "the control endpoint on {address} is reachable beyond this "
                "machine: anyone there who has its cookie can stop the node "
                "or send as it; listen on 127.0.0.1", address=self.exposed)

    def _writeCookie(self) -> None:
        if not self.needsCookie:
            return
        if self.cookieFile is None:
            raise ListenError(
                f"cannot listen on {self.description}: a TCP control "
                f"endpoint needs a data directory for its cookie")
        try:
            self.factory.cookie = writeCookie(self.cookieFile)
        except CookieError as e:
            raise ListenError(f"cannot listen on {self.description}: "
                              f"{e}") from None

    def _listen(self) -> None:
        if self.port is not None or self.failed:
            return
        try:
            self._writeCookie()
            try:
                self.port = listenControl(self.reactor, self.description,
                                          self.factory)
            except ListenError:
                self._removeCookie()
                raise
        except ListenError as e:
            if not self.optional:
                raise
            self.failed = True
            self.log.warn("no control endpoint ({why}); give one with "
                          "--control", why=str(e))
            return
        self.log.info("control endpoint listening on {where}",
                      where=self.description)
        address = self.port.getHost()
        host = getattr(address, "host", None)
        if host is not None and not isLoopback(host):
            self.exposed = formatAddress(host, getattr(address, "port", 0))

    def _removeCookie(self) -> None:
        if self.factory.cookie is not None and self.cookieFile is not None:
            removeCookie(self.cookieFile)
        self.factory.cookie = None

    def stopService(self) -> "Deferred[None]":
        Service.stopService(self)
        for client in list(self.factory.clients):
            client.close("node stopping")
        waits = []
        if self.port is not None:
            waits.append(self.port.stopListening())
            self.port = None
        self._removeCookie()
        return DeferredList([d for d in waits if d is not None]).addCallback(
            lambda _: None)
