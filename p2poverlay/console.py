"""
The interactive console: a line protocol on standard input and output.

Every line the console prints goes through its transport, and every piece
of text that came from the network is escaped first, so that no message
can forge a console line or send terminal control sequences.
"""

from __future__ import annotations

import os
import stat
import sys
import time
import unicodedata
from typing import Callable, Dict, Optional

from twisted.application.service import Service
from twisted.internet import stdio
from twisted.internet.error import ReactorNotRunning
from twisted.logger import (
    FilteringLogObserver, LogLevel, LogLevelFilterPredicate, formatEvent,
    globalLogPublisher,
)
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from twisted.python.threadable import isInIOThread

from p2poverlay.addressbook import CONNECTED, KNOWN, RECONNECTING, KnownPeer
from p2poverlay.errors import OverlayError
from p2poverlay.node import Node, NodeObserver, ReceivedMessage
from p2poverlay.registry import PeerInfo, formatAddress

HELP = """\
commands:
  send <peer> <message>   send a direct message; <peer> is host:port,
                          a node id (a unique prefix will do) or a name
  broadcast <message>     send a message to every node of the overlay
  peers                   list peers: connected, reconnecting, dead, left
  info                    show this node's id and address
  help                    show this help
  exit                    leave the overlay and stop this node"""

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def escape(text: str) -> str:
    """
    Make C{text} safe to print as part of one terminal line: backslashes,
    control, format and line-separator characters become escapes.
    """
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch == " " or unicodedata.category(ch) not in (
                "Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out)


def _clock(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))


def _columns(address: str, nodeId: str, name: str, direction: str) -> str:
    name = repr(name) if name else "-"
    return f"{address:<22} {nodeId} {name:<12} {direction:<8}"


def formatPeer(peer: PeerInfo) -> str:
    """One line of the C{peers} listing for a connected peer."""
    return (_columns(peer.address, peer.node_id, peer.name, peer.direction)
            + f" connected since {_clock(peer.since)}")


def formatKnownPeer(peer: KnownPeer, now: float) -> str:
    """One line of the C{peers} listing for a peer that is not connected."""
    if peer.state == RECONNECTING and peer.nextAttempt is not None:
        state = (f"reconnecting, next try in "
                 f"{max(0.0, peer.nextAttempt - now):.1f} s")
    elif peer.state == RECONNECTING:
        state = "reconnecting, dialing now"
    else:
        state = f"{peer.state} since {_clock(peer.since)}"
    return _columns(formatAddress(peer.host, peer.port), peer.node_id,
                    peer.name, "-") + " " + state


class ConsoleProtocol(LineReceiver, NodeObserver):
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
        self.stop = stop
        self.exitOnEOF = exitOnEOF
        self._commands: Dict[str, Callable[[str], None]] = {
            "send": self.do_send,
            "broadcast": self.do_broadcast,
            "peers": self.do_peers,
            "info": self.do_info,
            "help": self.do_help,
            "exit": self.do_exit,
            "quit": self.do_exit,
        }
        self._logObserver = FilteringLogObserver(
            self._logEvent,
            [LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)])
        self._exiting = False

    def say(self, text: str) -> None:
        """Print one line, escaped."""
        if self.transport is not None:
            self.transport.write(escape(text).encode("utf-8") + b"\n")

    # -- life -------------------------------------------------------------

    def connectionMade(self) -> None:
        self.node.addObserver(self)
        globalLogPublisher.addObserver(self._logObserver)
        self.node.listening.addCallback(self._showBanner)

    def _showBanner(self, port):
        self.say(f"node {self.node.nodeId} listening on "
                 f"{formatAddress(port.getHost().host, port.getHost().port)}"
                 "; type 'help' for commands")
        return port

    def connectionLost(self, reason: Failure = None) -> None:
        self.node.removeObserver(self)
        globalLogPublisher.removeObserver(self._logObserver)
        if self.exitOnEOF and not self._exiting:
            self._exiting = True
            self.stop()

    def _logEvent(self, event: dict) -> None:
        # Warnings and errors reach the person at the console, one line each.
        text = formatEvent(event)
        if not text:
            return
        line = f"! {text.splitlines()[0]}"
        if isInIOThread():
            self.say(line)
        else:
            self.node.reactor.callFromThread(self.say, line)

    # -- commands -------------------------------------------------------

    def lineReceived(self, line: bytes) -> None:
        text = line.decode("utf-8", errors="replace").strip()
        if not text:
            return
        command, _, rest = text.partition(" ")
        handler = self._commands.get(command.lower())
        if handler is None:
            self.say(f"error: unknown command {command!r}; type 'help'")
            return
        handler(rest.strip())

    def lineLengthExceeded(self, line: bytes) -> None:
        self.clearLineBuffer()
        self.say(f"error: line longer than {self.MAX_LENGTH} bytes ignored")

    def do_send(self, args: str) -> None:
        target, _, body = args.partition(" ")
        if not target or not body:
            self.say("usage: send <peer> <message>")
            return
        d = self.node.send(target, body)
        d.addCallbacks(
            lambda peer: self.say(f"delivered to {peer.describe()}"),
            self._failed, errbackArgs=(f"send to {target}",))

    def do_broadcast(self, args: str) -> None:
        if not args:
            self.say("usage: broadcast <message>")
            return
        messageId, neighbours = self.node.broadcast(args)
        if neighbours:
            self.say(f"broadcast {messageId[:8]} sent to {neighbours} "
                     f"neighbour{'s' if neighbours != 1 else ''}")
        else:
            self.say("broadcast not sent: no peers connected")

    def do_peers(self, args: str) -> None:
        peers = self.node.peers.snapshot()
        if not peers:
            self.say("no peers connected")
        for peer in peers:
            self.say(formatPeer(peer))
        now = self.node.reactor.seconds()
        for known in self.node.membership.book.all():
            if known.state not in (CONNECTED, KNOWN):
                self.say(formatKnownPeer(known, now))

    def do_info(self, args: str) -> None:
        name = f" {self.node.name!r}" if self.node.name else ""
        self.say(f"node {self.node.nodeId}{name} listening on port "
                 f"{self.node.listenPort}, {len(self.node.peers)} peers")

    def do_help(self, args: str) -> None:
        for line in HELP.splitlines():
            self.say(line)

    def do_exit(self, args: str) -> None:
        if not self._exiting:
            self._exiting = True
            self.say("leaving the overlay")
            self.stop()

    def _failed(self, reason: Failure, what: str) -> None:
        if reason.check(OverlayError):
            self.say(f"error: {what} failed: {reason.getErrorMessage()}")
        else:
            self.say(f"error: {what} failed: {reason.type.__name__}: "
                     f"{reason.getErrorMessage()}")

    # -- what the node tells us -----------------------------------------

    def messageReceived(self, message: ReceivedMessage) -> None:
        self.say(f"[{message.kind}] {message.describeSender()}: {message.body}")

    def peerConnected(self, peer: PeerInfo) -> None:
        self.say(f"* connected: {peer.describe()}")

    def peerDisconnected(self, peer: PeerInfo, reason: str) -> None:
        self.say(f"* disconnected: {peer.describe()} ({reason})")


def stdinIsNull(fd: int = 0) -> bool:
    """Whether C{fd} is closed or is C{/dev/null}, as for a daemon."""
    try:
        st = os.fstat(fd)
        null = os.stat(os.devnull)
    except OSError:
        return True
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == null.st_rdev


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
        try:
            self.reactor.stop()
        except ReactorNotRunning:
            pass  # Already on its way down (a signal, or a second exit).

    def stopService(self) -> None:
        Service.stopService(self)
