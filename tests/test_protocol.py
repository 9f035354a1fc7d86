"""
Unit tests of L{PeerConnection}: a Node on a MemoryReactorClock (never
started) and connections over StringTransports, driven by hand.
"""

from dataclasses import dataclass, replace

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, formatEvent

from p2poverlay.errors import DeliveryFailed, HandshakeFailed, SelfConnection
from p2poverlay.message import (
    DIRECT, MAX_IDS, NEIGHBOUR, PROTOCOL_VERSION, Ack, Acks, Broadcast, Bye,
    Data, Hello, IHave, P2PMessage, PeerAddress, Peers, Ping, Pong, Prune,
    newMessageId,
)
from p2poverlay import Node, NodeConfig
from p2poverlay.protocol import CLOSE_GRACE, MAX_SLOWDOWN
from p2poverlay.reasons import SHUTTING_DOWN, CloseKind, CloseReason
from p2poverlay.records import INBOUND, OUTBOUND
from helpers import Recorder
from memory import (
    BOB, CAROL, PEER, connect, established, failureOf, lose, resultOf, send,
    written,
)

DAVE = "da4e" + "0" * 28
MAX_LINE = 256


# -- harness --------------------------------------------------------------------


@dataclass(frozen=True)
class Unhandled(P2PMessage):
    """A message type that no part of the node registered for."""


# Named only now: a TYPE given in the class body would make it a wire type.
Unhandled.TYPE = "UNHANDLED"


@pytest.fixture
def node():
    node = Node(NodeConfig(name="me", maxLineLength=MAX_LINE, handshakeTimeout=10.0,
                           ackTimeout=30.0, plaintext=True, dht=False),
                reactor=MemoryReactorClock())
    node.recorder = Recorder()
    node.addObserver(node.recorder)
    return node


def assertClosedWith(transport, reason):
    """The last message written is the only BYE, with C{reason}."""
    messages = written(transport)
    byes = [msg.reason for msg in messages if isinstance(msg, Bye)]
    assert byes == [reason], messages
    assert isinstance(messages[-1], Bye) and messages[-1].reason == reason
    assert transport.disconnecting


# -- connecting and the handshake -------------------------------------------------

def test_the_dialer_says_hello_first(node):
    connection, transport = connect(node, outbound=True)
    # It says where it sees the peer: here, the StringTransport's address.
    # Its routing by id is off (dht 0).
    assert written(transport) == [
        Hello(node.nodeId, PROTOCOL_VERSION, 0, "me", neighbours=0,
              observed="127.0.0.1:5555", dht=0)]
    assert connection.direction == OUTBOUND
    assert connection in node.connections
    assert not transport.disconnecting


def test_the_accepting_side_answers_hello_with_hello(node):
    connection, transport = connect(node, outbound=False)
    # Nothing until the dialer has said who it is and what it wants.
    assert written(transport) == []
    assert connection.direction == INBOUND
    assert connection in node.connections
    send(connection, Hello(BOB, PROTOCOL_VERSION, 9000, "bob", "direct"))
    assert written(transport)[0] == Hello(
        node.nodeId, PROTOCOL_VERSION, 0, "me", "direct", neighbours=0,
        observed="127.0.0.1:5555", dht=0)
    assert not transport.disconnecting


@pytest.mark.parametrize("outbound, direction", [(False, INBOUND), (True, OUTBOUND)])
def test_valid_hello_registers_the_peer(node, log, outbound, direction):
    connection, transport = connect(node, outbound=outbound)
    transport.clear()
    send(connection, Hello(BOB, PROTOCOL_VERSION, 9000, "bob"))
    if not outbound:
        # Its answer to our HELLO, and the verdict: accepted.
        # (Its HELLO counted no neighbours: the verdict came after.)
        assert written(transport) == [
            replace(node.connections.helloFor(connection), neighbours=0),
            Peers(())]
        transport.clear()

    info = node.peers.get(BOB)
    assert info is not None
    # The observed host with the announced port, never the source port.
    assert (info.host, info.port, info.name, info.direction) == (
        "127.0.0.1", 9000, "bob", direction)
    assert node.peers.connection(BOB) is connection
    assert connection.peer == info
    assert resultOf(connection.handshake) == info
    assert node.recorder.connected == [info]
    # No other peers: nothing to exchange, and the connection stays open.
    assert written(transport) == []
    assert not transport.disconnecting
    assert log.warnings() == []
    log.assertNoTracebacks()


