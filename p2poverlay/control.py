"""
The control endpoint: the console of a node that runs in the background.

A client connects (by default to the UNIX socket C{control.sock} in the
node's data directory, readable and writable by its owner only), sends
commands as JSON lines and reads the answers, and meanwhile sees what
happens at the node, as the console shows it.  The protocol is described
in C{docs/control.rst}.
"""

from __future__ import annotations

import os
import socket
import stat
from typing import Any, Callable, Optional, Set

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.endpoints import UNIXServerEndpoint, serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from p2poverlay.commands import CommandInterpreter, Reply
from p2poverlay.console import stopReactor
from p2poverlay.controlwire import (
    BadRequest, RequestId, closingMessage, defaultControlPath, encode,
    eventMessage, helloMessage, parseRequest, replyMessage, unixDescription,
)
from p2poverlay.errors import ListenError
from p2poverlay.listening import listenError
from p2poverlay.node import Node
from p2poverlay.views import describeNode
from p2poverlay.watch import NodeEvent, NodeWatcher
from p2poverlay.whereabouts import Whereabouts

# The paths and endpoint descriptions of the control socket are the wire
# module's; they are part of this module's API too.
__all__ = [
    "ControlFactory", "ControlProtocol", "ControlService",
    "defaultControlPath", "listenControl", "listenUNIXPrivately",
    "removeStaleSocket", "unixDescription",
]

SOCKET_MODE = 0o600


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
                 whereabouts: Optional[Whereabouts] = None) -> None:
        self.node = node
        self.whereabouts = whereabouts
        self.interpreter = CommandInterpreter(node, stop)
        self.watcher = NodeWatcher(node, self.sendEvent)
        self.closing = False
        self.writesPaused = False
        self.droppedEvents = 0

    def send(self, message: dict) -> None:
        if not self.closing:
            self.transport.write(encode(message))

    # -- life -------------------------------------------------------------

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)
        self.watcher.start()
        node, about = self.node, self.whereabouts
        self.send(helloMessage(
            node.nodeId, node.name, node.listenPort, describeNode(node),
            log=about.log if about else None,
            web=about.webText() if about and about.web is not None else None))

    def connectionLost(self, reason: Optional[Failure] = None) -> None:
        self.closing = True
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

    # -- flow control -------------------------------------------------------

    def pauseProducing(self) -> None:
        # The client reads too slowly: stop reading its requests too.
        self.writesPaused = True
        super().pauseProducing()

    def resumeProducing(self) -> None:
        self.writesPaused = False
        if self.droppedEvents:
            dropped, self.droppedEvents = self.droppedEvents, 0
            self.sendEvent(NodeEvent(
                "dropped", f"! {dropped} events not shown: the client read "
                           "too slowly", {"count": dropped}))
        super().resumeProducing()

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

    def lineLengthExceeded(self, line: bytes) -> None:
        self.clearLineBuffer()
        self.send(replyTo(None, Reply.failed(
            f"bad request: line longer than {self.MAX_LENGTH} bytes"), False))


class ControlFactory(ServerFactory):
    """Makes a L{ControlProtocol} per client and keeps track of them."""

    noisy = False

    def __init__(self, node: Node, stop: Callable[[], None],
                 whereabouts: Optional[Whereabouts] = None) -> None:
        self.node = node
        self.stop = stop
        self.whereabouts = whereabouts
        self.clients: Set[ControlProtocol] = set()

    def buildProtocol(self, addr) -> ControlProtocol:
        protocol = ControlProtocol(self.node, self.stop, self.whereabouts)
        protocol.factory = self
        self.clients.add(protocol)
        return protocol


