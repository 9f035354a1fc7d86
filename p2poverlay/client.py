"""
C{p2p-console}: talk to a node running in the background through its
control endpoint.

With a command it runs it once, prints the answer and exits (0 if the
command succeeded, 1 if not); without one it attaches: it reads commands
from standard input and prints their answers and what happens at the node
until end of input or C{detach}.  C{--json} prints structured results for
scripts.  See C{docs/control.rst} for the protocol it speaks.
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
from typing import Any, Callable, Dict, List, Optional

from twisted.internet import stdio
from twisted.internet.defer import (
    Deferred, DeferredList, TimeoutError, ensureDeferred,
)
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.endpoints import (
    UNIXClientEndpoint, clientFromString, connectProtocol,
)
from twisted.internet.error import (
    ConnectionRefusedError, TimeoutError as ConnectTimeout,
)
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from p2poverlay.commandtable import (
    ATTACHED_COMMANDS, DETACH, HELP, NODE_COMMANDS, formatHelp,
)
from p2poverlay.controlwire import (
    CLOSING, CONTROL_SOCKET, EVENT, HELLO, REPLY, decode, defaultControlPath,
    encode, replyMessage, requestMessage,
)
from p2poverlay.text import escape

PROG = "p2p-console"
CONNECT_TIMEOUT = 5.0
DEFAULT_TIMEOUT = 60.0
DEFAULT_PORT = 9000
# At a node's own console 'quit' is 'exit'; here it could as well mean
# 'detach', so it is refused rather than stopping a node by mistake.
QUIT = "quit"
QUIT_HINT = ("quit: type 'detach' (or Ctrl-D) to leave this console, "
             "'exit' to stop the node")
DETACH_HINT = ("detach: only an attached console detaches; run p2p-console "
               "without a command to attach")


class ClientError(Exception):
    """Ends the client with a one-line message and exit status 1."""


class ControlClientProtocol(LineReceiver):
    """
    The client side of the control protocol: sends requests, matches
    replies to them by id, and hands every event to C{onEvent} (and a
    reply to no request of its own to C{onStrayReply}).
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
        self.stopping = False
        self._pending: Dict[int, Deferred] = {}
        self._nextId = 0

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
            self.onEvent(message)

    def lineLengthExceeded(self, line: bytes) -> None:
        self._broken("an answer was too long")

    def _broken(self, why: str) -> None:
        if self.problem is None:
            self.problem = why
        self.transport.loseConnection()

    def connectionLost(self, reason: Optional[Failure] = None) -> None:
        why = self.problem or "the node closed the connection"
        pending, self._pending = self._pending, {}
        for d in pending.values():
            d.errback(ClientError(why))
        if not self.hello.called:
            self.hello.errback(ClientError(why))
        self.closed.callback(None)


# -- where the node is ----------------------------------------------------------

def helpEpilog() -> str:
    """What C{p2p-console --help} says of the commands, after the options."""
    return (formatHelp(ATTACHED_COMMANDS)
            + f"\n\n'{DETACH.name}' is for an attached console only.")


def parseArguments(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Send commands to a p2poverlay node running in the "
                    "background, or attach to it.",
        epilog=helpEpilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--data-dir", metavar="D",
        help=f"the node's data directory; talk to D/{CONTROL_SOCKET}")
    where.add_argument(
        "--port", "-p", metavar="N", type=int,
        help=f"the node listening on port N, with its default data directory "
             f"p2p-N (default: {DEFAULT_PORT})")
    where.add_argument(
        "--control", metavar="ENDPOINT",
        help="a Twisted client endpoint, e.g. unix:/path/ctl.sock or "
             "tcp:127.0.0.1:7001")
    parser.add_argument(
        "--json", action="store_true",
        help="print results as JSON (one object a line)")
    parser.add_argument(
        "--timeout", metavar="SECONDS", type=float, default=DEFAULT_TIMEOUT,
        help=f"how long to wait for an answer [{DEFAULT_TIMEOUT:g}]")
    parser.add_argument(
        "command", nargs=argparse.REMAINDER,
        help=f"a command to run once "
             f"({', '.join(spec.name for spec in NODE_COMMANDS)}); "
             f"without one, attach")
    options = parser.parse_args(argv)
    if not options.timeout > 0:
        parser.error("--timeout must be more than 0")
    return options


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
    protocol = ControlClientProtocol()
    try:
        await connectProtocol(endpoint, protocol)
    except Exception:
        raise ClientError(
            f"no node answers at {where} ({connectionProblem(Failure())})") from None
    try:
        await protocol.hello.addTimeout(options.timeout, reactor)
    except TimeoutError:
        protocol.transport.abortConnection()
        raise ClientError(f"no answer from {where}: is it a node's control "
                          f"endpoint?") from None
    except ClientError as e:
        raise ClientError(f"no node answers at {where} ({e})") from None
    return protocol


# -- printing -------------------------------------------------------------------

def replyText(message: dict) -> List[str]:
    return [escape(str(line)) for line in message.get("lines") or []]


def replyJSON(message: dict) -> str:
    if message.get("ok"):
        return json.dumps(message.get("result"))
    return json.dumps({"error": message.get("error")})


# -- running one command ----------------------------------------------------------

def withDetach(message: dict) -> dict:
    """
    The node's answer to C{help}, with the client's own C{detach} added
    to its lines and, if it has one, to its structured result.
    """
    message = dict(message)
    message["lines"] = list(message.get("lines") or []) + \
        formatHelp([DETACH]).splitlines()[1:]
    result = message.get("result")
    if isinstance(result, dict) and isinstance(result.get("commands"), list):
        message["result"] = dict(result, commands=result["commands"] + [
            DETACH.view()])
    return message