@pytest.mark.parametrize("role, level", [(NEIGHBOUR, LogLevel.info),
                                         (DIRECT, LogLevel.debug)])
def test_a_neighbour_coming_and_going_is_logged_as_news_a_direct_link_not(
        node, log, role, level):
    connection, _ = connect(node)
    send(connection, Hello(BOB, PROTOCOL_VERSION, 9000, "bob", role=role))
    lose(connection)
    logged = [(e["log_level"], e["log_format"].split(":")[0])
              for e in log.events if "peer" in e.get("log_format", "")
              and "connected" in e["log_format"]]
    assert logged == [(level, "peer connected"),
                      (level, "peer disconnected")]


def test_hello_with_a_higher_version_speaks_ours(node):
    connection, _ = connect(node)
    send(connection, Hello(BOB, PROTOCOL_VERSION + 5, 9000))
    assert connection.peer is not None
    assert connection.version == PROTOCOL_VERSION


def test_new_peer_gets_the_other_peers_in_peers(node):
    alice, aliceTransport = established(node, "a11ce" + "0" * 27, 9001, "alice")
    established(node, CAROL, 0, "carol")  # Listens nowhere: not announced.
    established(node, DAVE, 9004, "dave", peer=IPv4Address("TCP", "10.0.0.5", 40000))

    bob, bobTransport = connect(node)
    bobTransport.clear()
    send(bob, Hello(BOB, PROTOCOL_VERSION, 9000, "bob"))

    hello, peers = written(bobTransport)
    # Said before bob counted: three neighbours.
    assert hello == replace(node.connections.helloFor(bob), neighbours=3)
    assert isinstance(peers, Peers)
    assert set(peers.peers) == {
        PeerAddress("a11ce" + "0" * 27, "127.0.0.1", 9001, "alice"),
        PeerAddress(DAVE, "10.0.0.5", 9004, "dave"),
    }
    # The exchange goes to the new peer only.
    assert written(aliceTransport) == []


def test_peer_not_on_loopback_is_not_told_of_loopback_peers(node):
    established(node, CAROL, 9003, "carol")
    established(node, DAVE, 9004, "dave", peer=IPv4Address("TCP", "10.0.0.5", 40000))
    connection, transport = connect(node, peer=IPv4Address("TCP", "10.0.0.9", 40001))
    transport.clear()
    send(connection, Hello(BOB, PROTOCOL_VERSION, 9000, "bob"))
    assert written(transport) == [
        replace(node.connections.helloFor(connection), neighbours=2),
        Peers((PeerAddress(DAVE, "10.0.0.5", 9004, "dave"),))]


@pytest.mark.parametrize("first, name", [
    (Data(newMessageId(), "sneaky"), "DATA"),
    (Ping(1), "PING"),
    (Peers(()), "PEERS"),
])
def test_non_hello_first_message_is_a_protocol_error(node, log, first, name):
    connection, transport = connect(node, outbound=True)
    send(connection, first)
    reason = f"protocol error: expected HELLO, got {name}"
    assertClosedWith(transport, reason)
    assert len(node.peers) == 0 and connection.peer is None
    assert node.recorder.messages == []
    lose(connection)
    error = failureOf(connection.handshake)
    assert error.check(HandshakeFailed)
    assert str(error.value) == reason
    assert [e["reason"] for e in log.warnings()] == [f"expected HELLO, got {name}"]
    log.assertNoTracebacks()


def test_hello_twice_is_a_protocol_error(node, log):
    connection, transport = established(node)
    send(connection, Hello(BOB, PROTOCOL_VERSION, 9000, "bob"))
    assertClosedWith(transport, "protocol error: HELLO sent twice")
    lose(connection)
    assert node.recorder.disconnected == [
        (connection.peer, "protocol error: HELLO sent twice")]
    assert BOB not in node.peers
    log.assertNoTracebacks()


def test_hello_twice_in_one_chunk_is_a_protocol_error(node):
    connection, transport = connect(node)
    transport.clear()
    hello = Hello(BOB, PROTOCOL_VERSION, 9000, "bob")
    send(connection, hello, hello)
    assertClosedWith(transport, "protocol error: HELLO sent twice")


