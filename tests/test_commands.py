"""
Unit tests of the command interpreter shared by the console and the control
endpoint: its replies (lines and structured results), its command table,
and the events of L{NodeWatcher}.
"""

import json
from dataclasses import replace

import pytest
from twisted.internet.defer import Deferred, fail
from twisted.internet.testing import MemoryReactorClock

from p2poverlay.errors import SelfConnection

from p2poverlay.records import CONNECTED, DEAD, KNOWN, RECONNECTING
from p2poverlay.commands import (
    HELP, CommandInterpreter, Reply, command, formatHelp,
)
from p2poverlay.message import (
    DIRECT, PROTOCOL_VERSION, Ack, Broadcast, Data, newMessageId,
)
from p2poverlay.node import Node, NodeConfig
from p2poverlay.watch import NodeWatcher

from test_console import BOB, CAROL, DAVE, addPeer, receive, written
from helpers import UNOBSERVED, UNOBSERVED_VIEW


@pytest.fixture
def node():
    return Node(NodeConfig(name="me", ackTimeout=30.0, plaintext=True),
                reactor=MemoryReactorClock())


class Interpreter:
    """A CommandInterpreter and the calls of its stop()."""

    def __init__(self, node, cls=CommandInterpreter):
        self.stops = 0
        self.interpreter = cls(node, self._stop)

    def _stop(self):
        self.stops += 1

    def run(self, line):
        """Run C{line}; return its Reply, or the pending Deferred."""
        d = self.interpreter.execute(line)
        if d is None or not d.called:
            return d
        replies = []
        d.addCallback(replies.append)
        return replies[0]


@pytest.fixture
def run(node):
    return Interpreter(node).run


def assertJSONable(reply: Reply):
    assert json.loads(json.dumps(reply.result)) == reply.result


# -- replies ---------------------------------------------------------------------

def test_blank_line_has_no_reply(run):
    assert run("") is None
    assert run("   \t") is None


def test_unknown_command(run):
    reply = run("frobnicate now")
    assert not reply.ok
    assert reply.error == "unknown command 'frobnicate'; type 'help'"
    assert reply.lines == [f"error: {reply.error}"]
    assert reply.result is None


def test_info(node, run):
    addPeer(node, BOB, 9000, "bob")
    reply = run("info")
    assert reply.ok
    assert reply.lines == [f"node {node.nodeId} 'me' not listening yet, 1 peer",
                           f"  key:     {node.key.fingerprint}; peer links: plaintext",
                           "  dht:     1 node in its table, joining",
                           UNOBSERVED]
    assert reply.result == {"node_id": node.nodeId, "name": "me",
                            "address": None, "port": 0, "uptime": 0.0,
                            "protocol_version": PROTOCOL_VERSION, "peers": 1,
                            "fingerprint": node.key.fingerprint, "tls": False,
                            "dht": {"state": "joining", "contacts": 1},
                            "reachability": UNOBSERVED_VIEW}
    assertJSONable(reply)


def test_peers_structured(node, run):
    reply = run("peers")
    assert reply.ok and reply.result == {"peers": []}
    assert reply.lines == ["no peers connected"]

    addPeer(node, BOB, 9000, "bob")
    addPeer(node, CAROL, 9001, "", outbound=True, host="10.0.0.3")
    reply = run("peers")
    assertJSONable(reply)
    bob, carol = reply.result["peers"]
    assert bob["node_id"] == BOB and bob["address"] == "127.0.0.1:9000"
    assert (bob["name"], bob["direction"], bob["state"]) == ("bob", "inbound",
                                                             "connected")
    assert isinstance(bob["since"], float)
    assert carol["address"] == "10.0.0.3:9001"
    assert carol["direction"] == "outbound"
    assert len(reply.lines) == 2


def test_peers_lists_nodes_not_connected(node, run):
    book = node.addressBook
    book.learn(DAVE, "10.0.0.4", 9004, "dave")
    book.setState(DAVE, RECONNECTING, node.reactor.seconds() + 2.5)
    book.learn(CAROL, "10.0.0.3", 9003, "", lastSeen=500.0)  # Was a peer.
    book.setState(CAROL, DEAD)
    book.learn("e" * 32, "10.0.0.5", 9005, "")  # Only heard of: not listed.
    book.learn("f" * 32, "10.0.0.6", 9006, "")  # Never reached: not listed.
    book.setState("f" * 32, DEAD)
    reply = run("peers")
    assertJSONable(reply)
    assert reply.lines[0] == "no peers connected; lost peers:"
    states = {p["node_id"]: p for p in reply.result["peers"]}
    assert set(states) == {DAVE, CAROL}
    assert states[DAVE]["state"] == "reconnecting"
    assert states[DAVE]["next_attempt"] == node.reactor.seconds() + 2.5
    assert states[CAROL]["state"] == "dead"
    assert any("reconnecting, next try in 2.5 s" in line for line in reply.lines)
    assert len(reply.lines) == 3


