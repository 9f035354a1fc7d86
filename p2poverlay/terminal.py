"""
A console at an interactive terminal: a line protocol (the node's console
or an attached client's) behind a prompt, with line editing and history.

L{TerminalSession} puts the terminal in raw mode (C{tty.setraw}), reads
it through C{insults.ServerProtocol} and a L{LineEditor}, as
C{twisted.conch.stdio} does, and hands the line protocol each line
entered; every line the protocol prints goes above the line being typed.
The terminal's settings are restored when the session ends, whatever ends
it: C{exit}, Ctrl-D, Ctrl-C, a signal that stops the reactor, or the
process exiting.

L{openConsole} picks: a L{TerminalSession} when standard input and output
are both a terminal, else the plain line protocol on
L{p2poverlay.consoleio.ConsoleIO} (Twisted's C{StandardIO}, printing each
line as soon as it is written), byte for byte as it always was.
"""

from __future__ import annotations

import atexit
import os
import signal
import termios
import tty
from typing import Any, Iterable, List, Optional, Sequence

from twisted.conch.insults import insults
from twisted.internet import stdio
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol, IProtocol, ITransport
from twisted.python.failure import Failure
from zope.interface import implementer

from p2poverlay.consoleio import ConsoleIO
from p2poverlay.lineedit import LineEditor

__all__ = ["RawMode", "TerminalSession", "isTerminal", "openConsole"]


def isTerminal(*fds: int) -> bool:
    """Whether every one of C{fds} is a terminal."""
    return all(os.isatty(fd) for fd in fds)


class RawMode:
    """
    The raw mode of the terminal C{fd}: L{enter} saves its settings and
    makes it raw, L{restore} puts them back (once, however often called,
    and at the latest when the process exits).
    """

    def __init__(self, fd: int = 0) -> None:
        self.fd = fd
        self.saved: Optional[List[Any]] = None

    def enter(self) -> None:
        if self.saved is None:
            self.saved = termios.tcgetattr(self.fd)
            atexit.register(self.restore)
        tty.setraw(self.fd, termios.TCSANOW)

    def restore(self) -> None:
        if self.saved is not None:
            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
            except termios.error:
                pass  # The terminal is gone.

    def leave(self) -> None:
        """Restore the settings for good."""
        self.restore()
        self.saved = None
        atexit.unregister(self.restore)