def test_hello_with_our_own_id_on_an_inbound_connection_closes_quietly(node, log):
    connection, transport = connect(node)
    send(connection, Hello(node.nodeId, PROTOCOL_VERSION, 0, "me"))
    # Our HELLO, and no BYE: the other end is this node and reports it.
    assert written(transport) == [node.connections.helloFor(connection)]
    assert transport.disconnecting
    assert len(node.peers) == 0 and node.recorder.connected == []
    assert log.warnings() == []
    lose(connection)
    assert node.recorder.disconnected == []
    log.assertNoTracebacks()


def test_hello_with_our_own_id_on_an_outbound_connection_fails_the_dial(node, log):
    connection, transport = connect(node, outbound=True)
    send(connection, Hello(node.nodeId, PROTOCOL_VERSION, 0, "me"))
    assertClosedWith(transport, "connected to self")
    assert failureOf(connection.handshake).check(SelfConnection)
    assert len(node.peers) == 0
    lose(connection)
    log.assertNoTracebacks()


# -- the handshake timeout ---------------------------------------------------------

@pytest.mark.parametrize("outbound", [False, True])
def test_handshake_timeout(node, log, outbound):
    clock = node.reactor
    connection, transport = connect(node, outbound=outbound)
    clock.advance(node.config.handshakeTimeout - 0.5)
    # The accepting side waits for the dialer's HELLO before its own.
    assert written(transport) == ([node.connections.helloFor(connection)] if outbound else [])
    assert not transport.disconnecting

    assert log.warnings() == []

    clock.advance(0.5)
    assertClosedWith(transport, "handshake timeout")
    assert not transport.disconnected
    (warning,) = log.warnings()
    assert warning["reason"] == "handshake timeout"
    assert "127.0.0.1:5555" in warning["peer"]
    # A peer that never reads its BYE is cut off after the grace period.
    clock.advance(CLOSE_GRACE)
    assert transport.disconnected

    lose(connection)
    if outbound:
        error = failureOf(connection.handshake)
        assert error.check(HandshakeFailed)
        assert str(error.value) == "handshake timeout"
    assert clock.getDelayedCalls() == []
    assert len(node.connections) == 0
    log.assertNoTracebacks()


def test_handshake_timeout_is_cancelled_by_hello(node):
    connection, transport = established(node)
    node.reactor.advance(node.config.handshakeTimeout * 3)
    assert written(transport) == []
    assert not transport.disconnecting
    assert node.reactor.getDelayedCalls() == []


def test_late_hello_after_the_timeout_is_ignored(node):
    connection, transport = connect(node)
    node.reactor.advance(node.config.handshakeTimeout)
    send(connection, Hello(BOB, PROTOCOL_VERSION, 9000, "bob"))
    assert len(node.peers) == 0
    assertClosedWith(transport, "handshake timeout")


def test_lost_connection_leaves_no_timers(node):
    connection, transport = connect(node)
    lose(connection)
    assert node.reactor.getDelayedCalls() == []
    closing, _ = connect(node)
    closing.close(SHUTTING_DOWN)
    lose(closing)
    assert node.reactor.getDelayedCalls() == []


def expectedBye(reason: str) -> str:
    """
    The BYE for bad input: a protocol error, except a line over the limit,
    which closes that link with its own reason (an honest relay may have
    passed it on).
    """
    if reason.startswith("line longer than"):
        return reason
    return f"protocol error: {reason}"


# -- bad input ---------------------------------------------------------------------

