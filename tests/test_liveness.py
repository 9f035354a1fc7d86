"""
Unit tests of failure detection, redialing, the outbox and the address book.

Everything runs on a MemoryReactorClock: a started node listens on a fake
port, its peers are PeerConnections over StringTransports driven by hand, and
the PeerLinks that redial lost peers show up as C{connectTCP} calls in the
reactor's C{tcpClients}, which the tests make succeed or fail.
"""

from __future__ import annotations


import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import succeed
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.interfaces import (
    IHostnameResolver, IHostResolution, IListeningPort,
)
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from zope.interface import implementer

from p2poverlay.addressbook import AddressBook
from p2poverlay.records import CONNECTED, DEAD, KNOWN, LEFT, RECONNECTING
from p2poverlay.errors import DeliveryFailed
from p2poverlay.message import (
    PROTOCOL_VERSION, Ack, Broadcast, Bye, Data, Hello, Ping, Pong,
    newMessageId,
)
from p2poverlay.closing import STOP_GRACE
from p2poverlay import Node, NodeConfig
from p2poverlay.outbox import Outbox
from p2poverlay.reconnect import PeerLink
import memory
from helpers import Recorder
from memory import BOB, CAROL, failureOf, lose, resultOf, send, written

# Bob dials in from an ephemeral source port and listens on BOB_PORT.
BOB_SOURCE = IPv4Address("TCP", "10.0.0.5", 40000)
BOB_PORT = 9000
BOB_LISTENS = ("10.0.0.5", BOB_PORT)
CAROL_SOURCE = IPv4Address("TCP", "10.0.0.7", 40001)
CAROL_PORT = 9003
# HostnameEndpoint reports a failed dial once it has no address left to try,
# which it notices one attempt delay after the dial began.
ATTEMPT_DELAY = HostnameEndpoint._DEFAULT_ATTEMPT_DELAY

LIVENESS = dict(name="me", listen="tcp:7000", pingInterval=1.0,
                peerTimeout=5.0, reconnectInitialDelay=1.0,
                reconnectMaxDelay=8.0, forgetAfter=1000.0,
                plaintext=True,  # Its dials are read as written.
                dht=False)


# -- harness ------------------------------------------------------------------


@pytest.fixture(autouse=True)
def noTracebacks(log):
    """Fail a test that logs a failure (e.g. an unhandled failed Deferred)."""
    yield
    log.assertNoTracebacks()


@implementer(IHostResolution)
class _Resolution:
    def __init__(self, name):
        self.name = name

    def cancel(self):
        pass


@implementer(IHostnameResolver)
class LiteralResolver:
    """
    Resolves an IPv4 literal to itself.  (MemoryReactor's own resolver turns
    every name into 127.0.0.1, which would hide which host a link dials.)
    """

    def resolveHostName(self, receiver, hostName, portNumber=0,
                        addressTypes=None, transportSemantics="TCP"):
        resolution = _Resolution(hostName)
        receiver.resolutionBegan(resolution)
        receiver.addressResolved(IPv4Address("TCP", hostName, portNumber))
        receiver.resolutionComplete()
        return resolution


@implementer(IListeningPort)
class Port:
    """A fake listening port whose stopListening returns a Deferred."""

    def __init__(self, address):
        self.address = address
        self.listening = True

    def startListening(self):
        pass

    def stopListening(self):
        self.listening = False
        return succeed(None)

    def getHost(self):
        return self.address


class Reactor(MemoryReactorClock):
    """
    A MemoryReactorClock whose dials keep their host and whose ports stop
    with a Deferred (see test_stop_service_accepts_a_port_that_stops_at_once
    for why the stock fake port does not do here).
    """

    def __init__(self):
        super().__init__()
        self.installNameResolver(LiteralResolver())

    def listenTCP(self, port, factory, backlog=50, interface=""):
        super().listenTCP(port, factory, backlog, interface)
        return Port(IPv4Address("TCP", interface or "0.0.0.0", port))


def connect(node, peer=BOB_SOURCE, outbound=False):
    return memory.connect(node, outbound=outbound, peer=peer)


def established(node, nodeId=BOB, port=BOB_PORT, name="bob", peer=BOB_SOURCE):
    """An inbound connection that completed its handshake; transport cleared."""
    return memory.established(node, nodeId, port, name, peer=peer)


def dials(reactor):
    """The (host, port) of every connectTCP so far."""
    return [(host, port) for host, port, *_ in reactor.tcpClients]


