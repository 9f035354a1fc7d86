"""
Flow control of direct messages, in memory: the window of each connection,
the node's bounded backlog, and how the console, the control endpoint and
an attached client hold their input back while it is high.  A Node on a
MemoryReactorClock (never started) whose peers are StringTransports.
"""

from __future__ import annotations

import json

import pytest
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from p2poverlay.client import MAX_UNANSWERED, AttachedConsole
from p2poverlay.config import ConfigError
from p2poverlay.console import ConsoleProtocol
from p2poverlay.control import ControlFactory
from p2poverlay.controlclient import ControlClientProtocol
from p2poverlay.errors import DeliveryFailed, SendQueueFull
from p2poverlay.message import Ack, Data
from p2poverlay.node import Node, NodeConfig
from p2poverlay.sendwindow import Backlog
from memory import BOB, established, failureOf, lose, resultOf, send, written


def makeNode(**config) -> Node:
    config.setdefault("ackTimeout", 30.0)
    return Node(NodeConfig(name="me", dht=False, **config),
                reactor=MemoryReactorClock())


def dataOf(transport: StringTransport):
    return [m for m in written(transport) if isinstance(m, Data)]


def ackAll(connection, transport, messages):
    send(connection, *(Ack(m.id) for m in messages))


# -- the window ---------------------------------------------------------------

def test_never_more_than_the_window_unconfirmed_and_the_rest_in_order():
    node = makeNode(sendWindow=4)
    connection, transport = established(node)
    sends = [node.send(BOB, f"m{i}") for i in range(10)]
    assert [m.body for m in dataOf(transport)] == ["m0", "m1", "m2", "m3"]
    assert len(node.direct.unconfirmed(connection)) == 4
    assert len(node.direct.waiting(connection)) == 6
    assert node.sendBacklog == 6
    seen = []
    while len(seen) < 10:
        out = dataOf(transport)
        transport.clear()
        seen += out
        assert len(node.direct.unconfirmed(connection)) <= 4
        # Confirm the newest first: the window opens all the same.
        if node.direct.unconfirmed(connection):
            newest = node.direct.unconfirmed(connection)[-1]
            send(connection, Ack(newest))
    assert [m.body for m in seen] == [f"m{i}" for i in range(10)]
    for message in seen:
        send(connection, Ack(message.id))
    assert all(resultOf(d) == connection.peer for d in sends)
    assert node.sendBacklog == 0
    assert not node.direct.awaitingAcks(connection)
    assert node.reactor.getDelayedCalls() == []


def test_the_window_is_bounded_in_bytes_too():
    node = makeNode(sendWindow=100, maxSendBuffer=4000)  # 1000 bytes a window
    connection, transport = established(node)
    sends = [node.send(BOB, "x" * 400) for _ in range(4)]
    assert len(dataOf(transport)) == 2
    ackAll(connection, transport, dataOf(transport))
    assert len(dataOf(transport)) == 4
    ackAll(connection, transport, dataOf(transport)[2:])
    assert all(resultOf(d) for d in sends)


def test_one_message_over_the_byte_window_still_goes_alone():
    node = makeNode(maxSendBuffer=400)  # 100 bytes a window
    connection, transport = established(node)
    first = node.send(BOB, "x" * 200)
    second = node.send(BOB, "y" * 200)
    assert [m.body[0] for m in dataOf(transport)] == ["x"]
    ackAll(connection, transport, dataOf(transport))
    assert resultOf(first) == connection.peer
    assert [m.body[0] for m in dataOf(transport)] == ["x", "y"]
    ackAll(connection, transport, dataOf(transport)[1:])
    assert resultOf(second) == connection.peer


