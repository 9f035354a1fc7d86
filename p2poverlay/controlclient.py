"""
The client's side of the control protocol: finding a node's control
endpoint (and for TCP its cookie), connecting to it, and matching the
node's replies to requests.  C{p2p-console} (L{p2poverlay.client}) is
built on it.
"""

from __future__ import annotations

import argparse
import errno
from typing import Any, Callable, Dict, List, Optional

from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.endpoints import (
    UNIXClientEndpoint, clientFromString, connectProtocol,
)
from twisted.internet.error import (
    ConnectionRefusedError, TimeoutError as ConnectTimeout,
)
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from p2poverlay.controlwire import (
    CLOSING, EVENT, HELLO, REPLY, authMessage, decode, defaultControlPath,
    encode, requestMessage,
)
from p2poverlay.cookie import CookieError, defaultCookiePath, readCookie

__all__ = ["CONNECT_TIMEOUT", "DEFAULT_PORT", "ClientError",
           "ControlClientProtocol", "connect", "connectionProblem",
           "controlCookie", "controlEndpoint"]

CONNECT_TIMEOUT = 5.0
DEFAULT_PORT = 9000


class ClientError(Exception):
    """Ends the client with a one-line message and exit status 1."""


class ControlClientProtocol(LineReceiver):
    """
    The client side of the control protocol: sends requests, matches
    replies to them by id, and hands every event to C{onEvent} (and a
    reply to no request of its own to C{onStrayReply}).

    @ivar where: how the user named the node's endpoint, once known.
    @ivar refused: why the node hung up before its C{hello}, if it did.
    """

    # Its transport: a stream (UNIX, TCP or standard I/O) once connected.
    transport: Any

    delimiter = b"\n"
    MAX_LENGTH = 1 << 24

    def __init__(self) -> None:
        self.hello: Deferred[dict] = Deferred()
        self.closed: Deferred[None] = Deferred()
        self.onEvent: Callable[[dict], None] = lambda message: None
        self.onStrayReply: Callable[[dict], None] = lambda message: None
        self.problem: Optional[str] = None
        self.refused: Optional[str] = None
        self.where: Optional[str] = None
        self.stopping = False
        self._pending: Dict[int, Deferred] = {}
        self._nextId = 0

    def authenticate(self, cookie: str) -> None:
        """Present the node's C{cookie}: the first line to a TCP endpoint."""
        self.transport.write(encode(authMessage(cookie)))

    def request(self, command: str, wantJSON: bool = False) -> "Deferred[dict]":
        """Send C{command}; the Deferred fires with the node's reply."""
        self._nextId += 1
        d: Deferred[dict] = Deferred()
        self._pending[self._nextId] = d
        self.transport.write(encode(
            requestMessage(self._nextId, command, wantJSON)))
        return d

    def pending(self) -> List[Deferred]:
        return list(self._pending.values())

    @property
    def unanswered(self) -> int:
        """How many requests wait for their reply."""
        return len(self._pending)

    def lineReceived(self, line: bytes) -> None:
        try:
            message = decode(line)
        except ValueError:
            self._broken("the answer is not the control protocol")
            return
        kind = message["type"]
        if kind == HELLO:
            if not self.hello.called:
                self.hello.callback(message)
        elif kind == REPLY:
            requestId = message.get("id")
            d = self._pending.pop(requestId, None) \
                if isinstance(requestId, int) else None
            if d is not None:
                d.callback(message)
            else:
                self.onStrayReply(message)
        elif kind == EVENT:
            if message.get("event") == CLOSING:
                self.stopping = True
                if not self.hello.called:
                    self.refused = str(message.get("line") or "refused")
            self.onEvent(message)

    def lineLengthExceeded(self, line: bytes) -> None:
        self._broken("an answer was too long")

    def _broken(self, why: str) -> None:
        if self.problem is None:
            self.problem = why
        self.transport.loseConnection()

    def connectionLost(self, reason: Optional[Failure] = None) -> None:
        why = self.problem or self.refused or "the node closed the connection"
        pending, self._pending = self._pending, {}
        for d in pending.values():
            d.errback(ClientError(why))
        if not self.hello.called:
            self.hello.errback(ClientError(why))
        self.closed.callback(None)


# -- where the node is ----------------------------------------------------------

def controlEndpoint(reactor, options: argparse.Namespace):
    """The client endpoint to the node, and how to name it to the user."""
    if options.control is not None:
        try:
            return clientFromString(reactor, options.control), options.control
        except (ValueError, KeyError, TypeError) as e:
            raise ClientError(
                f"--control {options.control!r}: not a client endpoint ({e})") from None
    if options.data_dir is not None:
        directory = options.data_dir
    else:
        port = DEFAULT_PORT if options.port is None else options.port
        directory = f"p2p-{port}"
    path = defaultControlPath(directory)
    return UNIXClientEndpoint(reactor, path, timeout=CONNECT_TIMEOUT), path


def controlCookie(options: argparse.Namespace, endpoint) -> Optional[str]:
    """
    The cookie to present to C{endpoint}: none for a UNIX socket, else
    read from C{--cookie-file} or C{--data-dir}.

    @raise ClientError: if it cannot be read, in one line.
    """
    if options.control is None or isinstance(endpoint, UNIXClientEndpoint):
        if options.cookie_file is not None:
            raise ClientError("--cookie-file: only a TCP --control endpoint "
                              "asks for a cookie")
        return None
    path = options.cookie_file
    if path is None and options.data_dir is not None:
        path = defaultCookiePath(options.data_dir)
    if path is None:
        raise ClientError(
            f"--control {options.control}: a TCP control endpoint asks for "
            f"the node's cookie: give --data-dir D (for D/control.cookie) "
            f"or --cookie-file PATH")
    try:
        return readCookie(path)
    except CookieError as e:
        raise ClientError(f"no cookie for {options.control}: {e}") from None


def connectionProblem(reason: Failure) -> str:
    """Why a connection could not be made, in a few words."""
    if reason.check(ConnectionRefusedError):
        return "connection refused"
    if reason.check(ConnectTimeout):
        return "timed out"
    code = getattr(reason.value, "osError", None)
    if code == errno.ENOENT:
        return "no such socket"
    if code == errno.EACCES:
        return "permission denied"
    text = reason.getErrorMessage().strip().rstrip(".")
    return text.splitlines()[0] if text else reason.type.__name__


async def connect(reactor, options) -> ControlClientProtocol:
    endpoint, where = controlEndpoint(reactor, options)
    cookie = controlCookie(options, endpoint)
    protocol = ControlClientProtocol()
    protocol.where = where
    try:
        await connectProtocol(endpoint, protocol)
    except Exception:
        raise ClientError(
            f"no node answers at {where} ({connectionProblem(Failure())})") from None
    if cookie is not None:
        protocol.authenticate(cookie)
    try:
        await protocol.hello.addTimeout(options.timeout, reactor)
    except TimeoutError:
        protocol.transport.abortConnection()
        raise ClientError(f"no answer from {where}: is it a node's control "
                          f"endpoint?") from None
    except ClientError as e:
        if protocol.refused is not None:
            raise ClientError(f"the node at {where} refused the connection "
                              f"({protocol.refused})") from None
        raise ClientError(f"no node answers at {where} ({e})") from None
    return protocol