def failDial(reactor):
    """The latest dial is refused; its link schedules its next try."""
    reactor.advance(ATTEMPT_DELAY)
    factory = reactor.tcpClients[-1][2]
    factory.clientConnectionFailed(
        reactor.connectors[-1], Failure(ConnectionRefusedError()))
    reactor.advance(0)  # Anything the link put off to the next turn.


def acceptDial(reactor, address=BOB_LISTENS):
    """The latest dial connects; returns its protocol and transport."""
    peer = IPv4Address("TCP", *address)
    wrapper = reactor.tcpClients[-1][2].buildProtocol(peer)
    transport = StringTransport(peerAddress=peer)
    wrapper.makeConnection(transport)
    return wrapper, transport


def stopNode(node):
    """Stop a started node; every Deferred of the stop settles."""
    d = node.stopService()
    # StringTransports never report their closing: do it for them.
    for connection in list(node.connections):
        lose(connection)
    node.reactor.advance(STOP_GRACE)
    assert resultOf(d) is None
    assert not node.membership._liveness.running
    assert node.membership.links == {}


@pytest.fixture
def started():
    """Make started nodes on a memory reactor; all are stopped afterwards."""
    nodes = []

    def make(**overrides):
        node = Node(NodeConfig(**dict(LIVENESS, **overrides)),
                    reactor=Reactor())
        node.recorder = Recorder()
        node.addObserver(node.recorder)
        node.startService()
        assert node.listenPort == 7000
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        if node.running:
            stopNode(node)


class FixedJitter:
    """Stands in for a node's source of random numbers (redial jitter)."""

    def __init__(self, pick=max):
        self.pick = pick
        self.calls = []

    def uniform(self, low, high):
        self.calls.append((low, high))
        return self.pick(low, high)


def silentPeerLost(node, connection):
    """Let C{connection}'s peer go silent until it is dropped, then lose it."""
    reactor = node.reactor
    while not connection.closing:
        reactor.advance(node.config.pingInterval)
    assert connection.closeReason.text.startswith("no response")
    lose(connection)


# -- failure detection -----------------------------------------------------------


def test_every_peer_is_pinged_every_interval(started):
    node = started()
    reactor = node.reactor
    bob, bobTransport = established(node)
    carol, carolTransport = established(node, CAROL, CAROL_PORT, "carol",
                                        CAROL_SOURCE)
    reactor.advance(0.5)
    assert written(bobTransport) == written(carolTransport) == []
    reactor.advance(0.5)
    nonces = []
    for second in range(1, 5):
        if second > 1:
            reactor.advance(1)
        (bobPing,) = written(bobTransport)
        (carolPing,) = written(carolTransport)
        assert isinstance(bobPing, Ping) and bobPing == carolPing
        nonces.append(bobPing.nonce)
        bobTransport.clear()
        carolTransport.clear()
        send(bob, Pong(bobPing.nonce))
        send(carol, Pong(carolPing.nonce))
    # A fresh nonce each round.
    assert len(set(nonces)) == 4
    assert not bobTransport.disconnecting and not carolTransport.disconnecting


@pytest.mark.parametrize("answer", [
    pytest.param(lambda nonce: Pong(nonce), id="pong"),
    pytest.param(lambda nonce: Ping(1000 + nonce), id="ping"),
])
def test_peer_that_answers_stays_connected(started, answer):
    node = started()
    reactor = node.reactor
    connection, transport = established(node)
    for second in range(1, 31):
        reactor.advance(1)
        pings = [m for m in written(transport) if isinstance(m, Ping)]
        assert len(pings) == 1, (second, written(transport))
        transport.clear()
        send(connection, answer(pings[0].nonce))
    assert reactor.seconds() == 30
    assert not transport.disconnecting
    assert not connection.closing
    assert node.peers.connection(BOB) is connection
    assert node.recorder.disconnected == []
    assert reactor.tcpClients == []
    assert node.membership.book.get(BOB).state == CONNECTED


def test_peer_heard_just_within_the_timeout_stays(started):
    node = started()
    reactor = node.reactor
    connection, transport = established(node)
    # Heard every 4 s: at most 4 s of silence at any check.
    for second in range(1, 29):
        reactor.advance(1)
        if second % 4 == 0:
            send(connection, Pong(0))
    assert not connection.closing
    # Then silence: dropped at the first check 5 s after it was last heard.
    reactor.advance(4)
    assert not connection.closing
    reactor.advance(1)
    assert connection.closing
    assert connection.closeReason.text == "no response for 5.0 s"


