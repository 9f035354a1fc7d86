"""
The interactive console: a line protocol on standard input and output.

Commands are those of L{p2poverlay.commands}, shared with the control
endpoint.  Every line the console prints goes through its transport, and
every piece of text is escaped first, so that no message can forge a
console line or send terminal control sequences.

C{python -m p2poverlay.console} runs the client that attaches to a node
running in the background (see L{p2poverlay.client}).
"""

from __future__ import annotations

import os
import stat
import sys
from typing import Callable, Optional

from twisted.application.service import Service
from twisted.internet import stdio
from twisted.internet.error import ReactorNotRunning
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from p2poverlay.addresses import formatAddress
from p2poverlay.commands import HELP, CommandInterpreter, Reply
from p2poverlay.node import Node
from p2poverlay.text import escape
from p2poverlay.watch import NodeEvent, NodeWatcher

__all__ = ["HELP", "ConsoleProtocol", "ConsoleService", "stdinIsNull",
           "stopReactor"]


class ConsoleProtocol(LineReceiver):
    """
    Reads commands from standard input and prints what happens at the node.

    @ivar exitOnEOF: whether end of input means C{exit} (an interactive
        terminal's Ctrl-D) or only that the console goes away.
    """

    delimiter = b"\n"
    MAX_LENGTH = 1 << 20

    def __init__(self, node: Node, stop: Callable[[], None],
                 exitOnEOF: bool = False) -> None:
        self.node = node
        self.exitOnEOF = exitOnEOF
        self.interpreter = CommandInterpreter(node, stop)
        self.watcher = NodeWatcher(node, self._showEvent)

    def say(self, text: str) -> None:
        """Print one line, escaped."""
        if self.transport is not None:
            self.transport.write(escape(text).encode("utf-8") + b"\n")

    # -- life -------------------------------------------------------------

    def connectionMade(self) -> None:
        self.watcher.start()
        self.node.listening.addCallback(self._showBanner)

    def _showBanner(self, port):
        self.say(f"node {self.node.nodeId} listening on "
                 f"{formatAddress(port.getHost().host, port.getHost().port)}"
                 "; type 'help' for commands")
        return port

    def connectionLost(self, reason: Optional[Failure] = None) -> None:
        self.watcher.stop()
        if self.exitOnEOF and not self.interpreter.exiting:
            self.interpreter.do_exit("")

    def _showEvent(self, event: NodeEvent) -> None:
        self.say(event.line)

    # -- commands -------------------------------------------------------

    def lineReceived(self, line: bytes) -> None:
        d = self.interpreter.execute(line.decode("utf-8", errors="replace"))
        if d is not None:
            d.addCallback(self._showReply)

    def _showReply(self, reply: Reply) -> None:
        for line in reply.lines:
            self.say(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        self.clearLineBuffer()
        self.say(f"error: line longer than {self.MAX_LENGTH} bytes ignored")


def stdinIsNull(fd: int = 0) -> bool:
    """Whether C{fd} is closed or is C{/dev/null}, as for a daemon."""
    try:
        st = os.fstat(fd)
        null = os.stat(os.devnull)
    except OSError:
        return True
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == null.st_rdev


def stopReactor(reactor) -> None:
    """Stop C{reactor}, unless it is already on its way down."""
    try:
        reactor.stop()
    except ReactorNotRunning:
        pass  # Already on its way down (a signal, or a second exit).


class ConsoleService(Service):
    """Attaches a L{ConsoleProtocol} to standard input and output."""

    def __init__(self, node: Node, reactor=None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.node = node
        self.reactor = reactor
        self.stdio: Optional[stdio.StandardIO] = None

    def startService(self) -> None:
        Service.startService(self)
        protocol = ConsoleProtocol(
            self.node, stop=self._stopReactor,
            exitOnEOF=os.isatty(sys.stdin.fileno()))
        self.stdio = stdio.StandardIO(protocol, reactor=self.reactor)

    def _stopReactor(self) -> None:
        stopReactor(self.reactor)

    def stopService(self) -> None:
        Service.stopService(self)


if __name__ == "__main__":
    from p2poverlay.client import main
    sys.exit(main())
