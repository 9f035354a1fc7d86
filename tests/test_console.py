"""
Unit tests of the console: L{ConsoleProtocol} on a StringTransport, with a
Node on a MemoryReactorClock (never started) whose peers complete their
handshakes over StringTransports, and L{escape}.
"""

import codecs
import os
import unicodedata

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from p2poverlay.console import HELP, ConsoleProtocol
from p2poverlay.factory import PeerConnectionFactory
from p2poverlay.message import (
    PROTOCOL_VERSION, Ack, Broadcast, Bye, Data, Hello, P2PMessage, newMessageId,
)
from p2poverlay.node import Node, NodeConfig
from p2poverlay.text import escape
from p2poverlay.whereabouts import Whereabouts
from helpers import UNOBSERVED

BOB = "b0b" + "0" * 29
CAROL = "ca201" + "0" * 27
DAVE = "da4e" + "0" * 28
COMMANDS = ["send", "broadcast", "lookup", "put", "get", "peers", "known",
            "info", "help", "exit"]
deterministic = settings(derandomize=True, database=None, deadline=None,
                         suppress_health_check=[HealthCheck.too_slow])


# -- harness --------------------------------------------------------------------

class Console:
    """A ConsoleProtocol on a StringTransport, and the calls of its stop()."""

    def __init__(self, node, exitOnEOF=False, whereabouts=None):
        self.stops = 0
        self.protocol = ConsoleProtocol(node, stop=self._stop, exitOnEOF=exitOnEOF,
                                        whereabouts=whereabouts)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self.lost = False

    def _stop(self):
        self.stops += 1

    def type(self, text):
        """Enter one line at the console; return the lines it printed."""
        self.transport.clear()
        self.protocol.dataReceived(text.encode("utf-8") + b"\n")
        return self.lines()

    def lines(self):
        data = self.transport.value()
        assert data == b"" or data.endswith(b"\n")
        return data.decode("utf-8").split("\n")[:-1]

    def endOfInput(self):
        self.lost = True
        self.protocol.connectionLost(Failure(ConnectionDone()))


@pytest.fixture
def node():
    return Node(NodeConfig(name="me", ackTimeout=30.0, plaintext=True),
                reactor=MemoryReactorClock())


@pytest.fixture
def consoles():
    """Makes consoles; detaches those still attached after the test."""
    made = []

    def make(node, exitOnEOF=False):
        made.append(Console(node, exitOnEOF))
        return made[-1]

    yield make
    for console in made:
        if not console.lost:
            console.endOfInput()


@pytest.fixture
def console(node, consoles):
    return consoles(node)


def addPeer(node, nodeId=BOB, port=9000, name="bob", outbound=False,
            host="127.0.0.1"):
    """A peer that completed its handshake; returns its connection and transport."""
    connection = PeerConnectionFactory(node.connections,
                                       outbound=outbound).buildProtocol(None)
    transport = StringTransport(peerAddress=IPv4Address("TCP", host, 40000 + port % 1000))
    connection.makeConnection(transport)
    connection.dataReceived(Hello(nodeId, PROTOCOL_VERSION, port, name).encode() + b"\n")
    assert node.peers.connection(nodeId) is connection
    transport.clear()
    return connection, transport


def written(transport):
    return [P2PMessage.decode(line) for line in transport.value().split(b"\n")[:-1]]


def receive(connection, *messages):
    connection.dataReceived(b"".join(m.encode() + b"\n" for m in messages))


# -- commands -----------------------------------------------------------------------

def test_help_lists_every_command(console):
    lines = console.type("help")
    assert lines == HELP.splitlines()
    listed = {line.split()[0] for line in lines if line.startswith("  ")
              and not line.startswith("   ")}
    assert listed == set(COMMANDS)


def test_commands_are_case_insensitive_and_blank_lines_ignored(console):
    assert console.type("HELP") == HELP.splitlines()
    assert console.type("   ") == []
    assert console.type("") == []
    assert console.stops == 0