def test_silent_peer_is_aborted_and_redialed_at_its_listening_address(started):
    node = started()
    reactor = node.reactor
    connection, transport = established(node)
    info = connection.peer
    assert (info.host, info.port) == BOB_LISTENS
    for second in range(1, 5):
        reactor.advance(1)
        assert written(transport) == [Ping(second, neighbours=1)]
        transport.clear()
        assert not transport.disconnecting
    reactor.advance(1)
    # Aborted (not closed politely: no BYE to a peer that does not read).
    assert transport.disconnected
    assert connection.closing
    assert connection.closeReason.text.startswith("no response")
    assert connection.closeReason.text == "no response for 5.0 s"
    assert written(transport) == []
    # Nothing redials a peer before its connection is gone.
    assert reactor.tcpClients == []

    lose(connection)
    assert node.recorder.disconnected == [(info, "no response for 5.0 s")]
    assert BOB not in node.peers
    # Redialed at once, where it listens, not where it dialed in from.
    assert dials(reactor) == [BOB_LISTENS]
    link = node.membership.links[BOB]
    assert isinstance(link, PeerLink) and link.running
    assert (link.host, link.port) == BOB_LISTENS
    assert link.lostAt == reactor.seconds()
    entry = node.membership.book.get(BOB)
    assert (entry.state, entry.host, entry.port) == (RECONNECTING, *BOB_LISTENS)
    assert entry.last_seen == reactor.seconds()


def test_peer_that_does_not_read_is_aborted(started):
    node = started()
    reactor = node.reactor
    connection, transport = established(node)
    connection.outbox.pauseProducing()  # The transport's buffer is full.
    for second in range(1, 5):
        reactor.advance(1)
        send(connection, Pong(0))  # It keeps talking, but does not read.
        assert not transport.disconnecting, second
    # The PINGs wait in the outbox.
    assert written(transport) == []
    assert connection.outbox.queuedBytes == sum(
        len(Ping(n, neighbours=1).encode()) + 1 for n in range(1, 5))
    reactor.advance(1)
    assert transport.disconnected
    assert connection.closeReason.text == "not reading"
    info = connection.peer
    lose(connection)
    assert node.recorder.disconnected == [(info, "not reading")]
    # Not a protocol error: the peer is redialed.
    assert dials(reactor) == [BOB_LISTENS]
    assert node.membership.book.get(BOB).state == RECONNECTING


def test_peer_that_reads_again_in_time_is_kept(started):
    node = started()
    reactor = node.reactor
    connection, transport = established(node)
    connection.outbox.pauseProducing()
    for _ in range(1, 5):
        reactor.advance(1)
        send(connection, Pong(0))
    connection.outbox.resumeProducing()
    assert written(transport) == [Ping(n, neighbours=1) for n in range(1, 5)]
    for _ in range(5, 12):
        reactor.advance(1)
        send(connection, Pong(0))
    assert not transport.disconnecting
    assert not connection.closing


def test_peer_that_says_bye_is_left_and_not_redialed(started):
    node = started(forgetAfter=20.0)
    reactor = node.reactor
    connection, transport = established(node)
    info = connection.peer
    reactor.advance(2)
    send(connection, Bye("node shutting down"))
    assert transport.disconnecting and not transport.disconnected
    lose(connection)
    assert node.recorder.disconnected == [(info, "node shutting down")]
    entry = node.membership.book.get(BOB)
    assert entry.state == LEFT
    assert entry.since == reactor.seconds()
    assert node.membership.links == {}
    reactor.advance(10)
    assert reactor.tcpClients == []
    # Kept for forgetAfter, then forgotten.
    assert node.membership.book.get(BOB).state == LEFT
    reactor.advance(10)
    assert BOB not in node.membership.book
    assert reactor.tcpClients == []


def test_peer_dropped_for_a_protocol_error_is_dead_and_not_redialed(started):
    node = started(forgetAfter=20.0)
    reactor = node.reactor
    connection, transport = established(node)
    info = connection.peer
    connection.dataReceived(b"this is not json\n")
    assert connection.closeReason.text.startswith("protocol error")
    lose(connection)
    assert node.recorder.disconnected == [(info, connection.closeReason.text)]
    assert node.membership.book.get(BOB).state == DEAD
    assert node.membership.links == {}
    reactor.advance(19)
    assert reactor.tcpClients == []
    assert node.membership.book.get(BOB).state == DEAD
    reactor.advance(1)
    assert BOB not in node.membership.book


