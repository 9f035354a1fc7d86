"""
The table of console commands: how each is called and what C{help} says
of it.

Every list of commands the project prints comes from here: the node's
C{help} (L{p2poverlay.commands}, which runs them), the attached client's
C{help} and C{p2p-console --help} (L{p2poverlay.client}, which adds its
own C{detach}).  This module imports nothing of the node, so that the
client need not either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Sequence, Tuple

__all__ = ["ATTACHED_COMMANDS", "CommandSpec", "DETACH", "NODE_COMMANDS",
           "formatHelp"]


@dataclass(frozen=True)
class CommandSpec:
    """How a command is called and what C{help} says of it."""

    name: str
    usage: str
    help: str
    aliases: Tuple[str, ...] = ()

    def summary(self) -> str:
        """The help text in one line."""
        return " ".join(self.help.split())

    def view(self) -> Dict[str, str]:
        """The command as C{help} lists it in its result: C{name}, C{usage}, C{help}."""
        return {"name": self.name, "usage": self.usage, "help": self.summary()}


SEND = CommandSpec(
    "send", "send <peer> <message>",
    "send a direct message; <peer> is host:port,\n"
    "a node id (a unique prefix will do) or a name;\n"
    "a full node id never heard of is looked up")
BROADCAST = CommandSpec(
    "broadcast", "broadcast <message>",
    "send a message to every node of the overlay")
LOOKUP = CommandSpec(
    "lookup", "lookup <node id>",
    "find a node by its full id through the DHT;\n"
    "prints the path: rounds, nodes asked, time")
PUT = CommandSpec(
    "put", "put <key> <value>",
    "store a value signed by this node in the DHT,\n"
    "on the nodes nearest the key")
GET = CommandSpec(
    "get", "get <key>", "read the values stored under a key in the DHT")
PEERS = CommandSpec(
    "peers", "peers", "list neighbours, direct links and lost peers")
KNOWN = CommandSpec(
    "known", "known", "list the address book: every node known")
INFO = CommandSpec(
    "info", "info", "show this node's id, name and address")
HELP = CommandSpec("help", "help", "show this help")
EXIT = CommandSpec(
    "exit", "exit", "leave the overlay and stop this node",
    aliases=("quit",))

NODE_COMMANDS: Tuple[CommandSpec, ...] = (
    SEND, BROADCAST, LOOKUP, PUT, GET, PEERS, KNOWN, INFO, HELP, EXIT)
"""The commands a node runs, at its console and through its control endpoint."""

DETACH = CommandSpec(
    "detach", "detach", "leave this console; the node keeps running")
"""The command an attached client runs itself."""

ATTACHED_COMMANDS: Tuple[CommandSpec, ...] = NODE_COMMANDS + (DETACH,)
"""What an attached C{p2p-console} accepts."""

HELP_COLUMN = 26


def formatHelp(specs: Sequence[CommandSpec]) -> str:
    """
    The text C{help} prints for these commands: a heading, then each
    command's usage and its help aligned under one another.

    @param specs: the commands, in the order to list them.
    """
    lines = ["commands:"]
    for spec in specs:
        first, *rest = spec.help.splitlines()
        lines.append(f"  {spec.usage:<{HELP_COLUMN - 4}}  {first}")
        lines.extend(" " * HELP_COLUMN + more for more in rest)
    return "\n".join(lines)