def test_broadcast_structured(node, run):
    reply = run("broadcast hello")
    assert not reply.ok
    assert reply.lines == ["broadcast not sent: no peers connected"]
    assert reply.error == "broadcast not sent: no peers connected"

    _, transport = addPeer(node, BOB, 9000, "bob")
    reply = run("broadcast hello")
    (message,) = written(transport)
    assert reply.ok
    assert reply.result == {"message_id": message.id, "neighbours": 1}


@pytest.mark.parametrize("line, usage", [
    ("send", "usage: send <peer> <message>"),
    ("send bob", "usage: send <peer> <message>"),
    ("broadcast", "usage: broadcast <message>"),
])
def test_usage_is_a_failure(run, line, usage):
    reply = run(line)
    assert not reply.ok
    assert reply.lines == [usage]


def test_send_waits_for_the_ack(node):
    interpreter = Interpreter(node)
    connection, transport = addPeer(node, BOB, 9000, "bob")
    d = interpreter.run("send bob hi")
    assert not isinstance(d, Reply)
    replies = []
    d.addCallback(replies.append)
    (data,) = written(transport)
    # Other commands are answered meanwhile.
    assert interpreter.run("info").ok
    assert replies == []
    receive(connection, Ack(data.id))
    (reply,) = replies
    assert reply.ok
    assert reply.lines == ["delivered to 127.0.0.1:9000 (b0b00000 'bob')"]
    assert reply.result["delivered_to"]["node_id"] == BOB
    assertJSONable(reply)


def test_send_failure_is_a_failed_reply(node):
    interpreter = Interpreter(node)
    addPeer(node, BOB, 9000, "bob")
    d = interpreter.run("send bob hi")
    replies = []
    d.addCallback(replies.append)
    node.reactor.advance(node.config.ackTimeout)
    (reply,) = replies
    assert not reply.ok
    assert reply.error.startswith("send to bob failed: ")
    assert reply.lines == [f"error: {reply.error}"]


def test_send_to_nobody(run):
    reply = run("send nobody hi")
    assert not reply.ok and "'nobody'" in reply.error


def test_send_to_this_node_says_so(node, run):
    for target in (node.nodeId, node.nodeId[:6]):
        reply = run(f"send {target} hi")
        assert reply.error == (f"send to {target} failed: that is this "
                               f"node's own id")
    assert run("send me hi").error == ("send to me failed: that is this "
                                       "node's own name")
    # A peer that the reference names is sent to, whatever this node is.
    addPeer(node, BOB, 9000, "me")
    assert isinstance(run("send me hi"), Deferred)


def test_send_to_this_node_s_address_says_so(node, run, monkeypatch):
    monkeypatch.setattr(node.reach, "sendTelling", lambda target, body: fail(
        SelfConnection("connected to self")))
    reply = run("send 127.0.0.1:9000 hi")
    assert reply.error == ("send to 127.0.0.1:9000 failed: that address is "
                           "this node itself")
    assert reply.lines == [f"error: {reply.error}"]


def test_exit_stops_once_and_quit_is_exit(node):
    interpreter = Interpreter(node)
    reply = interpreter.run("exit")
    assert reply.ok and reply.lines == ["leaving the overlay"]
    assert reply.result == {"stopping": True}
    assert interpreter.run("quit").lines == []
    assert interpreter.stops == 1
    other = Interpreter(node)
    assert other.run("QUIT").lines == ["leaving the overlay"]


def test_known_lists_the_whole_address_book(node, run):
    assert run("known").lines == ["0 nodes known"]
    book = node.addressBook
    book.learn(DAVE, "10.0.0.4", 9004, "")
    assert run("known").lines[0] == "1 node known"
    addPeer(node, BOB, 9000, "bob")
    book.update(BOB, "127.0.0.1", 9000, "bob", CONNECTED)
    book.learn(CAROL, "10.0.0.3", 9003, "carol", lastSeen=1000.0)
    book.learn(DAVE, "10.0.0.4", 9004, "")
    book.setState(DAVE, DEAD)
    reply = run("known")
    assertJSONable(reply)
    assert reply.lines[0] == "3 nodes known"
    assert [p["node_id"] for p in reply.result["known"]] == [BOB, CAROL, DAVE]
    assert [p["state"] for p in reply.result["known"]] == [
        CONNECTED, KNOWN, DEAD]
    assert reply.lines[1].startswith("127.0.0.1:9000")
    assert reply.lines[1].endswith(" connected")
    assert "known, last seen " in reply.lines[2]
    assert " dead since " in reply.lines[3]


