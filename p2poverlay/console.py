"""
The interactive console: a line protocol on standard input and output.

Commands are those of L{p2poverlay.commands}, shared with the control
endpoint.  Every line the console prints goes through its transport, and
every piece of text is escaped first, so that no message can forge a
console line or send terminal control sequences.  At a terminal it runs
behind a prompt with line editing and history (L{p2poverlay.terminal});
on a pipe or a file it is the plain line protocol.

C{python -m p2poverlay.console} runs the client that attaches to a node
running in the background (see L{p2poverlay.client}).
"""

from __future__ import annotations

import os
import stat
import sys
from typing import Any, Callable, Optional, Set, Tuple

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.error import ReactorNotRunning
from twisted.internet.interfaces import IHalfCloseableProtocol, IProducer
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from p2poverlay.addresses import formatAddress
from p2poverlay.commands import HELP, CommandInterpreter, Reply
from p2poverlay.events import ReceivedMessage
from p2poverlay.node import Node
from p2poverlay.pacing import InputPacer
from p2poverlay.records import PeerInfo
from p2poverlay.terminal import TerminalSession, isTerminal, openConsole
from p2poverlay.text import escape, fieldLines
from p2poverlay.views import formatMessage
from p2poverlay.watch import NodeEvent, NodeWatcher
from p2poverlay.whereabouts import Whereabouts

__all__ = ["HELP", "ConsoleProtocol", "ConsoleService", "ConsoleWatcher",
           "stdinIsNull", "stopReactor"]


class ConsoleWatcher(NodeWatcher):
    """
    A L{NodeWatcher} for a console, which prints only the line of each
    event: a delivered message gets no JSON view, and the start of its
    line (kind and sender) is kept for the next one from the same peer.

    @param show: called with the line of each delivered message.
    """

    def __init__(self, node: Node, deliver: Callable[[NodeEvent], None],
                 show: Callable[[str], None]) -> None:
        super().__init__(node, deliver)
        self.show = show
        self._lastFrom: Optional[Tuple[str, PeerInfo]] = None
        self._lastStart = ""

    def messageReceived(self, message: ReceivedMessage) -> None:
        if not self.watching:
            return
        sender = message.sender
        if sender is None:
            self.show(formatMessage(message))
            return
        # PeerInfo is frozen: the same object describes itself the same.
        last = self._lastFrom
        if last is None or last[1] is not sender or last[0] != message.kind:
            self._lastFrom = (message.kind, sender)
            self._lastStart = f"[{message.kind}] {sender.describe()}: "
        self.show(self._lastStart + message.body)


@implementer(IHalfCloseableProtocol)
class ConsoleProtocol(LineReceiver):
    """
    Reads commands from standard input and prints what happens at the node.

    @ivar exitOnEOF: whether end of input means C{exit} (an interactive
        terminal's Ctrl-D) or only that the console goes away.
    @ivar whereabouts: what the first screen shows besides where the node
        listens, if anything.
    """

    delimiter = b"\n"
    MAX_LENGTH = 1 << 20

    def __init__(self, node: Node, stop: Callable[[], None],
                 exitOnEOF: bool = False,
                 whereabouts: Optional[Whereabouts] = None) -> None:
        self.node = node
        self.exitOnEOF = exitOnEOF
        self.whereabouts = whereabouts
        self.interpreter = CommandInterpreter(node, stop)
        self.watcher = ConsoleWatcher(node, self._showEvent, self.say)
        self._pending: Set[Deferred] = set()
        self.inputEnded = False
        self.pacer = InputPacer(node, self.pauseProducing, self._goOn)

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
        if self.whereabouts is not None:
            for line in fieldLines(self.whereabouts.fields(self.node.name)):
                self.say(line)
        return port

    def readConnectionLost(self) -> None:
        """
        End of input: C{exit} at an interactive terminal; otherwise the
        console detaches (once the answers still due are printed) and the
        node keeps serving.
        """
        if self.inputEnded:
            return
        self.inputEnded = True
        if not self.pacer.holding:
            self._inputDone()

    def _inputDone(self) -> None:
        """Every line read has run: act on the end of input."""
        if self.exitOnEOF:
            self._showReply(self.interpreter.do_exit(""))
            return
        waiting = DeferredList(list(self._pending), consumeErrors=True)
        waiting.addCallback(lambda _: self._detach())

    def _detach(self) -> None:
        if not self.interpreter.exiting:  # After exit it does not serve on.
            self.say(f"end of input: console detached; the node keeps "
                     f"serving (stop it with: kill {os.getpid()})")
        if self.transport is not None:
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass  # Nobody reads what it prints; it runs on, as before.

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
            if not d.called:
                self._pending.add(d)
                d.addBoth(self._answered, d)
        self._pace()

    # -- flow control -------------------------------------------------------

    def _pace(self) -> None:
        """
        While the node's backlog of direct messages is high, read no more
        lines (a pipe then holds the writer back); the answers still print.
        A terminal is not held back: a person does not type that fast.
        """
        if IProducer.providedBy(self.transport):
            self.pacer.check()

    def _goOn(self) -> None:
        self.resumeProducing()  # Runs the lines read meanwhile, if any.
        if self.inputEnded and not self.pacer.holding:
            self._inputDone()

    def _answered(self, result: Any, d: Deferred) -> Any:
        self._pending.discard(d)
        return result

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
    """
    Attaches a L{ConsoleProtocol} to standard input and output: at a
    terminal behind a prompt (L{p2poverlay.terminal}), else as a plain
    line protocol.

    @param whereabouts: what the first screen at a terminal shows.
    """

    def __init__(self, node: Node, reactor=None,
                 whereabouts: Optional[Whereabouts] = None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.node = node
        self.reactor = reactor
        self.whereabouts = whereabouts
        self.stdio: Any = None

    def prompt(self) -> str:
        """What the prompt at a terminal says: the node's name or short id."""
        return f"{escape(self.node.name or self.node.shortId)}> "

    def atTerminal(self) -> bool:
        """
        Whether the console runs behind a prompt: standard input and
        output are a terminal, and the log does not go to the latter.
        """
        logsThere = self.whereabouts is not None and \
            self.whereabouts.logsToStandardOutput
        return isTerminal(0, 1) and not logsThere

    def startService(self) -> None:
        Service.startService(self)
        terminal = self.atTerminal()
        protocol = ConsoleProtocol(
            self.node, stop=self._stopReactor,
            exitOnEOF=terminal or isTerminal(sys.stdin.fileno()),
            whereabouts=self.whereabouts if terminal else None)
        self.stdio = openConsole(
            protocol, self.prompt(),
            [spec.name for spec in CommandInterpreter.commandSpecs()],
            reactor=self.reactor, terminal=terminal)

    def _stopReactor(self) -> None:
        stopReactor(self.reactor)

    def stopService(self) -> None:
        Service.stopService(self)
        if isinstance(self.stdio, TerminalSession):
            # The process is on its way out: no more prompt, no more input.
            self.stdio.stopReading()


if __name__ == "__main__":
    from p2poverlay.client import main
    sys.exit(main())
