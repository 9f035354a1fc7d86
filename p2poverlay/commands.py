"""
The commands a person (or a script) gives a running node, and their
answers.

L{CommandInterpreter} parses one command line and runs it against a
L{Node}; every command answers with a L{Reply}: the lines a console prints
and a structured, JSON-able result for scripts.  The stdio console and the
control endpoint both use it, so they accept the same commands and print
the same lines.  The built-in commands' usage and help are in
L{p2poverlay.commandtable}; a new command is one method decorated with
L{command}.  How each record reads, as a line and as JSON, is
L{p2poverlay.views}'s.

Lines are plain text: whoever prints them to a terminal passes them
through L{p2poverlay.text.escape} first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Dict, List, Optional, Tuple, Union

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.failure import Failure

from p2poverlay import commandtable
from p2poverlay.commandtable import CommandSpec, formatHelp
from p2poverlay.dht.lookup import LookupResult
from p2poverlay.dht.reach import Sent
from p2poverlay.dht.views import (
    getLines, getView, lookupLines, lookupSummary, lookupView, putLines,
    putView,
)
from p2poverlay.errors import MessageTooLarge, OverlayError, SelfConnection, UnknownPeer
from p2poverlay.node import Node
from p2poverlay.wirevalues import isNodeId
from p2poverlay.views import (
    broadcastView, count, dhtLine, infoLine, keyLine, knownLines, knownView,
    nodeView, ownReference, peersLines, peersView, peerView, reachLine,
)


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


def handles(spec: CommandSpec):
    """
    Make a method of L{CommandInterpreter} (or of a subclass) the command
    C{spec}.  The method takes the rest of the line (stripped) and returns
    a L{Reply}, or a Deferred that fires with one.
    """
    def decorate(method: Handler) -> Handler:
        method.commandSpec = spec  # type: ignore[attr-defined]
        return method
    return decorate


def command(usage: str, help: str, aliases: Tuple[str, ...] = ()):
    """
    Make a method of L{CommandInterpreter} (or of a subclass) a new
    command, as L{handles} does.

    The command's name is the first word of C{usage}.  C{help} may hold
    several lines; they are shown aligned under the first.
    """
    return handles(CommandSpec(usage.split()[0], usage, help, tuple(aliases)))


class CommandInterpreter:
    """
    Runs command lines against a node.

    @param stop: called once, by C{exit}, to stop the node's process.
    """

    _commandNames: ClassVar[Dict[str, str]]

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

    @classmethod
    def _names(cls) -> Dict[str, str]:
        """Each command name and alias, with the method that runs it."""
        # Built once per class: every command line looks its name up here.
        names = cls.__dict__.get("_commandNames")
        if names is None:
            names = {}
            for attribute, spec in cls._table():
                for name in (spec.name, *spec.aliases):
                    names.setdefault(name, attribute)
            cls._commandNames = names
        return names

    def _handler(self, name: str) -> Optional[Callable[[str], Any]]:
        attribute = self._names().get(name)
        return None if attribute is None else getattr(self, attribute)

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

    @handles(commandtable.SEND)
    def do_send(self, args: str) -> "Union[Reply, Deferred[Reply]]":
        target, _, body = args.partition(" ")
        if not target or not body:
            return Reply.failed("usage: send <peer> <message>",
                                "usage: send <peer> <message>")
        d = self.node.reach.sendTelling(target, body)

        def delivered(sent: Sent) -> Reply:
            peer, lookup = sent
            line = f"delivered to {peer.describe()}"
            result = {"delivered_to": peerView(peer)}
            if lookup is not None:
                line += f" (found by lookup: {lookupSummary(lookup)})"
                result["lookup"] = lookupView(lookup)
            return Reply([line], result)

        def failed(reason: Failure) -> Reply:
            own = ownReference(self.node, target)
            if reason.check(SelfConnection):
                why = "that address is this node itself"
            elif reason.check(UnknownPeer) and own is not None:
                why = f"that is this node's own {own}"
            elif reason.check(OverlayError):
                why = reason.getErrorMessage()
            else:
                why = f"{reason.type.__name__}: {reason.getErrorMessage()}"
            return Reply.failed(f"send to {target} failed: {why}")

        return d.addCallbacks(delivered, failed)

    @handles(commandtable.BROADCAST)
    def do_broadcast(self, args: str) -> Reply:
        if not args:
            return Reply.failed("usage: broadcast <message>",
                                "usage: broadcast <message>")
        try:
            messageId, neighbours = self.node.broadcast(args)
        except MessageTooLarge as e:
            return Reply.failed(f"broadcast not sent: {e}")
        if not neighbours:
            why = "broadcast not sent: no peers connected"
            return Reply.failed(why, why)
        return Reply(
            [f"broadcast {messageId[:8]} sent to {count(neighbours, 'neighbour')}"],
            broadcastView(messageId, neighbours))

    @handles(commandtable.LOOKUP)
    def do_lookup(self, args: str) -> "Union[Reply, Deferred[Reply]]":
        if not isNodeId(args):
            return Reply.failed("usage: lookup <node id> (all 64 or 32 hex "
                                "digits)")
        if args == self.node.nodeId:
            return Reply.failed("that is this node's own id")

        def found(result: LookupResult) -> Reply:
            return Reply(lookupLines(args, result), lookupView(result))

        return self.node.dht.findNode(args).addCallbacks(
            found, self._dhtFailed, errbackArgs=("lookup",))

    @handles(commandtable.PUT)
    def do_put(self, args: str) -> "Union[Reply, Deferred[Reply]]":
        key, _, value = args.partition(" ")
        if not key or not value:
            return Reply.failed("usage: put <key> <value>")
        return self.node.values.put(key, value).addCallbacks(
            lambda result: Reply(putLines(result), putView(result)),
            self._dhtFailed, errbackArgs=("put",))

    @handles(commandtable.GET)
    def do_get(self, args: str) -> "Union[Reply, Deferred[Reply]]":
        if not args or " " in args:
            return Reply.failed("usage: get <key>")
        now = self.node.reactor.seconds()
        return self.node.values.get(args).addCallbacks(
            lambda result: Reply(getLines(result, now), getView(result)),
            self._dhtFailed, errbackArgs=("get",))

    @staticmethod
    def _dhtFailed(reason: Failure, name: str) -> Reply:
        return Reply.failed(f"{name} failed: {reason.getErrorMessage()}")

    @handles(commandtable.PEERS)
    def do_peers(self, args: str) -> Reply:
        return Reply(peersLines(self.node), {"peers": peersView(self.node)})

    @handles(commandtable.KNOWN)
    def do_known(self, args: str) -> Reply:
        return Reply(knownLines(self.node), {"known": knownView(self.node)})

    @handles(commandtable.INFO)
    def do_info(self, args: str) -> Reply:
        return Reply([infoLine(self.node), keyLine(self.node),
                      dhtLine(self.node), reachLine(self.node)],
                     nodeView(self.node))

    @handles(commandtable.HELP)
    def do_help(self, args: str) -> Reply:
        return Reply(self.helpText().splitlines(),
                     {"commands": [spec.view() for spec in self.commandSpecs()]})

    @handles(commandtable.EXIT)
    def do_exit(self, args: str) -> Reply:
        if self.exiting:
            return Reply([], {"stopping": True})
        self.exiting = True
        self._stop()
        return Reply(["leaving the overlay"], {"stopping": True})


HELP = CommandInterpreter.helpText()
