"""
The console's watcher (L{ConsoleWatcher}) prints each delivered message
as L{formatMessage} writes it, escaped, whoever sent it and however often
the same peer sends; everything else is printed as the L{NodeWatcher}
of other front ends has it.
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock, StringTransport

from p2poverlay.console import ConsoleProtocol, ConsoleWatcher
from p2poverlay.events import ReceivedMessage
from p2poverlay.node import Node, NodeConfig
from p2poverlay.records import OUTBOUND, PeerInfo
from p2poverlay.text import escape
from p2poverlay.views import formatMessage

BOB = PeerInfo("b0b" + "0" * 29, "127.0.0.2", 9000, "bob", OUTBOUND, 1.0)
CAROL = PeerInfo("ca201" + "0" * 27, "127.0.0.3", 9001, "carol", OUTBOUND, 2.0)


def console():
    node = Node(NodeConfig(name="me", plaintext=True), nodeId="a" * 32,
                reactor=MemoryReactorClock())
    protocol = ConsoleProtocol(node, stop=lambda: None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    transport.clear()
    return node, protocol, transport


def message(kind, body, sender, via=None, senderId=None):
    return ReceivedMessage(
        kind=kind, message_id="m" * 32, body=body,
        sender_id=senderId or sender.node_id,
        sender_name=sender.name if sender else "dave",
        sender=sender, via=via or sender)


def test_the_console_watches_with_a_console_watcher():
    node, protocol, _ = console()
    assert isinstance(protocol.watcher, ConsoleWatcher)
    assert protocol.watcher in node.observers


def test_each_message_prints_as_format_message_has_it():
    node, protocol, transport = console()
    renamed = PeerInfo(BOB.node_id, BOB.host, BOB.port, "robert", OUTBOUND,
                       3.0)
    messages = [
        message("direct", "one", BOB),
        message("direct", "two", BOB),  # the same peer: its start kept
        message("broadcast", "three", BOB),  # another kind, same peer
        message("direct", "four", CAROL),
        message("direct", "five", renamed),  # a new PeerInfo of BOB
        message("direct", "six", BOB),
        # Written by a node that is no peer, come through one.
        message("broadcast", "seven", None, via=CAROL, senderId="d" * 32),
        message("direct", "evil\x1b[2J\nline", BOB),
    ]
    for m in messages:
        node.observers.notify("messageReceived", m)
    assert transport.value().decode().splitlines() == [
        escape(formatMessage(m)) for m in messages]


def test_a_stopped_watcher_prints_nothing():
    node, protocol, transport = console()
    protocol.watcher.stop()
    protocol.watcher.messageReceived(message("direct", "late", BOB))
    assert transport.value() == b""