def test_peers_with_none(console):
    assert console.type("peers") == ["no peers connected"]


def test_peers_lists_one_line_per_peer(node, console):
    addPeer(node, BOB, 9000, "bob")
    (line,) = console.type("peers")
    fields = line.split()
    assert fields[:6] == ["127.0.0.1:9000", BOB, "'bob'", "inbound",
                          "connected", "since"]

    addPeer(node, CAROL, 9001, "", outbound=True, host="10.0.0.3")
    lines = console.type("peers")
    assert len(lines) == 2
    assert lines[0] == line  # Oldest connection first.
    assert lines[1].split()[:6] == ["10.0.0.3:9001", CAROL, "-", "outbound",
                                    "connected", "since"]


class Port:
    """A listening port as the node sees it."""

    def __init__(self, host="0.0.0.0", port=9000):
        self.address = IPv4Address("TCP", host, port)

    def getHost(self):
        return self.address


def test_info(node, console):
    addPeer(node)
    assert console.type("info") == [
        f"node {node.nodeId} 'me' not listening yet, 1 peer",
        f"  key:     {node.key.fingerprint}; peer links: plaintext",
        "  dht:     1 node in its table, joining", UNOBSERVED]
    addPeer(node, CAROL, 9001, "carol")
    node.listener.port = Port()
    assert console.type("info") == [
        f"node {node.nodeId} 'me' listening on 0.0.0.0:9000, 2 peers",
        f"  key:     {node.key.fingerprint}; peer links: plaintext",
        "  dht:     2 nodes in its table, joining", UNOBSERVED]


def test_info_of_a_node_without_a_name(consoles):
    node = Node(NodeConfig(), reactor=MemoryReactorClock())
    assert consoles(node).type("info") == [
        f"node {node.nodeId} (no name) not listening yet, 0 peers",
        f"  key:     {node.key.fingerprint}; peer links: TLS 1.3",
        "  dht:     0 nodes in its table, not joined", UNOBSERVED]


@pytest.mark.parametrize("command, usage", [
    ("send", "usage: send <peer> <message>"),
    ("send bob", "usage: send <peer> <message>"),
    ("send bob   ", "usage: send <peer> <message>"),
    ("broadcast", "usage: broadcast <message>"),
    ("broadcast    ", "usage: broadcast <message>"),
])
def test_missing_arguments_print_one_usage_line(node, console, command, usage):
    _, transport = addPeer(node)
    assert console.type(command) == [usage]
    assert written(transport) == []


def test_unknown_command_prints_one_error_line(console):
    (line,) = console.type("frobnicate the peers")
    assert line.startswith("error: unknown command 'frobnicate'")
    assert "help" in line
    (line,) = console.type("\x1b[2J\rboom")
    assert line.startswith("error: unknown command")
    assert "\x1b" not in line and "\r" not in line


def test_invalid_utf8_input_is_an_unknown_command(console):
    console.transport.clear()
    console.protocol.dataReceived(b"\xff\xfe\n")
    (line,) = console.lines()
    assert line.startswith("error: unknown command")


def test_overlong_input_line_is_reported_and_dropped(console):
    console.transport.clear()
    console.protocol.dataReceived(b"x" * (ConsoleProtocol.MAX_LENGTH + 2))
    (line,) = console.lines()
    assert line.startswith("error: line longer than")
    assert console.type("peers") == ["no peers connected"]


def test_send_to_nobody_prints_an_error(console):
    (line,) = console.type("send nobody hi")
    assert line.startswith("error: ")
    assert "'nobody'" in line


def test_send_to_an_ambiguous_prefix_prints_an_error(node, console):
    addPeer(node, "abcd1" + "0" * 27, 9000, "x")
    addPeer(node, "abcd2" + "0" * 27, 9001, "y")
    (line,) = console.type("send abcd hi")
    assert line.startswith("error: ")
    assert "matches 2 peers" in line


def test_broadcast_without_peers_is_not_sent(console):
    assert console.type("broadcast hi") == ["broadcast not sent: no peers connected"]