def test_the_ack_timeout_counts_from_when_a_message_is_written():
    node = makeNode(sendWindow=1)
    connection, transport = established(node)
    first = node.send(BOB, "one")
    second = node.send(BOB, "two")
    node.reactor.advance(20)
    send(connection, Ack(dataOf(transport)[0].id))
    assert resultOf(first) == connection.peer
    assert [m.body for m in dataOf(transport)] == ["one", "two"]
    node.reactor.advance(29.5)
    assert not second.called
    node.reactor.advance(0.5)
    error = failureOf(second)
    assert error.check(DeliveryFailed)
    assert "did not confirm delivery within 30 s" in str(error.value)


def test_a_timed_out_message_lets_the_next_one_go():
    node = makeNode(sendWindow=1)
    connection, transport = established(node)
    first = node.send(BOB, "one")
    second = node.send(BOB, "two")
    node.reactor.advance(30)
    failureOf(first)
    assert [m.body for m in dataOf(transport)] == ["one", "two"]
    send(connection, Ack(dataOf(transport)[1].id))
    assert resultOf(second) == connection.peer


# -- the backlog limit ------------------------------------------------------------

def test_past_the_queue_limit_send_fails_at_once_naming_it():
    node = makeNode(sendWindow=1, sendQueueLimit=3)
    connection, transport = established(node)
    sends = [node.send(BOB, f"m{i}") for i in range(4)]  # 1 written, 3 wait
    assert node.sendBacklog == 3
    error = failureOf(node.send(BOB, "one too many"))
    assert error.check(SendQueueFull)
    assert str(error.value) == (
        "3 messages already wait to be sent (the send queue limit): try "
        "again once some are delivered")
    assert "\n" not in str(error.value)
    # Once one is written, there is room again.
    send(connection, Ack(dataOf(transport)[0].id))
    later = node.send(BOB, "later")
    for _ in range(4):
        send(connection, Ack(dataOf(transport)[-1].id))
    assert [m.body for m in dataOf(transport)] == [
        "m0", "m1", "m2", "m3", "later"]
    assert all(resultOf(d) for d in sends + [later])
    assert node.sendBacklog == 0


def test_a_message_that_cannot_be_routed_takes_no_room():
    node = makeNode(sendQueueLimit=1)
    failureOf(node.send("nobody", "x"))
    assert node.sendBacklog == 0


def test_messages_waiting_on_a_dial_count_and_fail_with_it():
    node = makeNode(sendQueueLimit=2)
    first = node.send("127.0.0.1:9", "one")
    second = node.send("127.0.0.1:9", "two")
    assert node.sendBacklog == 2
    assert failureOf(node.send("127.0.0.1:9", "three")).check(SendQueueFull)
    # The dial fails: both fail with it, and the room is back.
    (dial,) = node.reactor.tcpClients
    dial[2].clientConnectionFailed(None, Failure(ConnectionRefusedError()))
    node.reactor.advance(node.config.connectTimeout)
    for d in (first, second):
        assert "cannot reach 127.0.0.1:9" in str(failureOf(d).value)
    assert node.sendBacklog == 0


# -- connections that close -----------------------------------------------------------

def test_close_fails_every_message_unconfirmed_or_waiting_with_its_reason():
    node = makeNode(sendWindow=2)
    connection, transport = established(node)
    sends = [node.send(BOB, f"m{i}") for i in range(5)]
    lose(connection)
    for d in sends:
        error = failureOf(d)
        assert error.check(DeliveryFailed)
        assert "closed before delivery was confirmed (connection lost)" in \
            str(error.value)
    assert node.sendBacklog == 0
    assert node.reactor.getDelayedCalls() == []