def test_peer_that_listens_nowhere_is_not_redialed(started):
    node = started()
    reactor = node.reactor
    connection, transport = established(node, port=0)
    silentPeerLost(node, connection)
    assert node.membership.links == {}
    reactor.advance(30)
    assert reactor.tcpClients == []


def test_stopping_the_node_stops_probing(started):
    node = started()
    reactor = node.reactor
    connection, transport = established(node)
    d = node.stopService()
    lose(connection)
    reactor.advance(STOP_GRACE)
    assert resultOf(d) is None
    assert written(transport) == [Bye("node shutting down", "shutdown")]
    transport.clear()
    reactor.advance(30)
    assert written(transport) == []
    assert reactor.getDelayedCalls() == []
    assert reactor.tcpClients == []


# -- redialing -------------------------------------------------------------------


def test_redial_delays_grow_exponentially_up_to_the_cap(started, monkeypatch):
    jitter = FixedJitter(pick=max)
    node = started(reconnectInitialDelay=1.0, reconnectMaxDelay=8.0)
    node.membership.random = jitter
    reactor = node.reactor
    connection, _ = established(node)
    silentPeerLost(node, connection)
    link = node.membership.links[BOB]
    since = node.membership.book.get(BOB).since

    for attempt, base in enumerate([1, 2, 4, 8, 8, 8], start=1):
        assert len(reactor.tcpClients) == attempt
        failDial(reactor)
        now = reactor.seconds()
        delay = base + 1.0  # The jitter here is its maximum.
        entry = node.membership.book.get(BOB)
        assert entry.state == RECONNECTING
        assert entry.since == since
        assert entry.next_attempt == link.nextAttempt
        assert entry.next_attempt == pytest.approx(now + delay)
        # The next dial comes when announced, not before.
        reactor.advance(delay - 0.01)
        assert len(reactor.tcpClients) == attempt
        reactor.advance(0.02)
        assert len(reactor.tcpClients) == attempt + 1
        assert dials(reactor)[-1] == BOB_LISTENS
    assert jitter.calls == [(0, 1.0)] * 6


def test_redial_delays_with_random_jitter_stay_in_bounds(started):
    initial, cap = 0.5, 4.0
    node = started(reconnectInitialDelay=initial, reconnectMaxDelay=cap)
    reactor = node.reactor
    connection, _ = established(node)
    silentPeerLost(node, connection)
    link = node.membership.links[BOB]
    for attempt, base in enumerate([0.5, 1, 2, 4, 4, 4, 4, 4], start=1):
        failDial(reactor)
        delay = link.nextAttempt - reactor.seconds()
        assert base <= delay <= base + initial, (attempt, delay)
        assert node.membership.book.get(BOB).next_attempt == link.nextAttempt
        reactor.advance(delay + 0.01)
        assert len(reactor.tcpClients) == attempt + 1


def test_unreachable_peer_is_forgotten_after_forget_after(started, monkeypatch):
    node = started(reconnectInitialDelay=1.0, reconnectMaxDelay=4.0,
                   forgetAfter=20.0)
    node.membership.random = FixedJitter(pick=min)
    reactor = node.reactor
    connection, _ = established(node)
    silentPeerLost(node, connection)
    link = node.membership.links[BOB]
    lostAt = link.lostAt
    assert lostAt == reactor.seconds()

    failuresBefore = 0
    while True:
        failDial(reactor)
        if reactor.seconds() - lostAt >= 20.0:
            break
        # Not yet: still trying.
        failuresBefore += 1
        assert node.membership.links.get(BOB) is link
        assert node.membership.book.get(BOB).state == RECONNECTING
        reactor.advance(link.nextAttempt - reactor.seconds() + 0.01)
        assert failuresBefore < 50
    assert failuresBefore >= 3

    # The first failure past the deadline gives up on the peer.
    assert BOB not in node.membership.book
    assert BOB not in node.membership.links
    assert not link.running
    dialed = len(reactor.tcpClients)
    reactor.advance(100)
    assert len(reactor.tcpClients) == dialed
    assert BOB not in node.membership.book