def test_broadcast_goes_to_every_peer(node, console):
    _, bobTransport = addPeer(node, BOB, 9000, "bob")
    (line,) = console.type("broadcast hello  everyone")
    (message,) = written(bobTransport)
    assert isinstance(message, Broadcast)
    assert (message.origin, message.origin_name, message.body, message.ttl) == (
        node.nodeId, "me", "hello  everyone", node.config.broadcastTTL)
    assert line == f"broadcast {message.id[:8]} sent to 1 neighbour"

    _, carolTransport = addPeer(node, CAROL, 9001, "carol")
    bobTransport.clear()
    (line,) = console.type("broadcast again")
    (toBob,), (toCarol,) = written(bobTransport), written(carolTransport)
    assert toBob == toCarol and toBob.body == "again"
    assert line == f"broadcast {toBob.id[:8]} sent to 2 neighbours"


@pytest.mark.parametrize("target", [BOB[:5], BOB, "bob", "127.0.0.1:9000"])
def test_send_then_ack_prints_delivered(node, console, target):
    connection, transport = addPeer(node, BOB, 9000, "bob")
    assert console.type(f"send {target} hi there") == []
    (data,) = written(transport)
    assert isinstance(data, Data) and data.body == "hi there"

    console.transport.clear()
    receive(connection, Ack(data.id))
    assert console.lines() == ["delivered to 127.0.0.1:9000 (b0b00000 'bob')"]


def test_send_without_ack_prints_an_error_after_the_timeout(node, console):
    addPeer(node, BOB, 9000, "bob")
    console.type(f"send {BOB[:5]} hi")
    console.transport.clear()
    node.reactor.advance(node.config.ackTimeout)
    (line,) = console.lines()
    assert line.startswith(f"error: send to {BOB[:5]} failed: ")
    assert "did not confirm delivery within 30 s" in line


def test_send_interrupted_by_a_bye_prints_an_error(node, console):
    connection, _ = addPeer(node, BOB, 9000, "bob")
    console.type("send bob hi")
    console.transport.clear()
    receive(connection, Bye("going away"))
    connection.connectionLost(Failure(ConnectionDone()))
    lines = console.lines()
    assert len(lines) == 2
    assert "* disconnected: 127.0.0.1:9000 (b0b00000 'bob') (going away)" in lines
    (error,) = [line for line in lines if line.startswith("error: ")]
    assert error.startswith("error: send to bob failed: ")
    assert "going away" in error


def test_exit_stops_once(console):
    assert console.type("exit") == ["leaving the overlay"]
    assert console.stops == 1
    assert console.type("exit") == []
    assert console.type("quit") == []
    assert console.stops == 1


def test_quit_is_exit(console):
    assert console.type("quit") == ["leaving the overlay"]
    assert console.stops == 1


def test_end_of_input_stops_only_with_exit_on_eof(node, consoles):
    interactive = consoles(node, exitOnEOF=True)
    interactive.endOfInput()
    assert interactive.stops == 1

    piped = consoles(node, exitOnEOF=False)
    piped.endOfInput()
    assert piped.stops == 0


def test_end_of_input_after_exit_does_not_stop_again(node, consoles):
    interactive = consoles(node, exitOnEOF=True)
    interactive.type("exit")
    interactive.endOfInput()
    assert interactive.stops == 1


def test_end_of_piped_input_detaches_and_says_so(node, console):
    console.transport.clear()
    console.protocol.readConnectionLost()
    assert console.lines() == [
        f"end of input: console detached; the node keeps serving (stop it "
        f"with: kill {os.getpid()})"]
    assert console.transport.disconnecting
    assert console.stops == 0


def test_end_of_piped_input_after_exit_says_no_more(node, console):
    console.type("exit")
    console.transport.clear()
    console.protocol.readConnectionLost()
    assert console.lines() == []
    assert console.stops == 1