def test_peers_marks_direct_links(node, run):
    addPeer(node, BOB, 9000, "bob")
    info = node.peers.get(BOB)
    node.peers.add(replace(info, role=DIRECT), node.peers.connection(BOB))
    reply = run("peers")
    assert reply.lines[0].endswith("(direct link, not a neighbour)")
    assert reply.result["peers"][0]["role"] == DIRECT


def test_help_structured(run):
    reply = run("help")
    assert reply.lines == HELP.splitlines()
    names = [c["name"] for c in reply.result["commands"]]
    assert names == ["send", "broadcast", "lookup", "put", "get", "peers",
                     "known", "info", "help", "exit"]
    send = reply.result["commands"][0]
    assert send["usage"] == "send <peer> <message>"
    assert "\n" not in send["help"]


def test_a_handler_that_raises_is_a_failed_reply(node, monkeypatch):
    def broken(body):
        raise RuntimeError("boom")
    monkeypatch.setattr(node, "broadcast", broken)
    reply = Interpreter(node).run("broadcast x")
    assert not reply.ok
    assert reply.error == "broadcast failed: RuntimeError: boom"


# -- the command table -----------------------------------------------------------

class Extended(CommandInterpreter):
    @command("echo <text>", "say <text> back\nin one line", aliases=("say",))
    def do_echo(self, args):
        return Reply([args], {"text": args})


def test_a_new_command_is_one_method(node):
    interpreter = Interpreter(node, Extended)
    assert interpreter.run("echo hi there").lines == ["hi there"]
    assert interpreter.run("SAY x").result == {"text": "x"}
    help = interpreter.run("help").lines
    assert help[-2:] == ["  echo <text>             say <text> back",
                         "                          in one line"]
    assert [c["name"] for c in interpreter.run("help").result["commands"]][-1] == "echo"
    # The base interpreter is unchanged.
    assert Interpreter(node).run("echo hi").error.startswith("unknown command")


def test_formatHelp_aligns_every_line():
    from p2poverlay.commands import CommandSpec
    text = formatHelp([CommandSpec("a", "a <b>", "one\ntwo")])
    assert text.splitlines() == ["commands:", "  a <b>                   one",
                                 "                          two"]


# -- events ------------------------------------------------------------------------

def test_watcher_reports_messages_peers_and_warnings(node):
    events = []
    watcher = NodeWatcher(node, events.append)
    watcher.start()
    connection, _ = addPeer(node, BOB, 9000, "bob")
    receive(connection, Data(newMessageId(), "hi\nthere"),
            Broadcast(newMessageId(), DAVE, 3, "far", "dave"))
    connection.dataReceived(b"not json\n")
    kinds = [e.kind for e in events]
    assert kinds[:3] == ["connected", "message", "message"]
    assert "warning" in kinds
    connected, direct, broadcast = events[:3]
    assert connected.line == "* connected: 127.0.0.1:9000 (b0b00000 'bob')"
    assert connected.data["peer"]["node_id"] == BOB
    assert direct.line == "[direct] 127.0.0.1:9000 (b0b00000 'bob'): hi\nthere"
    assert direct.data["body"] == "hi\nthere"
    assert direct.data["sender"]["node_id"] == BOB
    assert broadcast.data["sender"] is None
    assert broadcast.data["sender_id"] == DAVE
    assert broadcast.data["via"]["node_id"] == BOB
    warning = events[kinds.index("warning")]
    assert warning.line.startswith("! ") and "not valid JSON" in warning.line
    for event in events:
        assert json.loads(json.dumps(event.data)) == event.data

    watcher.stop()
    del events[:]
    node.log.warn("unseen")
    receive(connection, Data(newMessageId(), "unseen"))
    assert events == []
    assert watcher not in node.observers


def test_a_subclass_made_after_the_base_ran_a_command_has_its_own_commands(node):
    assert Interpreter(node).run("quit-now").error.startswith("unknown command")

    class Later(CommandInterpreter):
        @command("quit-now", "stop at once", aliases=("q",))
        def do_quitNow(self, args):
            return Reply(["bye"], {})

        @command("info", "a different info")
        def do_myInfo(self, args):
            return Reply(["mine"], {})

    later = Interpreter(node, Later)
    assert later.run("q").lines == ["bye"]
    assert later.run("info").lines == ["mine"]
    assert Interpreter(node).run("q").error.startswith("unknown command")
    assert Interpreter(node).run("info").lines != ["mine"]