def test_close_moves_every_message_in_order_to_the_peers_other_connection():
    # The lower id's outbound connection wins: ours, once BOB dials too.
    node = Node(NodeConfig(name="me", sendWindow=2, plaintext=True, dht=False),
                nodeId="a" * 32,
                reactor=MemoryReactorClock())
    old, oldTransport = established(node)
    sends = [node.send(BOB, f"m{i}") for i in range(5)]
    send(old, Ack(dataOf(oldTransport)[0].id))  # m0 is confirmed.
    assert resultOf(sends[0]) == old.peer
    new, newTransport = established(node, outbound=True)
    assert node.peers.connection(BOB) is new
    lose(old)
    # m1 and m2 were unconfirmed on the old one: resent first, then m3, m4.
    assert [m.body for m in dataOf(newTransport)] == ["m1", "m2"]
    assert len(node.direct.waiting(new)) == 2
    while not all(d.called for d in sends):
        send(new, Ack(node.direct.unconfirmed(new)[0]))
    assert [m.body for m in dataOf(newTransport)] == ["m1", "m2", "m3", "m4"]
    assert all(resultOf(d) == new.peer for d in sends[1:])
    assert node.sendBacklog == 0


# -- Backlog ------------------------------------------------------------------------

def test_backlog_tells_front_ends_to_go_on_at_the_low_water_mark():
    clock = MemoryReactorClock()
    backlog = Backlog(limit=100, highWater=4, clock=clock)
    for _ in range(3):
        backlog.add()
    assert resultOf(backlog.whenRoom()) is None  # Below the high-water mark.
    backlog.add()
    room = backlog.whenRoom()
    assert not room.called
    backlog.remove()
    clock.advance(0)
    assert not room.called  # 3: above the low-water mark (2).
    backlog.remove()
    assert not room.called  # On the clock's next turn, not within remove.
    clock.advance(0)
    assert resultOf(room) is None


def test_backlog_marks_never_exceed_the_limit():
    backlog = Backlog(limit=1, highWater=512, clock=MemoryReactorClock())
    assert (backlog.highWater, backlog.lowWater) == (1, 0)


# -- the console ------------------------------------------------------------------------

class Console:
    def __init__(self, node):
        self.protocol = ConsoleProtocol(node, stop=lambda: None)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)

    def lines(self):
        return self.transport.value().decode().split("\n")[:-1]


def test_console_stops_reading_while_the_backlog_is_high():
    node = makeNode(sendWindow=1)  # High water 2, low water 1.
    connection, transport = established(node)
    console = Console(node)
    console.protocol.dataReceived(b"".join(
        f"send bob m{i}\n".encode() for i in range(8)) + b"peers\n")
    # m0 written, m1 and m2 wait: the rest is held, unread.
    assert console.transport.producerState == "paused"
    assert [m.body for m in dataOf(transport)] == ["m0"]
    assert node.sendBacklog == 2
    while console.transport.producerState == "paused" or \
            node.direct.unconfirmed(connection):
        send(connection, Ack(node.direct.unconfirmed(connection)[0]))
        node.reactor.advance(0)
    assert [m.body for m in dataOf(transport)] == [f"m{i}" for i in range(8)]
    lines = console.lines()
    assert lines.count("delivered to 127.0.0.1:9000 (b0b00000 'bob')") == 8
    # The command typed after the sends was held back behind them.
    (peers,) = [i for i, line in enumerate(lines)
                if line.startswith("127.0.0.1:9000")]
    assert lines[:peers].count("delivered to 127.0.0.1:9000 (b0b00000 'bob')") >= 5
    assert console.transport.producerState == "producing"


def test_console_end_of_input_waits_for_the_lines_held_back():
    node = makeNode(sendWindow=1)
    connection, transport = established(node)
    console = Console(node)
    console.protocol.dataReceived(b"".join(
        f"send bob m{i}\n".encode() for i in range(5)))
    console.protocol.readConnectionLost()
    assert not console.transport.disconnecting
    while node.direct.unconfirmed(connection):
        send(connection, Ack(node.direct.unconfirmed(connection)[0]))
        node.reactor.advance(0)
    assert [m.body for m in dataOf(transport)] == [f"m{i}" for i in range(5)]
    assert console.lines()[-1].startswith("end of input: console detached")
    assert console.transport.disconnecting