async def runOnce(reactor, options) -> int:
    word = options.command[0].lower()
    if word == QUIT:
        raise ClientError(QUIT_HINT)
    if word == DETACH.name:
        raise ClientError(DETACH_HINT)
    protocol = await connect(reactor, options)
    command = " ".join(options.command)
    try:
        message = await protocol.request(command, options.json).addTimeout(
            options.timeout, reactor)
    except TimeoutError:
        raise ClientError(f"no answer within {options.timeout:g} s") from None
    finally:
        protocol.transport.loseConnection()
    ok = bool(message.get("ok"))
    if options.json:
        print(replyJSON(message), flush=True)
    else:
        out = sys.stdout if ok else sys.stderr
        for line in replyText(message):
            print(line, file=out, flush=True)
    return 0 if ok else 1


# -- attaching ------------------------------------------------------------------

@implementer(IHalfCloseableProtocol)
class AttachedConsole(LineReceiver):
    """
    Standard input and output of an attached client.  The end of input
    detaches, once the answers still to come have been printed.
    """

    # Its transport: a stream (UNIX, TCP or standard I/O) once connected.
    transport: Any

    delimiter = b"\n"
    MAX_LENGTH = 1 << 20

    def __init__(self, client: ControlClientProtocol, wantJSON: bool,
                 timeout: float, reactor) -> None:
        self.client = client
        self.wantJSON = wantJSON
        self.timeout = timeout
        self.reactor = reactor
        self.done: Deferred[None] = Deferred()
        self.closed: Deferred[None] = Deferred()
        client.onEvent = self._event
        if wantJSON:
            client.onStrayReply = self._showJSON
        client.closed.addCallback(lambda _: self._finish())

    def say(self, text: str) -> None:
        if self.transport is not None:
            self.transport.write(text.encode("utf-8") + b"\n")

    def _showJSON(self, message: dict) -> None:
        self.say(json.dumps(message))

    def _event(self, message: dict) -> None:
        if self.wantJSON:
            self._showJSON(message)
        else:
            self.say(escape(str(message.get("line", ""))))

    def lineReceived(self, line: bytes) -> None:
        text = line.decode("utf-8", errors="replace").strip()
        if not text:
            return
        word = text.split()[0].lower()
        if word == DETACH.name:
            self._detach()
            return
        if word == QUIT:
            self._notice(QUIT_HINT)
            return
        d = self.client.request(text, self.wantJSON)
        if word == HELP.name:
            d.addCallback(withDetach)
        d.addCallback(self._showJSON if self.wantJSON else self._showReply)
        d.addErrback(lambda _: None)  # The connection went: _finish says so.

    def _showReply(self, message: dict) -> None:
        for line in replyText(message):
            self.say(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        self.clearLineBuffer()
        self._notice(f"error: line longer than {self.MAX_LENGTH} bytes ignored")

    def _notice(self, text: str) -> None:
        """Answer a line the client handles itself, as the node would."""
        if self.wantJSON:
            self._showJSON(replyMessage(None, [text], error=text))
        else:
            self.say(text)

    def readConnectionLost(self) -> None:
        # End of input: wait (briefly) for the answers still to come.
        pending = self.client.pending()
        if not pending:
            self._detach()
            return
        waiting = DeferredList(pending, consumeErrors=True)
        waiting.addTimeout(self.timeout, self.reactor)
        waiting.addBoth(lambda _: self._detach())

    def writeConnectionLost(self) -> None:
        self._detach()  # Nobody reads what we print any more.

    def connectionLost(self, reason: Optional[Failure] = None) -> None:
        self._detach()
        self.closed.callback(None)

    def _detach(self) -> None:
        if not self.done.called:
            self.client.transport.loseConnection()
            self._finish(detached=True)

    def _finish(self, detached: bool = False) -> None:
        if self.done.called:
            return
        if not detached and not self.client.stopping:
            self.done.errback(ClientError(
                self.client.problem or "the node closed the connection"))
        else:
            self.done.callback(None)


async def attach(reactor, options) -> int:
    client = await connect(reactor, options)
    hello = await client.hello
    console = AttachedConsole(client, options.json, options.timeout, reactor)
    io = stdio.StandardIO(console, reactor=reactor)
    if options.json:
        console.say(json.dumps(hello))
    else:
        console.say(f"attached to {escape(str(hello.get('line', 'a node')))}"
                    f"; type 'help' for commands, 'detach' or Ctrl-D to leave")
    try:
        await console.done
    finally:
        # Let what is still to be printed reach standard output.
        io.loseConnection()
        await console.closed.addTimeout(options.timeout, reactor).addErrback(
            lambda _: None)
    return 0


# -- the program ----------------------------------------------------------------

async def _run(reactor, options) -> int:
    try:
        if options.command:
            return await runOnce(reactor, options)
        return await attach(reactor, options)
    except ClientError as e:
        print(f"{PROG}: {e}", file=sys.stderr, flush=True)
        return 1


def main(argv: Optional[List[str]] = None) -> int:
    """Run C{p2p-console}; return its exit status."""
    options = parseArguments(sys.argv[1:] if argv is None else argv)
    from twisted.internet import reactor
    outcome: List[Any] = []

    def finished(result: Any) -> None:
        outcome.append(result)
        if reactor.running:
            reactor.stop()

    def start() -> None:
        ensureDeferred(_run(reactor, options)).addBoth(finished)

    reactor.callWhenRunning(start)
    reactor.run()
    if not outcome:
        return 130  # Interrupted (Ctrl-C) before it was done.
    result = outcome[0]
    if isinstance(result, Failure):
        print(f"{PROG}: {result.type.__name__}: {result.getErrorMessage()}",
              file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
