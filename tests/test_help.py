"""
Every list of commands comes from one table: the node console's C{help},
the attached client's C{help}, C{p2p-console --help} and README agree.
"""

import json
import re
from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactorClock, StringTransport

from p2poverlay.client import AttachedConsole, ControlClientProtocol, parseArguments
from p2poverlay.commands import CommandInterpreter
from p2poverlay.commandtable import (
    ATTACHED_COMMANDS, DETACH, NODE_COMMANDS, formatHelp,
)
from p2poverlay.console import ConsoleProtocol
from p2poverlay.control import ControlFactory
from p2poverlay.node import Node, NodeConfig

README = Path(__file__).resolve().parent.parent / "README.rst"


@pytest.fixture
def node():
    return Node(NodeConfig(name="me"), reactor=MemoryReactorClock())


class Attached:
    """An attached client's console, talking in memory to a node's endpoint."""

    def __init__(self, node, wantJSON=False):
        self.server = ControlFactory(node, lambda: None).buildProtocol(None)
        self.serverTransport = StringTransport()
        self.server.makeConnection(self.serverTransport)
        self.client = ControlClientProtocol()
        self.clientTransport = StringTransport()
        self.client.makeConnection(self.clientTransport)
        self.console = AttachedConsole(self.client, wantJSON, 5.0, node.reactor)
        self.output = StringTransport()
        self.console.makeConnection(self.output)
        self.pump()

    def pump(self):
        while self.serverTransport.value() or self.clientTransport.value():
            toClient = self.serverTransport.value()
            self.serverTransport.clear()
            self.client.dataReceived(toClient)
            toServer = self.clientTransport.value()
            self.clientTransport.clear()
            self.server.dataReceived(toServer)

    def type(self, line):
        self.output.clear()
        self.console.dataReceived(line.encode("utf-8") + b"\n")
        self.pump()
        return self.output.value().decode("utf-8").splitlines()


def nodeConsoleHelp(node):
    console = ConsoleProtocol(node, stop=lambda: None)
    transport = StringTransport()
    console.makeConnection(transport)
    console.dataReceived(b"help\n")
    console.connectionLost(None)
    return transport.value().decode("utf-8").splitlines()


def clientUsage(capsys):
    with pytest.raises(SystemExit):
        parseArguments(["--help"])
    return capsys.readouterr().out


def test_the_node_runs_the_commands_of_the_table():
    assert CommandInterpreter.commandSpecs() == list(NODE_COMMANDS)
    assert ATTACHED_COMMANDS == NODE_COMMANDS + (DETACH,)


def test_every_help_agrees(node, capsys):
    nodeHelp = nodeConsoleHelp(node)
    assert nodeHelp == formatHelp(NODE_COMMANDS).splitlines()

    attachedHelp = Attached(node).type("help")
    assert attachedHelp == formatHelp(ATTACHED_COMMANDS).splitlines()
    assert attachedHelp[:len(nodeHelp)] == nodeHelp

    usage = clientUsage(capsys)
    assert formatHelp(ATTACHED_COMMANDS) in usage
    listed = re.search(r"a command to run once\s+\(([^)]*)\)", usage)
    assert listed is not None, usage
    assert [name.strip() for name in " ".join(listed.group(1).split()).split(",")] == [
        spec.name for spec in NODE_COMMANDS]


def test_attached_help_as_json_lists_detach(node):
    attached = Attached(node, wantJSON=True)
    (line,) = attached.type("help")
    reply = json.loads(line)
    assert [c["name"] for c in reply["result"]["commands"]] == [
        spec.name for spec in ATTACHED_COMMANDS]
    assert reply["lines"] == formatHelp(ATTACHED_COMMANDS).splitlines()


def test_readme_lists_the_commands():
    text = README.read_text(encoding="utf-8")
    console = text[text.index("\nThe console\n"):]
    for line in formatHelp(NODE_COMMANDS).splitlines()[1:]:
        assert "\n  " + line + "\n" in console, line
    for line in formatHelp([DETACH]).splitlines()[1:]:
        assert "\n  " + line + "\n" in console, line