def test_end_of_piped_input_waits_for_the_answers_due(node, console):
    connection, transport = addPeer(node, BOB, 9000, "bob")
    console.type("send bob hi")
    (data,) = written(transport)
    console.transport.clear()
    console.protocol.readConnectionLost()
    assert console.lines() == [] and not console.transport.disconnecting
    receive(connection, Ack(data.id))
    delivered, detached = console.lines()
    assert delivered == "delivered to 127.0.0.1:9000 (b0b00000 'bob')"
    assert detached.startswith("end of input: console detached")
    assert console.transport.disconnecting


def test_end_of_input_at_a_terminal_leaves_and_says_so(node, consoles):
    interactive = consoles(node, exitOnEOF=True)
    interactive.transport.clear()
    interactive.protocol.readConnectionLost()
    assert interactive.lines() == ["leaving the overlay"]
    assert interactive.stops == 1
    interactive.protocol.readConnectionLost()
    interactive.endOfInput()
    assert interactive.stops == 1


def test_first_screen_at_a_terminal(node):
    where = Whereabouts(log="p2p-9000.log")
    console = Console(node, exitOnEOF=True, whereabouts=where)
    console.transport.clear()
    node.listening.callback(Port())
    assert console.lines() == [
        f"node {node.nodeId} listening on 0.0.0.0:9000; type 'help' for commands",
        "  name:    me",
        "  log:     p2p-9000.log",
        "  control: none",
        "  web UI:  off"]
    console.endOfInput()


def test_detached_console_prints_nothing_more(node, console):
    connection, _ = addPeer(node)
    console.endOfInput()
    console.transport.clear()
    receive(connection, Data(newMessageId(), "unseen"))
    connection.dataReceived(b"garbage\n")  # A warning, no longer shown.
    assert console.transport.value() == b""
    assert console.protocol.watcher not in node.observers


# -- what the node reports ---------------------------------------------------------

def test_banner_when_the_node_listens(node, console):
    class Port:
        def getHost(self):
            return IPv4Address("TCP", "0.0.0.0", 9000)

    console.transport.clear()
    node.listening.callback(Port())
    assert console.lines() == [
        f"node {node.nodeId} listening on 0.0.0.0:9000; type 'help' for commands"]


def test_peer_connected_and_disconnected(node, console):
    console.transport.clear()
    connection, _ = addPeer(node, BOB, 9000, "bob")
    assert console.lines() == ["* connected: 127.0.0.1:9000 (b0b00000 'bob')"]
    console.transport.clear()
    receive(connection, Bye("node shutting down"))
    connection.connectionLost(Failure(ConnectionDone()))
    assert console.lines() == [
        "* disconnected: 127.0.0.1:9000 (b0b00000 'bob') (node shutting down)"]


NASTY = "a\nb\rc\x1b[31mred\u2028d\\e\x00f\u202eg"
NASTY_ESCAPED = "a\\nb\\rc\\x1b[31mred\\u2028d\\\\e\\x00f\\u202eg"


def test_direct_message_with_control_characters_prints_one_escaped_line(node, console):
    connection, _ = addPeer(node, BOB, 9000, "bob")
    console.transport.clear()
    receive(connection, Data(newMessageId(), NASTY))
    output = console.transport.value()
    assert output.count(b"\n") == 1
    for raw in (b"\r", b"\x1b", b"\x00", "\u2028".encode(), "\u202e".encode()):
        assert raw not in output
    assert console.lines() == [f"[direct] 127.0.0.1:9000 (b0b00000 'bob'): {NASTY_ESCAPED}"]


def test_broadcast_and_direct_messages_are_told_apart(node, console):
    bob, _ = addPeer(node, BOB, 9000, "bob")
    console.transport.clear()
    receive(bob, Broadcast(newMessageId(), BOB, 3, "to all", "bob"))
    receive(bob, Data(newMessageId(), "to you"))
    # A broadcast from a node that is not a peer names the peer it came by.
    receive(bob, Broadcast(newMessageId(), DAVE, 3, "from afar", "dave"))
    assert console.lines() == [
        "[broadcast] 127.0.0.1:9000 (b0b00000 'bob'): to all",
        "[direct] 127.0.0.1:9000 (b0b00000 'bob'): to you",
        "[broadcast] da4e0000 'dave', via 127.0.0.1:9000: from afar",
    ]