def test_redial_that_reaches_the_peer_resets_the_backoff(started, monkeypatch):
    node = started(reconnectInitialDelay=1.0, reconnectMaxDelay=8.0)
    node.membership.random = FixedJitter(pick=min)
    reactor = node.reactor
    connection, _ = established(node)
    silentPeerLost(node, connection)
    link = node.membership.links[BOB]
    for _ in range(3):  # Delays 1, 2, 4: the next would be 8.
        failDial(reactor)
        reactor.advance(link.nextAttempt - reactor.seconds() + 0.01)
    assert len(reactor.tcpClients) == 4

    # This time Bob answers.
    wrapper, transport = acceptDial(reactor)
    redialed = link.connection
    assert redialed is not None and redialed.outbound
    assert written(transport) == [node.connections.helloFor(redialed)]
    send(redialed, Hello(BOB, PROTOCOL_VERSION, BOB_PORT, "bob"))
    assert node.peers.connection(BOB) is redialed
    assert node.membership.book.get(BOB).state == CONNECTED
    assert node.membership.links.get(BOB) is link  # It keeps the connection.
    assert link.attempts == 0
    assert len(node.recorder.connected) == 2

    # Lost again: the link redials, starting over from the initial delay.
    reactor.advance(3)
    wrapper.connectionLost(Failure(ConnectionDone()))
    now = reactor.seconds()
    assert link.lostAt == now
    entry = node.membership.book.get(BOB)
    assert entry.state == RECONNECTING
    assert link.nextAttempt == pytest.approx(now + 1.0)
    assert entry.next_attempt == link.nextAttempt
    reactor.advance(1.01)
    assert len(reactor.tcpClients) == 5
    assert dials(reactor)[-1] == BOB_LISTENS


def test_redial_whose_handshake_fails_keeps_backing_off(started, monkeypatch):
    """A dial that connects but never completes a handshake is a failure too."""
    node = started(reconnectInitialDelay=1.0, reconnectMaxDelay=8.0)
    node.membership.random = FixedJitter(pick=min)
    reactor = node.reactor
    connection, _ = established(node)
    silentPeerLost(node, connection)
    link = node.membership.links[BOB]
    failDial(reactor)
    assert link.nextAttempt - reactor.seconds() == pytest.approx(1)
    reactor.advance(1.01)
    for attempt, expected in enumerate([2, 4, 8, 8], start=2):
        assert len(reactor.tcpClients) == attempt
        wrapper, transport = acceptDial(reactor)
        assert link.handshaking
        # Whoever listens there hangs up before saying HELLO.
        wrapper.connectionLost(Failure(ConnectionDone()))
        assert not link.handshaking
        assert link.nextAttempt - reactor.seconds() == pytest.approx(expected)
        entry = node.membership.book.get(BOB)
        assert entry.state == RECONNECTING
        assert entry.next_attempt == link.nextAttempt
        reactor.advance(expected + 0.01)
    assert node.recorder.connected[1:] == []


def test_stale_link_reports_are_ignored(started):
    node = started()
    connection, _ = established(node)
    silentPeerLost(node, connection)
    link = node.membership.links[BOB]
    stale = node.membership.makeLink(BOB, *BOB_LISTENS)
    stale.nextAttempt = 12345.0
    node.membership.linkWaiting(stale)
    node.membership.linkGaveUp(stale)
    assert node.membership.links[BOB] is link and link.running
    entry = node.membership.book.get(BOB)
    assert entry.state == RECONNECTING and entry.next_attempt != 12345.0


def test_stopping_the_node_stops_its_links(started):
    node = started()
    reactor = node.reactor
    connection, _ = established(node)
    silentPeerLost(node, connection)
    link = node.membership.links[BOB]
    failDial(reactor)
    stopNode(node)
    assert not link.running
    dialed = len(reactor.tcpClients)
    reactor.advance(100)
    assert len(reactor.tcpClients) == dialed


def test_stop_service_accepts_a_port_that_stops_at_once():
    """
    IListeningPort.stopListening may return None when it is done at once
    (MemoryReactor's fake port does); stopping the node must still work.
    """
    reactor = MemoryReactorClock()
    node = Node(NodeConfig(**LIVENESS), reactor=reactor)
    node.startService()
    assert node.port is not None
    d = node.stopService()
    reactor.advance(STOP_GRACE)
    assert resultOf(d) is None


# -- the outbox -----------------------------------------------------------------


class PausingTransport(StringTransport):
    """A transport whose buffer fills (it pauses its producer) after N writes."""

    def __init__(self, pauseAfter):
        super().__init__()
        self.pauseAfter = pauseAfter
        self.writes = 0

    def writeSequence(self, data):
        super().writeSequence(data)
        self.writes += 1
        if self.writes == self.pauseAfter:
            self.producer.pauseProducing()


def lines(transport):
    return transport.value().split(b"\n")[:-1]


def makeOutbox(limit=100, transport=None):
    clock = Clock()
    transport = transport if transport is not None else StringTransport()
    outbox = Outbox(transport, limit, clock)
    return outbox, transport, clock