@implementer(ITransport)
class _EditorTransport:
    """
    The line protocol's transport: what it writes is printed, line by
    line, above the line being typed.
    """

    def __init__(self, session: "TerminalSession") -> None:
        self.session = session
        self.disconnecting = False
        self._partial = b""

    def write(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if lines:
            self.session.printLines(lines)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        self.disconnecting = True
        self.session.end()

    def abortConnection(self) -> None:
        self.loseConnection()

    def getPeer(self) -> Any:
        return self.session.stdio.getPeer()

    def getHost(self) -> Any:
        return self.session.stdio.getHost()


class TerminalSession:
    """
    Runs C{protocol}, a line protocol with C{b"\\n"} delimiters, at the
    terminal on standard input and output.

    Ctrl-D on an empty line is the end of input and Ctrl-C an interrupt:
    both are told to the protocol as the end of its input
    (C{readConnectionLost} if it is half-closeable, else
    C{connectionLost}).
    """

    def __init__(self, protocol: IProtocol, prompt: str,
                 completions: Sequence[str] = (), reactor=None,
                 stdin: int = 0, stdout: int = 1) -> None:
        """
        @param prompt: shown before the line being typed.
        @param completions: the words Tab completes (command names).
        """
        if reactor is None:
            from twisted.internet import reactor
        self.protocol = protocol
        self.prompt = prompt
        self.completions = tuple(completions)
        self.reactor = reactor
        self.stdout = stdout
        self.raw = RawMode(stdin)
        self.editor: Optional[LineEditor] = None
        self.stdio: Any = None
        self.transport = _EditorTransport(self)
        self.ended = False
        self._protocolLost = False

    def start(self) -> None:
        """Make the terminal raw, show the prompt and connect the protocol."""
        self.raw.enter()
        self.stdio = stdio.StandardIO(  # type: ignore[call-arg]
            insults.ServerProtocol(self._makeEditor), stdin=self.raw.fd,
            stdout=self.stdout, reactor=self.reactor)
        self.protocol.makeConnection(self.transport)

    def _makeEditor(self) -> LineEditor:
        self.editor = _SessionEditor(
            self, self.prompt, onLine=self._lineEntered,
            onEnd=self._endOfInput, onInterrupt=self._interrupted,
            onSuspend=self._suspend, completions=self.completions,
            columns=self._columns)
        return self.editor

    def _columns(self) -> int:
        try:
            return os.get_terminal_size(self.stdout).columns
        except OSError:
            return 80

    # -- from the terminal ---------------------------------------------------

    def _lineEntered(self, line: str) -> None:
        if not self._protocolLost:
            self.protocol.dataReceived(line.encode("utf-8") + b"\n")

    def _endOfInput(self) -> None:
        halfCloseable = IHalfCloseableProtocol(self.protocol, None)
        if halfCloseable is not None:
            halfCloseable.readConnectionLost()
        else:
            self.end()

    def _interrupted(self) -> None:
        self._endOfInput()

    def _suspend(self) -> None:
        """Ctrl-Z: give the terminal back, stop, and take it again on resume."""
        editor = self.editor
        assert editor is not None
        # Written at once: the process stops before the reactor would.
        os.write(self.stdout, editor.hiddenBytes() + b"^Z\r\n")
        self.raw.restore()
        os.kill(os.getpid(), signal.SIGTSTP)
        self.raw.enter()
        editor.show()

    # -- from the protocol -----------------------------------------------------

    def printLines(self, lines: List[bytes]) -> None:
        """Print C{lines} above the line being typed (plainly once it ended)."""
        if self.editor is not None and not self.ended:
            self.editor.printAbove(lines)
        elif self.stdio is not None:
            self.stdio.write(b"".join(line + b"\r\n" for line in lines))

    def stopReading(self) -> None:
        """
        Take no more input and take the prompt off the screen; lines are
        still printed (the process is on its way out).
        """
        if self.editor is not None:
            self.editor.close()

    def end(self) -> None:
        """End the session: the prompt goes, the terminal is restored."""
        if self.ended:
            return
        self.stopReading()
        self.ended = True
        if self.stdio is not None:
            self.stdio.loseConnection()

    loseConnection = end

    # -- the end -------------------------------------------------------------------

    def terminalLost(self, reason: Optional[Failure]) -> None:
        """Standard input and output are gone: restore the terminal."""
        editor = self.editor
        if editor is not None and editor.shown:
            # The reactor closed standard output first (it is stopping):
            # take the prompt off the screen directly, from its last row.
            editor.hiddenBytes()
            try:
                os.write(self.stdout, b"\r\x1b[K")
            except OSError:
                pass
        self.ended = True
        self.raw.leave()
        if not self._protocolLost:
            self._protocolLost = True
            self.protocol.connectionLost(
                reason if reason is not None else Failure(ConnectionDone()))


class _SessionEditor(LineEditor):
    """The editor of a L{TerminalSession}, which is told when it is lost."""

    def __init__(self, session: TerminalSession, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.session = session

    def connectionLost(self, reason=None) -> None:
        self.session.terminalLost(reason)
        LineEditor.connectionLost(self, reason)


def openConsole(protocol: IProtocol, prompt: str,
                completions: Sequence[str] = (), reactor=None,
                terminal: Optional[bool] = None) -> Any:
    """
    Connect C{protocol} to standard input and output: through a
    L{TerminalSession} if both are a terminal (or if C{terminal} says so),
    else directly on a L{ConsoleIO}.

    @return: the L{TerminalSession} or the L{ConsoleIO}; either has
        C{loseConnection}.
    """
    if terminal is None:
        terminal = isTerminal(0, 1)
    if not terminal:
        return ConsoleIO(protocol, reactor=reactor)
    session = TerminalSession(protocol, prompt, completions, reactor)
    session.start()
    return session