def removeStaleSocket(path: str) -> None:
    """
    Remove a UNIX socket file at C{path} that nothing listens on any more
    (left by a process that crashed).

    @raise ListenError: if a process listens there, or C{path} is not a
        socket.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise ListenError(f"cannot listen on {path}: {e.strerror}") from None
    if not stat.S_ISSOCK(mode):
        raise ListenError(
            f"cannot listen on {path}: the file exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        pass  # Stale: nobody listens.
    except OSError as e:
        raise ListenError(f"cannot listen on {path}: {e.strerror or e}") from None
    else:
        raise ListenError(f"cannot listen on {path}: another process "
                          f"listens there")
    finally:
        probe.close()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def listenUNIXPrivately(reactor, path: str, factory,
                        backlog: int = 50) -> IListeningPort:
    """
    Listen on the UNIX socket C{path}, usable by this user only: the file
    is created with mode 0600 (no moment where it is more open), replacing
    a stale socket file.

    @raise ListenError: if it cannot.
    """
    removeStaleSocket(path)
    # listenUNIX binds, then chmods: bind under a umask that already
    # leaves only the owner's read and write bits.
    oldMask = os.umask(0o177)
    try:
        port = reactor.listenUNIX(path, factory, backlog=backlog,
                                  mode=SOCKET_MODE, wantPID=False)
    except CannotListenError as e:
        why = getattr(e.socketError, "strerror", None) or str(e.socketError)
        raise ListenError(f"cannot listen on {path}: {why}") from None
    finally:
        os.umask(oldMask)
    actual = stat.S_IMODE(os.stat(path).st_mode)
    if actual != SOCKET_MODE:
        port.stopListening()
        raise ListenError(f"cannot listen on {path}: its mode is "
                          f"{actual:04o}, not {SOCKET_MODE:04o}")
    return port


def listenControl(reactor, description: str, factory) -> IListeningPort:
    """
    Listen on the server endpoint C{description}; a UNIX socket is made
    private (L{listenUNIXPrivately}).

    @raise ListenError: if it cannot, in one line.
    """
    try:
        endpoint = serverFromString(reactor, description)
    except (ValueError, KeyError, TypeError) as e:
        raise ListenError(f"bad control endpoint {description!r}: {e}") from None
    if isinstance(endpoint, UNIXServerEndpoint):
        return listenUNIXPrivately(reactor, endpoint._address, factory,
                                   backlog=endpoint._backlog)
    outcome: list = []
    endpoint.listen(factory).addBoth(outcome.append)
    if not outcome:
        raise ListenError(f"cannot listen on {description}: the endpoint "
                          f"does not listen at once")
    if isinstance(outcome[0], Failure):
        raise listenError(description, outcome[0])
    return outcome[0]


class ControlService(Service):
    """
    Listens for control clients of C{node} on the server endpoint
    C{description}, from before the reactor runs.

    @param stop: what the C{exit} command calls; stops the reactor by
        default.
    @param optional: if true, an endpoint that cannot listen is a warning
        and the node runs without it (for the default socket, whose path
        may be too long for a UNIX socket); if false, it stops the program.
    """

    log = Logger()

    def __init__(self, node: Node, description: str, reactor=None,
                 stop: Optional[Callable[[], None]] = None,
                 optional: bool = False,
                 whereabouts: Optional[Whereabouts] = None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        if stop is None:
            def stop() -> None:
                stopReactor(self.reactor)
        self.node = node
        self.description = description
        self.reactor = reactor
        self.factory = ControlFactory(node, stop, whereabouts)
        self.optional = optional
        self.port: Optional[IListeningPort] = None
        self.failed = False

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

    def _listen(self) -> None:
        if self.port is not None or self.failed:
            return
        try:
            self.port = listenControl(self.reactor, self.description,
                                      self.factory)
        except ListenError as e:
            if not self.optional:
                raise
            self.failed = True
            self.log.warn("no control endpoint ({why}); give one with "
                          "--control", why=str(e))
            return
        self.log.info("control endpoint listening on {where}",
                      where=self.description)

    def stopService(self) -> "Deferred[None]":
        Service.stopService(self)
        for client in list(self.factory.clients):
            client.close("node stopping")
        waits = []
        if self.port is not None:
            waits.append(self.port.stopListening())
            self.port = None
        return DeferredList([d for d in waits if d is not None]).addCallback(
            lambda _: None)