def test_outbox_registers_as_a_streaming_producer():
    outbox, transport, _ = makeOutbox()
    assert transport.producer is outbox
    assert transport.streaming


def test_outbox_writes_through_when_not_paused():
    outbox, transport, _ = makeOutbox(limit=4)
    assert outbox.write(b"one") is True
    assert outbox.write(b"longer than the limit") is True
    assert transport.value() == b"one\nlonger than the limit\n"
    assert outbox.queuedBytes == 0
    assert not outbox.paused and outbox.pausedSince is None


def test_outbox_queues_in_order_while_paused():
    outbox, transport, clock = makeOutbox(limit=100)
    outbox.write(b"before")
    clock.advance(3)
    outbox.pauseProducing()
    assert outbox.paused and outbox.pausedSince == 3
    clock.advance(1)
    outbox.pauseProducing()  # Again: still paused since the first time.
    assert outbox.pausedSince == 3
    for line in (b"a", b"bb", b"ccc"):
        assert outbox.write(line) is True
    assert lines(transport) == [b"before"]
    assert outbox.queuedBytes == 2 + 3 + 4
    outbox.resumeProducing()
    assert lines(transport) == [b"before", b"a", b"bb", b"ccc"]
    assert outbox.queuedBytes == 0
    assert outbox.pausedSince is None


def test_outbox_refuses_past_the_limit_unless_forced():
    outbox, transport, _ = makeOutbox(limit=10)
    outbox.pauseProducing()
    assert outbox.write(b"abcd") is True  # 5 bytes with the delimiter.
    assert outbox.write(b"efgh") is True  # Exactly at the limit.
    assert outbox.queuedBytes == 10
    assert outbox.write(b"i") is False
    assert outbox.queuedBytes == 10
    assert outbox.write(b"forced", force=True) is True
    assert outbox.queuedBytes == 17
    assert outbox.write(b"j") is False
    outbox.resumeProducing()
    assert lines(transport) == [b"abcd", b"efgh", b"forced"]
    assert outbox.queuedBytes == 0
    # Drained: room again.
    assert outbox.write(b"k") is True
    assert lines(transport)[-1] == b"k"


def test_outbox_resume_stops_when_the_transport_pauses_again():
    transport = PausingTransport(pauseAfter=2)
    outbox, _, clock = makeOutbox(limit=1000, transport=transport)
    outbox.pauseProducing()
    for line in (b"1", b"2", b"3", b"4"):
        outbox.write(line)
    clock.advance(5)
    outbox.resumeProducing()
    # Two lines went before the transport paused again; the rest wait.
    assert lines(transport) == [b"1", b"2"]
    assert outbox.paused and outbox.pausedSince == 5
    assert outbox.queuedBytes == 4
    # New lines go behind the waiting ones, never ahead of them.
    assert outbox.write(b"5") is True
    assert lines(transport) == [b"1", b"2"]
    outbox.resumeProducing()
    assert lines(transport) == [b"1", b"2", b"3", b"4", b"5"]
    assert outbox.queuedBytes == 0 and not outbox.paused


def test_outbox_lines_written_during_a_resume_go_behind_the_queue():
    """A line sent while the queue drains (say, from a write callback)."""
    class ReentrantTransport(StringTransport):
        def writeSequence(self, data):
            super().writeSequence(data)
            if data[0] == b"1":
                self.producer.write(b"late")

    outbox, transport, _ = makeOutbox(transport=ReentrantTransport())
    outbox.pauseProducing()
    for line in (b"1", b"2", b"3"):
        outbox.write(line)
    outbox.resumeProducing()
    assert lines(transport) == [b"1", b"2", b"3", b"late"]
    assert outbox.queuedBytes == 0


def test_outbox_flush_writes_everything_even_while_paused():
    outbox, transport, _ = makeOutbox()
    outbox.pauseProducing()
    outbox.write(b"x")
    outbox.write(b"y", force=True)
    outbox.flush()
    assert lines(transport) == [b"x", b"y"]
    assert outbox.queuedBytes == 0
    outbox.resumeProducing()
    assert lines(transport) == [b"x", b"y"]


def test_outbox_stop_producing_drops_the_queue():
    outbox, transport, _ = makeOutbox()
    outbox.pauseProducing()
    outbox.write(b"x")
    outbox.write(b"y")
    outbox.stopProducing()
    assert outbox.queuedBytes == 0
    outbox.resumeProducing()
    outbox.flush()
    assert transport.value() == b""