def test_console_at_a_terminal_is_not_held_back():
    """A transport that is no producer (the line editor's) is never paused."""
    node = makeNode(sendWindow=1)
    established(node)

    class Printer:
        def __init__(self):
            self.data = b""
            self.disconnecting = False

        def write(self, data):
            self.data += data

    printer = Printer()
    protocol = ConsoleProtocol(node, stop=lambda: None)
    protocol.makeConnection(printer)
    protocol.dataReceived(b"send bob a\nsend bob b\nsend bob c\npeers\n")
    assert not protocol.paused
    assert b"127.0.0.1:9000" in printer.data  # 'peers' answered at once.


# -- the control endpoint ----------------------------------------------------------------

def controlClient(node):
    factory = ControlFactory(node, lambda: None)
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def request(i, command):
    return json.dumps({"id": i, "command": command}).encode() + b"\n"


def replies(transport):
    messages = [json.loads(line) for line in transport.value().split(b"\n")[:-1]]
    return [m for m in messages if m.get("type") == "reply"]


def test_control_connection_is_not_read_while_the_backlog_is_high():
    node = makeNode(sendWindow=1)
    connection, transport = established(node)
    protocol, controlTransport = controlClient(node)
    protocol.dataReceived(b"".join(request(i, f"send bob m{i}")
                                   for i in range(6)))
    assert controlTransport.producerState == "paused"
    assert node.sendBacklog == 2
    # The client reads slowly too: reading goes on only once both allow it.
    protocol.pauseProducing()
    send(connection, Ack(node.direct.unconfirmed(connection)[0]))
    send(connection, Ack(node.direct.unconfirmed(connection)[0]))
    node.reactor.advance(0)
    assert controlTransport.producerState == "paused"
    assert node.sendBacklog == 0
    protocol.resumeProducing()
    assert node.sendBacklog == 2  # m3 and m4 were read, and wait.
    while node.direct.unconfirmed(connection):
        send(connection, Ack(node.direct.unconfirmed(connection)[0]))
        node.reactor.advance(0)
    assert [m.body for m in dataOf(transport)] == [f"m{i}" for i in range(6)]
    answers = replies(controlTransport)
    assert sorted(r["id"] for r in answers) == list(range(6))
    assert all(r["ok"] for r in answers)
    assert controlTransport.producerState == "producing"


def test_control_pause_for_slow_reading_alone_still_resumes():
    node = makeNode()
    protocol, transport = controlClient(node)
    protocol.pauseProducing()
    assert transport.producerState == "paused"
    protocol.resumeProducing()
    assert transport.producerState == "producing"


# -- the attached client ------------------------------------------------------------------

def test_attached_client_keeps_a_bounded_number_of_requests_unanswered():
    client = ControlClientProtocol()
    client.makeConnection(StringTransport())
    console = AttachedConsole(client, False, 60.0, MemoryReactorClock())
    stdio = StringTransport()
    console.makeConnection(stdio)
    total = MAX_UNANSWERED + 200
    console.dataReceived(b"".join(b"send bob m%d\n" % i for i in range(total)))
    assert client.unanswered == MAX_UNANSWERED
    assert stdio.producerState == "paused"
    answered = 0
    while answered < total:
        answered += 1
        client.lineReceived(json.dumps({
            "type": "reply", "id": answered, "ok": True,
            "lines": [f"delivered {answered}"]}).encode())
        assert client.unanswered <= MAX_UNANSWERED
    assert client.unanswered == 0
    assert stdio.producerState == "producing"
    assert stdio.value().decode().split("\n")[:-1] == [
        f"delivered {i}" for i in range(1, total + 1)]
    sent = [json.loads(line)["command"]
            for line in client.transport.value().split(b"\n")[:-1]]
    assert sent == [f"send bob m{i}" for i in range(total)]


@pytest.mark.parametrize("field", ["sendWindow", "sendQueueLimit"])
def test_flow_settings_are_counts(field):
    with pytest.raises(ConfigError, match=f"{field} must be a whole number"):
        NodeConfig(**{field: 0}).check()