# Starts with a byte that never occurs in UTF-8; no newline.
GARBAGE = bytes(range(255, 10, -1)) + bytes(range(10))
BAD_INPUT = [
    ("malformed-json", b'{"type":"PING","nonce":\n', "not valid JSON"),
    ("unknown-type", b'{"type":"GOSSIP","body":"x"}\n', "unknown message type 'GOSSIP'"),
    ("oversize-line", b'{"type":"DATA","body":"' + b"x" * MAX_LINE + b'"}\n',
     f"line longer than {MAX_LINE} bytes"),
    ("oversize-without-newline", b"y" * (MAX_LINE + 1),
     f"line longer than {MAX_LINE} bytes"),
    ("binary-garbage", GARBAGE[:MAX_LINE // 2] + b"\n",
     "not valid UTF-8"),
    ("invalid-utf8", b"\xc3\x28\n", "not valid UTF-8"),
    ("not-an-object", b"[1,2,3]\n", "message is not a JSON object"),
    ("mistyped-field", b'{"type":"PING","nonce":"1"}\n',
     "PING field 'nonce' must be an integer"),
]


@pytest.mark.parametrize("payload, reason",
                         [pytest.param(p, r, id=i) for i, p, r in BAD_INPUT])
@pytest.mark.parametrize("handshaken", [False, True], ids=["before-hello", "after-hello"])
def test_bad_input_closes_with_bye_and_a_warning(node, log, payload, reason,
                                                 handshaken):
    if handshaken:
        connection, transport = established(node)
        name = BOB[:8]
    else:
        connection, transport = connect(node)
        transport.clear()
        name = "127.0.0.1:5555"

    connection.dataReceived(payload)  # Must not raise.

    assertClosedWith(transport, expectedBye(reason))
    (warning,) = log.warnings()
    assert warning["log_level"] == LogLevel.warn
    assert warning["reason"] == reason
    assert name in warning["peer"]
    assert reason in formatEvent(warning)
    # Whatever comes after is ignored, without a second BYE or warning.
    connection.dataReceived(b"z" * (MAX_LINE * 2))
    connection.dataReceived(b"more garbage\n" + b"z" * (MAX_LINE * 2) + b"\n")
    send(connection, Hello(BOB, PROTOCOL_VERSION, 9000), Ping(1))
    assertClosedWith(transport, expectedBye(reason))
    assert len(log.warnings()) == 1, [e["reason"] for e in log.warnings()]

    lose(connection)
    if handshaken:
        assert node.recorder.disconnected == [
            (connection.peer, expectedBye(reason))]
    assert len(node.peers) == 0
    assert node.reactor.getDelayedCalls() == []
    log.assertNoTracebacks()


def test_oversize_line_split_over_several_chunks(node, log):
    connection, transport = established(node)
    chunk = b"x" * 16
    assert MAX_LINE % len(chunk) == 0
    for _ in range(MAX_LINE // len(chunk)):
        connection.dataReceived(chunk)
    # MAX_LINE bytes without a newline may still become a valid line.
    assert not transport.disconnecting
    connection.dataReceived(b"x")
    assertClosedWith(transport, f"line longer than {MAX_LINE} bytes")


def test_line_of_exactly_the_maximum_length_is_accepted(node):
    connection, transport = established(node)
    line = Ping(0).encode()
    line = line[:-1] + b" " * (MAX_LINE - len(line)) + b"}"
    assert len(line) == MAX_LINE
    connection.dataReceived(line + b"\n")
    assert written(transport) == [Pong(0, neighbours=1)]


def test_lines_after_a_bad_line_in_the_same_chunk_are_not_processed(node, log):
    connection, transport = established(node)
    messageId = newMessageId()
    connection.dataReceived(
        b"not json\n" + Data(messageId, "after").encode() + b"\n"
        + Ping(7).encode() + b"\n")
    assert node.recorder.messages == []
    assertClosedWith(transport, "protocol error: not valid JSON")
    assert not any(isinstance(msg, (Ack, Pong)) for msg in written(transport))
    log.assertNoTracebacks()


def test_lines_after_an_oversize_line_in_the_same_chunk_are_not_processed(node):
    connection, transport = established(node)
    connection.dataReceived(
        b"x" * (MAX_LINE + 1) + b"\n" + Data(newMessageId(), "after").encode()
        + b"\n")
    assert node.recorder.messages == []
    assertClosedWith(transport, f"line longer than {MAX_LINE} bytes")


def test_hello_after_a_bad_line_in_the_same_chunk_is_not_processed(node):
    connection, transport = connect(node)
    connection.dataReceived(
        b"{}\n" + Hello(BOB, PROTOCOL_VERSION, 9000).encode() + b"\n")
    assert len(node.peers) == 0
    assert node.recorder.connected == []
    assert written(transport)[-1].reason == \
        "protocol error: missing or non-string 'type'"


def test_unexpected_message_type_after_the_handshake_is_a_protocol_error(node, log):
    """A message the node does not handle is a protocol error, not a crash."""
    connection, transport = established(node)
    node.connections.messageReceived(connection, Unhandled())
    assertClosedWith(transport, "protocol error: unexpected UNHANDLED")


# -- messages on an established connection -----------------------------------------

def test_ping_is_answered_by_pong_with_the_same_nonce(node):
    connection, transport = established(node)
    send(connection, Ping(42), Ping(0), Ping(2 ** 53 - 1))
    assert written(transport) == [
        Pong(n, neighbours=1) for n in (42, 0, 2 ** 53 - 1)]


def test_pong_is_not_answered_but_counts_as_heard(node):
    connection, transport = established(node)
    node.reactor.advance(7)
    send(connection, Pong(1))
    assert written(transport) == []
    assert connection.lastHeard == 7
    assert not transport.disconnecting


def test_data_is_delivered_once_and_acked_every_time(node, log):
    connection, transport = established(node)
    messageId = newMessageId()
    send(connection, Data(messageId, "hi"))
    assert written(transport) == [Ack(messageId)]
    (received,) = node.recorder.messages
    assert (received.kind, received.message_id, received.body) == (
        "direct", messageId, "hi")
    assert received.sender_id == BOB
    assert received.sender == received.via == connection.peer

    # Two in one read: one ACKS confirms both (protocol version 2).
    send(connection, Data(messageId, "hi"), Data(messageId, "hi again"))
    assert node.recorder.bodies() == ["hi"]
    assert written(transport) == [Ack(messageId), Acks((messageId,) * 2)]
    assert node.stats.directDelivered == 1

    other = newMessageId()
    send(connection, Data(other, "second"))
    assert node.recorder.bodies() == ["hi", "second"]
    assert written(transport)[-1] == Ack(other)
    log.assertNoTracebacks()


def test_data_repeated_over_another_connection_is_delivered_once(node):
    bob, bobTransport = established(node, BOB)
    carol, carolTransport = established(node, CAROL, 9003, "carol")
    messageId = newMessageId()
    send(bob, Data(messageId, "once"))
    send(carol, Data(messageId, "once"))
    assert node.recorder.bodies() == ["once"]
    assert written(bobTransport) == written(carolTransport) == [Ack(messageId)]


def test_broadcast_is_delivered_once_and_relayed(node):
    bob, bobTransport = established(node, BOB)
    carol, carolTransport = established(node, CAROL, 9003, "carol")
    message = Broadcast(newMessageId(), DAVE, 5, "to all", "dave")
    send(bob, message, message)
    (received,) = node.recorder.messages
    assert (received.kind, received.body, received.sender_id, received.sender_name) \
        == ("broadcast", "to all", DAVE, "dave")
    assert received.via == bob.peer
    assert written(carolTransport) == [Broadcast(message.id, DAVE, 4, "to all", "dave")]
    # The duplicate came over bob's link: it leaves the broadcast tree.
    assert written(bobTransport) == [Prune()]


def test_send_data_fires_on_ack(node, log):
    connection, transport = established(node)
    message = Data(newMessageId(), "hello")
    d = node.direct.sendData(connection, message)
    assert written(transport) == [message]
    assert not d.called
    send(connection, Ack(newMessageId()))  # Someone else's: ignored.
    assert not d.called
    send(connection, Ack(message.id))
    assert resultOf(d) == connection.peer
    # A duplicate ACK is harmless.
    send(connection, Ack(message.id))
    assert not transport.disconnecting
    assert node.reactor.getDelayedCalls() == []
    log.assertNoTracebacks()


def test_send_data_fails_after_the_ack_timeout(node, log):
    connection, transport = established(node)
    message = Data(newMessageId(), "hello")
    d = node.direct.sendData(connection, message)
    node.reactor.advance(node.config.ackTimeout - 0.5)
    assert not d.called
    node.reactor.advance(0.5)
    error = failureOf(d)
    assert error.check(DeliveryFailed)
    assert "did not confirm delivery within 30 s" in str(error.value)
    assert BOB[:8] in str(error.value)
    # A late ACK changes nothing and does not close the connection.
    send(connection, Ack(message.id))
    assert not transport.disconnecting
    log.assertNoTracebacks()


def test_send_data_fails_when_the_connection_is_lost(node, log):
    connection, transport = established(node)
    first = node.direct.sendData(connection, Data(newMessageId(), "one"))
    second = node.direct.sendData(connection, Data(newMessageId(), "two"))
    lose(connection)
    for d in (first, second):
        error = failureOf(d)
        assert error.check(DeliveryFailed)
        assert "closed before delivery was confirmed (connection lost)" \
            in str(error.value)
    # The ACK timers went with the connection.
    assert node.reactor.getDelayedCalls() == []
    log.assertNoTracebacks()


def test_send_data_fails_with_the_peers_reason_when_it_says_bye(node):
    connection, transport = established(node)
    d = node.direct.sendData(connection, Data(newMessageId(), "one"))
    send(connection, Bye("going away"))
    lose(connection)
    assert "(going away)" in str(failureOf(d).value)


def test_send_data_on_a_closing_connection_fails_at_once(node):
    connection, transport = established(node)
    connection.close(SHUTTING_DOWN)
    transport.clear()
    error = failureOf(node.direct.sendData(connection, Data(newMessageId(), "late")))
    assert error.check(DeliveryFailed)
    assert "is closing" in str(error.value)
    assert written(transport) == []


def test_bye_from_the_peer_closes_and_reports_its_reason(node, log):
    connection, transport = established(node)
    messageId = newMessageId()
    send(connection, Bye("node shutting down"), Data(messageId, "after bye"))
    # No BYE in answer, and nothing after the BYE is processed.
    assert written(transport) == []
    assert transport.disconnecting
    assert node.recorder.messages == []
    lose(connection)
    assert node.recorder.disconnected == [(connection.peer, "node shutting down")]
    assert BOB not in node.peers
    assert log.warnings() == []
    log.assertNoTracebacks()


def test_bye_without_a_reason_reports_peer_left(node):
    connection, transport = established(node)
    send(connection, Bye())
    lose(connection)
    assert node.recorder.disconnected == [(connection.peer, "peer left")]


def test_our_close_reason_is_reported_on_disconnect(node):
    connection, transport = established(node)
    connection.close(SHUTTING_DOWN)
    assert written(transport) == [Bye("node shutting down", "shutdown")]
    lose(connection)
    assert node.recorder.disconnected == [(connection.peer, "node shutting down")]


def test_close_truncates_a_long_reason_to_a_valid_bye(node):
    connection, transport = established(node)
    connection.close(CloseReason(CloseKind.PROTOCOL_ERROR, "r" * 500))
    (bye,) = written(transport)  # written() decodes, so the BYE is valid.
    assert bye == Bye(("protocol error: " + "r" * 500)[:200], "protocol_error")


def test_connection_lost_without_bye(node):
    connection, transport = established(node)
    lose(connection)
    assert node.recorder.disconnected == [(connection.peer, "connection lost")]
    assert connection not in node.connections


def test_when_closed_fires_on_connection_lost(node):
    connection, _ = established(node)
    closed = connection.whenClosed()
    assert not closed.called
    lose(connection)
    assert resultOf(closed) is None


@pytest.mark.parametrize("flood", [
    lambda: [IHave(tuple(newMessageId() for _ in range(MAX_IDS)))
             for _ in range(6)],
    lambda: [Peers(tuple(PeerAddress(newMessageId(), "10.9.9.9", 9000 + i, "")
                         for i in range(100))) for _ in range(11)],
], ids=["IHAVE", "PEERS"])
def test_a_peer_past_its_id_or_address_budget_is_read_more_slowly(flood):
    node = Node(NodeConfig(name="me"), reactor=MemoryReactorClock())
    node.topology.start()  # Takes in addresses, as a started node does.
    connection, transport = established(node)
    send(connection, *flood())
    # Paused, neither closed nor held against it; read again a moment later.
    assert transport.producerState == "paused"
    assert not transport.disconnecting
    assert node.misbehaviour.score(PEER.host) == 0
    node.reactor.advance(MAX_SLOWDOWN)
    assert transport.producerState == "producing"
    send(connection, Ping(5))
    assert Pong(5, neighbours=1) in written(transport)