def test_outbox_uses_the_given_delimiter():
    clock = Clock()
    transport = StringTransport()
    outbox = Outbox(transport, 10, clock, delimiter=b"\r\n")
    outbox.write(b"a")
    outbox.pauseProducing()
    outbox.write(b"bcdefgh")  # 9 bytes with CRLF.
    assert outbox.queuedBytes == 9
    assert outbox.write(b"i") is False
    outbox.resumeProducing()
    assert transport.value() == b"a\r\nbcdefgh\r\n"


@pytest.fixture
def smallBufferNode():
    return Node(NodeConfig(name="me", maxSendBuffer=300, ackTimeout=30.0,
                           dht=False),
                reactor=MemoryReactorClock())


def test_send_data_fails_when_the_send_buffer_is_full(smallBufferNode):
    node = smallBufferNode
    connection, transport = established(node)
    connection.outbox.pauseProducing()
    # A small message still fits in the queue.
    small = Data(newMessageId(), "hi")
    fits = node.direct.sendData(connection, small)
    assert not fits.called
    big = node.direct.sendData(connection, Data(newMessageId(), "x" * 300))
    # It waits behind the small one: the window's bytes are a quarter of
    # the buffer; once that one is confirmed it is tried, and does not fit.
    assert not big.called
    send(connection, Ack(small.id))
    assert resultOf(fits) == connection.peer
    small2 = Data(newMessageId(), "hi")
    fits = node.direct.sendData(connection, small2)
    error = failureOf(big)
    assert error.check(DeliveryFailed)
    assert "send buffer" in str(error.value)
    assert BOB[:8] in str(error.value)
    # Only the small one waits for an ACK.
    assert list(node.direct.unconfirmed(connection)) == [small2.id]
    assert len(node.reactor.getDelayedCalls()) == 1
    connection.outbox.resumeProducing()
    assert written(transport) == [small, small2]
    assert not transport.disconnecting
    fits.addErrback(lambda _: None)


def test_broadcast_counts_a_drop_for_a_peer_whose_buffer_is_full():
    # Room for one small signed broadcast, not for one of 1,000 bytes.
    node = Node(NodeConfig(name="me", maxSendBuffer=1000, ackTimeout=30.0,
                           dht=False),
                reactor=MemoryReactorClock())
    bob, bobTransport = established(node)
    carol, carolTransport = established(node, CAROL, CAROL_PORT, "carol",
                                        CAROL_SOURCE)
    bob.outbox.pauseProducing()
    messageId, sent = node.broadcast("y" * 1000)
    assert sent == 1
    assert node.stats.broadcastsDropped == 1
    (received,) = written(carolTransport)
    assert isinstance(received, Broadcast) and received.id == messageId
    assert bob.outbox.queuedBytes == 0
    # A small broadcast still goes to both (queued for Bob).
    _, sent = node.broadcast("z")
    assert sent == 2
    assert node.stats.broadcastsDropped == 1
    bob.outbox.resumeProducing()
    assert [m.body for m in written(bobTransport)] == ["z"]
    assert not bobTransport.disconnecting


# -- the address book ------------------------------------------------------------


def makeBook(maxSize=10):
    clock = Clock()
    return AddressBook(maxSize, clock.seconds), clock


def test_learn_adds_a_known_entry():
    book, clock = makeBook()
    clock.advance(7)
    entry = book.learn(BOB, "10.0.0.5", 9000, "bob", lastSeen=3.0)
    assert entry == book.get(BOB)
    assert (entry.host, entry.port, entry.name, entry.state) == (
        "10.0.0.5", 9000, "bob", KNOWN)
    assert (entry.last_seen, entry.since, entry.next_attempt) == (3.0, 7.0, None)
    assert BOB in book and len(book) == 1


def test_learn_does_not_override_what_is_known():
    book, clock = makeBook()
    book.update(BOB, "10.0.0.5", 9000, "bob", CONNECTED)
    before = book.get(BOB)
    clock.advance(5)
    again = book.learn(BOB, "10.9.9.9", 1234, "mallory", lastSeen=99.0)
    assert again == before == book.get(BOB)
    assert len(book) == 1


def test_learn_ignores_port_zero():
    book, _ = makeBook()
    assert book.learn(BOB, "10.0.0.5", 0, "bob") is None
    assert BOB not in book and len(book) == 0
    book.learn(CAROL, "10.0.0.7", 9003, "carol")
    assert book.learn(CAROL, "10.0.0.7", 0) == book.get(CAROL)
    assert book.get(CAROL).port == 9003


