"""
The commands a person (or a script) gives a running node, and how their
answers read.

L{CommandInterpreter} parses one command line and runs it against a
L{Node}; every command answers with a L{Reply}: the lines a console prints
and a structured, JSON-able result for scripts.  The stdio console and the
control endpoint both use it, so they accept the same commands and print
the same lines.  A new command is one method decorated with L{command}.

Lines are plain text: whoever prints them to a terminal passes them
through L{p2poverlay.text.escape} first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.failure import Failure

from p2poverlay.records import CONNECTED, KNOWN, KnownPeer, RECONNECTING
from p2poverlay.errors import OverlayError
from p2poverlay.node import Node
from p2poverlay.message import DIRECT
from p2poverlay.addresses import formatAddress
from p2poverlay.records import PeerInfo

# -- formatting ---------------------------------------------------------------

def _clock(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))


def _columns(address: str, nodeId: str, name: str, direction: str) -> str:
    name = repr(name) if name else "-"
    return f"{address:<22} {nodeId} {name:<12} {direction:<8}"


def formatPeer(peer: PeerInfo) -> str:
    """One line of the C{peers} listing for a connected peer."""
    line = (_columns(peer.address, peer.node_id, peer.name, peer.direction)
            + f" connected since {_clock(peer.since)}")
    if peer.role == DIRECT:
        line += " (direct link, not a neighbour)"
    return line


def formatKnownPeer(peer: KnownPeer, now: float) -> str:
    """One line of the C{peers} listing for a peer that is not connected."""
    if peer.state == RECONNECTING and peer.next_attempt is not None:
        state = (f"reconnecting, next try in "
                 f"{max(0.0, peer.next_attempt - now):.1f} s")
    elif peer.state == RECONNECTING:
        state = "reconnecting, dialing now"
    else:
        state = f"{peer.state} since {_clock(peer.since)}"
    return _columns(formatAddress(peer.host, peer.port), peer.node_id,
                    peer.name, "-") + " " + state


def formatAddressBookEntry(peer: KnownPeer, now: float) -> str:
    """One line of the C{known} listing."""
    if peer.state in (KNOWN, CONNECTED):
        seen = (f", last seen {_clock(peer.last_seen)}" if peer.last_seen
                and peer.state == KNOWN else "")
        return _columns(formatAddress(peer.host, peer.port), peer.node_id,
                        peer.name, "-") + f" {peer.state}{seen}"
    return formatKnownPeer(peer, now)


def peerJSON(peer: PeerInfo) -> Dict[str, Any]:
    """A connected peer as a JSON object."""
    return {"node_id": peer.node_id, "address": peer.address,
            "host": peer.host, "port": peer.port, "name": peer.name,
            "direction": peer.direction, "state": CONNECTED,
            "since": peer.since, "role": peer.role}


def knownPeerJSON(peer: KnownPeer) -> Dict[str, Any]:
    """A node of the address book as a JSON object."""
    return {"node_id": peer.node_id,
            "address": formatAddress(peer.host, peer.port),
            "host": peer.host, "port": peer.port, "name": peer.name,
            "direction": None, "state": peer.state, "since": peer.since,
            "last_seen": peer.last_seen or None,
            "next_attempt": peer.next_attempt}


# -- replies --------------------------------------------------------------------

@dataclass
class Reply:
    """
    The answer to one command.

    @ivar lines: what a console prints, unescaped.
    @ivar result: the same answer as a JSON-able value (C{None} on failure).
    @ivar error: why the command failed, in one line; C{None} if it did not.
    """

    lines: List[str] = field(default_factory=list)
    result: Any = None
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failed(cls, error: str, line: Optional[str] = None) -> "Reply":
        """A failure, printed as C{line} (by default C{error: ...})."""
        return cls([line if line is not None else f"error: {error}"],
                   None, error)


Handler = Callable[["CommandInterpreter", str], Union[Reply, "Deferred[Reply]"]]


@dataclass(frozen=True)
class CommandSpec:
    """How a command is called and what C{help} says of it."""

    name: str
    usage: str
    help: str
    aliases: Tuple[str, ...] = ()


def command(usage: str, help: str, aliases: Tuple[str, ...] = ()):
    """
    Make a method of L{CommandInterpreter} (or of a subclass) a command.

    The command's name is the first word of C{usage}.  The method takes
    the rest of the line (stripped) and returns a L{Reply}, or a Deferred
    that fires with one.  C{help} may hold several lines; they are shown
    aligned under the first.
    """
    def decorate(method: Handler) -> Handler:
        method.commandSpec = CommandSpec(  # type: ignore[attr-defined]
            usage.split()[0], usage, help, tuple(aliases))
        return method
    return decorate


HELP_COLUMN = 26


def formatHelp(specs: List[CommandSpec]) -> str:
    """The text C{help} prints for these commands."""
    lines = ["commands:"]
    for spec in specs:
        first, *rest = spec.help.splitlines()
        lines.append(f"  {spec.usage:<{HELP_COLUMN - 4}}  {first}")
        lines.extend(" " * HELP_COLUMN + more for more in rest)
    return "\n".join(lines)


class CommandInterpreter:
    """
    Runs command lines against a node.

    @param stop: called once, by C{exit}, to stop the node's process.
    """

    def __init__(self, node: Node, stop: Callable[[], None]) -> None:
        self.node = node
        self._stop = stop
        self.exiting = False

    # -- the command table --------------------------------------------

    @classmethod
    def commandSpecs(cls) -> List[CommandSpec]:
        """Every command, in the order it was defined."""
        return [spec for _, spec in cls._table()]

    @classmethod
    def _table(cls) -> List[Tuple[str, CommandSpec]]:
        seen: Dict[str, Tuple[str, CommandSpec]] = {}
        for klass in reversed(cls.__mro__):
            for attribute, value in vars(klass).items():
                spec = getattr(value, "commandSpec", None)
                if isinstance(spec, CommandSpec):
                    seen[spec.name] = (attribute, spec)
        return list(seen.values())

    @classmethod
    def helpText(cls) -> str:
        return formatHelp(cls.commandSpecs())

    def _handler(self, name: str) -> Optional[Callable[[str], Any]]:
        for attribute, spec in self._table():
            if name == spec.name or name in spec.aliases:
                return getattr(self, attribute)
        return None

    # -- running ----------------------------------------------------------

    def execute(self, line: str) -> "Optional[Deferred[Reply]]":
        """
        Run one command line.

        @return: C{None} for a blank line, otherwise a Deferred that fires
            with the L{Reply} (at once, unless the command waits for the
            network).  It never fails: an unexpected error is a failed reply.
        """
        text = line.strip()
        if not text:
            return None
        name, _, rest = text.partition(" ")
        handler = self._handler(name.lower())
        if handler is None:
            d: Deferred[Reply] = Deferred()
            d.callback(Reply.failed(
                f"unknown command {name!r}; type 'help'"))
            return d
        d = maybeDeferred(handler, rest.strip())
        d.addErrback(self._crashed, name.lower())
        return d

    @staticmethod
    def _crashed(reason: Failure, name: str) -> Reply:
        return Reply.failed(f"{name} failed: {reason.type.__name__}: "
                            f"{reason.getErrorMessage()}")

    # -- the commands -----------------------------------------------------

    @command("send <peer> <message>",
             "send a direct message; <peer> is host:port,\n"
             "a node id (a unique prefix will do) or a name")
    def do_send(self, args: str) -> "Union[Reply, Deferred[Reply]]":
        target, _, body = args.partition(" ")
        if not target or not body:
            return Reply.failed("usage: send <peer> <message>",
                                "usage: send <peer> <message>")
        d = self.node.send(target, body)

        def delivered(peer: PeerInfo) -> Reply:
            return Reply([f"delivered to {peer.describe()}"],
                         {"delivered_to": peerJSON(peer)})

        def failed(reason: Failure) -> Reply:
            if reason.check(OverlayError):
                why = reason.getErrorMessage()
            else:
                why = f"{reason.type.__name__}: {reason.getErrorMessage()}"
            return Reply.failed(f"send to {target} failed: {why}")

        return d.addCallbacks(delivered, failed)

    @command("broadcast <message>",
             "send a message to every node of the overlay")
    def do_broadcast(self, args: str) -> Reply:
        if not args:
            return Reply.failed("usage: broadcast <message>",
                                "usage: broadcast <message>")
        messageId, neighbours = self.node.broadcast(args)
        if not neighbours:
            why = "broadcast not sent: no peers connected"
            return Reply.failed(why, why)
        plural = "s" if neighbours != 1 else ""
        return Reply(
            [f"broadcast {messageId[:8]} sent to {neighbours} neighbour{plural}"],
            {"message_id": messageId, "neighbours": neighbours})

    @command("peers", "list neighbours, direct links and lost peers")
    def do_peers(self, args: str) -> Reply:
        connected = self.node.peers.snapshot()
        # Nodes this one was connected to; not those it only heard of.
        others = [known for known in self.node.addressBook.all()
                  if known.state not in (CONNECTED, KNOWN)
                  and (known.last_seen or known.state == RECONNECTING)]
        now = self.node.reactor.seconds()
        lines = [formatPeer(peer) for peer in connected]
        if not connected:
            lines.insert(0, "no peers connected")
        lines += [formatKnownPeer(known, now) for known in others]
        return Reply(lines, {"peers": [peerJSON(peer) for peer in connected]
                             + [knownPeerJSON(known) for known in others]})

    @command("known", "list the address book: every node known")
    def do_known(self, args: str) -> Reply:
        book = self.node.addressBook.all()
        order = {CONNECTED: 0, RECONNECTING: 1, KNOWN: 2}
        book.sort(key=lambda e: (order.get(e.state, 3), -e.last_seen,
                                 e.node_id))
        now = self.node.reactor.seconds()
        lines = [f"{len(book)} nodes known"]
        lines += [formatAddressBookEntry(entry, now) for entry in book]
        return Reply(lines, {"known": [knownPeerJSON(e) for e in book]})

    @command("info", "show this node's id and address")
    def do_info(self, args: str) -> Reply:
        node = self.node
        name = f" {node.name!r}" if node.name else ""
        return Reply(
            [f"node {node.nodeId}{name} listening on port {node.listenPort}, "
             f"{len(node.peers)} peers"],
            {"node_id": node.nodeId, "name": node.name,
             "port": node.listenPort, "peers": len(node.peers)})

    @command("help", "show this help")
    def do_help(self, args: str) -> Reply:
        return Reply(self.helpText().splitlines(),
                     {"commands": [{"name": spec.name, "usage": spec.usage,
                                    "help": " ".join(spec.help.split())}
                                   for spec in self.commandSpecs()]})

    @command("exit", "leave the overlay and stop this node", aliases=("quit",))
    def do_exit(self, args: str) -> Reply:
        if self.exiting:
            return Reply([], {"stopping": True})
        self.exiting = True
        self._stop()
        return Reply(["leaving the overlay"], {"stopping": True})


HELP = CommandInterpreter.helpText()
