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
import json
import sys
from typing import Any, List, Optional, Tuple

from twisted.internet.defer import (
    Deferred, DeferredList, TimeoutError, ensureDeferred,
)
from twisted.internet.interfaces import IHalfCloseableProtocol, IProducer
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from p2poverlay.commandtable import (
    ATTACHED_COMMANDS, DETACH, HELP, NODE_COMMANDS, formatHelp,
)
from p2poverlay.controlclient import (
    DEFAULT_PORT, ClientError, ControlClientProtocol, connect,
    connectionProblem, controlEndpoint,
)
from p2poverlay.controlwire import CONTROL_SOCKET, replyMessage
from p2poverlay.cookie import COOKIE_FILE
from p2poverlay.terminal import isTerminal, openConsole
from p2poverlay.text import escape, fieldLines

__all__ = ["AttachedConsole", "ClientError", "ControlClientProtocol",
           "connectionProblem", "controlEndpoint", "main", "parseArguments"]

PROG = "p2p-console"
DEFAULT_TIMEOUT = 60.0
# At a node's own console 'quit' is 'exit'; here it could as well mean
# 'detach', so it is refused rather than stopping a node by mistake.
QUIT = "quit"
QUIT_HINT = ("quit: type 'detach' (or Ctrl-D) to leave this console, "
             "'exit' to stop the node")
# Requests sent and not answered yet, at most, before standard input is
# read again (from half as many): piped commands are paced by the node.
MAX_UNANSWERED = 1000
DETACH_HINT = ("detach: only an attached console detaches; run p2p-console "
               "without a command to attach")


# -- the command line -----------------------------------------------------------

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
        help=f"the node's data directory; talk to D/{CONTROL_SOCKET} (with "
             f"a TCP --control, read the cookie D/{COOKIE_FILE})")
    where.add_argument(
        "--port", "-p", metavar="N", type=int,
        help=f"the node listening on port N, with its default data directory "
             f"p2p-N (default: {DEFAULT_PORT})")
    parser.add_argument(
        "--control", metavar="ENDPOINT",
        help="a Twisted client endpoint, e.g. unix:/path/ctl.sock or "
             "tcp:127.0.0.1:7001")
    parser.add_argument(
        "--cookie-file", metavar="PATH",
        help="with a TCP --control, the node's cookie file (instead of "
             f"--data-dir's {COOKIE_FILE})")
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
    if options.port is not None and options.control is not None:
        parser.error("argument --port/-p: not allowed with argument --control")
    if options.cookie_file is not None and options.control is None:
        parser.error("argument --cookie-file: only with a TCP --control")
    if not options.timeout > 0:
        parser.error("--timeout must be more than 0")
    return options


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
        self.detached = False
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
        d.addBoth(self._answered)
        if self.client.unanswered >= MAX_UNANSWERED and not self.paused \
                and IProducer.providedBy(self.transport):
            self.pauseProducing()

    def _answered(self, result: object) -> object:
        if self.paused and self.client.unanswered <= MAX_UNANSWERED // 2:
            self.resumeProducing()  # Runs the lines read meanwhile, if any.
        return result

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
            self.detached = detached
            self.done.callback(None)


def helloFields(hello: dict, where: Optional[str]) -> List[Tuple[str, str]]:
    """
    What an attached terminal shows under its first line: the node's
    name, the endpoint attached to, and where the node logs and serves
    its web UI if its C{hello} says.
    """
    fields = [("name", str(hello.get("name") or "(none)"))]
    if where:
        fields.append(("control", where))
    for key, label in (("log", "log"), ("web", "web UI")):
        if hello.get(key):
            fields.append((label, str(hello[key])))
    return fields


def helloPrompt(hello: dict) -> str:
    """The prompt of an attached terminal: the node's name or short id."""
    label = hello.get("name") or str(hello.get("node_id", ""))[:8] or "node"
    return f"{escape(str(label))}> "


async def attach(reactor, options) -> int:
    client = await connect(reactor, options)
    hello = await client.hello
    console = AttachedConsole(client, options.json, options.timeout, reactor)
    terminal = isTerminal(0, 1) and not options.json
    io = openConsole(console, helloPrompt(hello),
                     [spec.name for spec in ATTACHED_COMMANDS],
                     reactor=reactor, terminal=terminal)
    if options.json:
        console.say(json.dumps(hello))
    else:
        console.say(f"attached to {escape(str(hello.get('line', 'a node')))}"
                    f"; type 'help' for commands, 'detach' or Ctrl-D to leave")
    if terminal:
        for line in fieldLines(helloFields(hello, client.where)):
            console.say(line)
    try:
        await console.done
        if terminal and console.detached:
            console.say("detached; the node keeps running")
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