def test_update_tracks_since_and_last_seen():
    book, clock = makeBook()
    clock.advance(10)
    entry = book.update(BOB, "10.0.0.5", 9000, "bob", CONNECTED)
    assert (entry.state, entry.since, entry.last_seen) == (CONNECTED, 10, 10)
    clock.advance(5)
    # Still connected: since stays, lastSeen moves.
    entry = book.update(BOB, "10.0.0.5", 9000, "bob", CONNECTED)
    assert (entry.since, entry.last_seen) == (10, 15)
    clock.advance(5)
    entry = book.update(BOB, "10.0.0.5", 9000, "bob", RECONNECTING,
                        nextAttempt=22.0)
    assert (entry.state, entry.since, entry.last_seen, entry.next_attempt) == (
        RECONNECTING, 20, 15, 22.0)
    # Never connected: never seen.
    entry = book.update(CAROL, "10.0.0.7", 9003, "carol", DEAD)
    assert (entry.since, entry.last_seen) == (20, 0.0)


def test_set_state_tracks_since_and_last_seen():
    book, clock = makeBook()
    assert book.setState(BOB, DEAD) is None
    assert BOB not in book
    clock.advance(10)
    book.update(BOB, "10.0.0.5", 9000, "bob", CONNECTED)
    clock.advance(5)
    # Leaving CONNECTED: it was last seen now.
    entry = book.setState(BOB, RECONNECTING)
    assert (entry.state, entry.since, entry.last_seen, entry.next_attempt) == (
        RECONNECTING, 15, 15, None)
    clock.advance(2)
    entry = book.setState(BOB, RECONNECTING, nextAttempt=20.0)
    assert (entry.since, entry.last_seen, entry.next_attempt) == (15, 15, 20.0)
    clock.advance(3)
    entry = book.setState(BOB, LEFT)
    assert (entry.state, entry.since, entry.last_seen, entry.next_attempt) == (
        LEFT, 20, 15, None)
    assert book.get(BOB) == entry
    assert (entry.host, entry.port, entry.name) == ("10.0.0.5", 9000, "bob")


def test_full_book_evicts_the_idle_entry_seen_longest_ago():
    book, clock = makeBook(maxSize=3)
    old = "01d" + "0" * 29
    new = "4e2" + "0" * 29
    # The connected peer was seen longest ago of all, yet it stays.
    clock.advance(1)
    book.update(BOB, "10.0.0.5", 9000, "bob", CONNECTED)
    clock.advance(1)
    # Learned first, but seen more recently.
    book.learn(CAROL, "10.0.0.7", 9003, lastSeen=5.0)
    clock.advance(1)
    book.learn(old, "10.0.0.8", 9008, lastSeen=2.0)
    assert len(book) == 3
    book.learn(new, "10.0.0.9", 9009, lastSeen=10.0)
    assert len(book) == 3
    assert old not in book
    assert {BOB, CAROL, new} == {e.node_id for e in book.all()}


def test_full_book_breaks_ties_by_since():
    book, clock = makeBook(maxSize=2)
    first, second, third = ("f" + str(i) * 31 for i in range(1, 4))
    book.learn(first, "10.0.0.1", 9001)
    clock.advance(1)
    book.learn(second, "10.0.0.2", 9002)
    clock.advance(1)
    book.learn(third, "10.0.0.3", 9003)
    assert [e.node_id for e in book.all()] == [second, third]


def test_full_book_never_evicts_a_connected_entry():
    book, clock = makeBook(maxSize=2)
    book.update(BOB, "10.0.0.5", 9000, "bob", CONNECTED)
    book.update(CAROL, "10.0.0.7", 9003, "carol", CONNECTED)
    clock.advance(100)
    # Nothing idle to make room but the newcomer itself.
    assert book.learn("d" * 32, "10.0.0.9", 9009, lastSeen=99.0) is None
    assert {BOB, CAROL} == {e.node_id for e in book.all()}
    # A newly connected node joins even past the bound.
    book.update("e" * 32, "10.0.0.10", 9010, "eve", CONNECTED)
    assert len(book) == 3
    assert all(e.state == CONNECTED for e in book.all())
    # Once entries are idle again, the book shrinks back to its bound.
    book.setState(BOB, DEAD)
    book.learn("d" * 32, "10.0.0.9", 9009, lastSeen=99.0)
    assert {CAROL, "e" * 32} == {e.node_id for e in book.all()}