def test_broadcast_with_control_characters_in_body_and_name_is_one_line(node, console):
    bob, _ = addPeer(node, BOB, 9000, "bob")
    console.transport.clear()
    receive(bob, Broadcast(newMessageId(), DAVE, 3, NASTY, "d\nave\x1b"))
    output = console.transport.value()
    assert output.count(b"\n") == 1
    assert b"\x1b" not in output and b"\r" not in output
    (line,) = console.lines()
    assert line.startswith("[broadcast] da4e0000 ")
    assert line.endswith(f", via 127.0.0.1:9000: {NASTY_ESCAPED}")


def test_peer_name_with_control_characters_is_one_line(node, console):
    console.transport.clear()
    addPeer(node, BOB, 9000, "b\no\rb\u2029")
    output = console.transport.value()
    assert output.count(b"\n") == 1
    assert b"\r" not in output and "\u2029".encode() not in output


def test_protocol_warnings_are_shown_as_one_line(node, console):
    connection, _ = addPeer(node, BOB, 9000, "bob")
    console.transport.clear()
    connection.dataReceived(b"not json\n")
    (line,) = console.lines()
    assert line.startswith("! ")
    assert "127.0.0.1:9000 (b0b00000 'bob')" in line
    assert "not valid JSON" in line


def test_informational_log_events_are_not_shown(node, console):
    console.transport.clear()
    node.log.info("peer connected: {peer}", peer="someone")
    assert console.lines() == []
    node.log.warn("something {what}", what="odd\nsecond line")
    assert console.lines() == ["! something odd"]


# -- escape ----------------------------------------------------------------------

@pytest.mark.parametrize("text, escaped", [
    ("", ""),
    ("plain text, with punctuation!", "plain text, with punctuation!"),
    ("héllo wörld 日本語 😀", "héllo wörld 日本語 😀"),
    ("non\u00a0breaking", "non\u00a0breaking"),
    ("a\\b", "a\\\\b"),
    ("\\n", "\\\\n"),
    ("line\nbreak", "line\\nbreak"),
    ("cr\r", "cr\\r"),
    ("tab\t", "tab\\t"),
    ("\x00\x07\x1b\x7f", "\\x00\\x07\\x1b\\x7f"),
    ("\x85", "\\x85"),
    ("\u2028\u2029", "\\u2028\\u2029"),
    ("\u200b\u202e\ufeff", "\\u200b\\u202e\\ufeff"),
    ("\ud800", "\\ud800"),
    ("\ue000", "\\ue000"),
    ("\U000e0001", "\\U000e0001"),
    ("\U0010ffff", "\\U0010ffff"),
])
def test_escape(text, escaped):
    assert escape(text) == escaped


UNSAFE = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
anyChar = st.one_of(st.characters(), st.characters(categories=["Cs"]),
                    st.sampled_from("\\\n\r\t\x1b\x85\u2028\u2029\u202e"))


@deterministic
@given(st.text(anyChar))
@example(NASTY)
def test_escape_output_is_one_safe_line(text):
    out = escape(text)
    assert not any(unicodedata.category(ch) in UNSAFE for ch in out)
    assert len(out.splitlines()) <= 1
    out.encode("utf-8")  # No lone surrogates left.


@deterministic
@given(st.text(anyChar))
@example(NASTY)
@example("\\x41")
def test_escape_loses_nothing(text):
    """The escaped text reads back as the original: no two texts look alike."""
    out = escape(text)
    assert codecs.decode(out.encode("ascii", "backslashreplace"),
                         "unicode_escape") == text


@deterministic
@given(st.text(st.characters(exclude_categories=UNSAFE, exclude_characters="\\")))
def test_escape_leaves_safe_text_unchanged(text):
    assert escape(text) == text
