"""
Query connections, over real loopback sockets: a DHT request to a node
this one has no link to goes with the HELLO and is answered, neither node
registering the other; the connection carries the next request to that
node, and closes once unused for a while; a node of protocol version 2
answers over a direct link and is told BYE; a query connection carries
requests and nothing else.
"""

from dataclasses import replace

import pytest
import pytest_twisted
from twisted.internet.task import Clock

from p2poverlay import node as nodeModule
from p2poverlay import queries
from p2poverlay.dht.routing import Contact
from p2poverlay.dht.wire import FindNode, Nodes
from p2poverlay.message import (
    DIRECT, Hello, Ping, newMessageId, newNodeId,
)
from p2poverlay.reasons import CloseKind, CloseReason
from helpers import PROMPT, waitFor

TARGET = "ab" * 32


def contactOf(node):
    return Contact(node.nodeId, "127.0.0.1", node.listenPort, 0.0)


def askFindNode(asker, asked):
    """C{asker}'s FIND_NODE to C{asked}: fires with the answer."""
    return asker.dht.ask(contactOf(asked), lambda rid: FindNode(rid, TARGET))


@pytest.mark.parametrize("plaintext", [True, False], ids=["plaintext", "tls"])
@pytest_twisted.inlineCallbacks
def test_a_request_to_a_node_not_linked_goes_over_a_query_connection(
        overlay, plaintext, monkeypatch):
    monkeypatch.setattr(queries, "LINGER", 0.5)
    a = yield overlay.start(name="a", autoConnect=False, plaintext=plaintext)
    b = yield overlay.start(name="b", autoConnect=False, plaintext=plaintext)
    answer = yield askFindNode(a, b)
    assert isinstance(answer, Nodes)
    assert (a.connections.queries.dialed, b.connections.queries.served) \
        == (1, 1)
    assert a.nodeId not in b.peers and b.nodeId not in a.peers
    # The next request to b goes over the same connection.
    answer = yield askFindNode(a, b)
    assert isinstance(answer, Nodes)
    assert (a.connections.queries.dialed, a.connections.queries.reused,
            b.connections.queries.served) == (1, 1, 2)
    assert (a.dht.counters()["dht_queries_reused"],
            b.dht.counters()["dht_queries_served"]) == (1, 2)
    # Unused for LINGER seconds, it closes both ways.
    yield waitFor(lambda: len(a.connections) == len(b.connections) == 0,
                  timeout=PROMPT, what="the query connection closed")
    # Each one heard from the other: the asker is how a newcomer becomes
    # known to the nodes its lookups ask.
    assert b.dht.table.holds(contactOf(a)) and a.dht.table.holds(contactOf(b))
    assert b.metrics.disconnects["protocol_error"] == 0


@pytest_twisted.inlineCallbacks
def test_a_version_2_node_answers_over_a_direct_link_and_hears_bye(
        overlay, monkeypatch):
    """A version 2 node keeps a direct link, answers over it, and sends on
    it as over any (its own DHT requests, answered; a PING): a closes
    it, with a BYE, and the old node holds nothing against it."""
    monkeypatch.setattr(queries, "LINGER", 0.5)
    a = yield overlay.start(name="a", autoConnect=False)
    # The old node's HELLO says version 2 (so, while the test runs, does
    # a's: it is the old node's that a goes by).
    monkeypatch.setattr(nodeModule, "PROTOCOL_VERSION", 2)
    old = yield overlay.start(name="old", autoConnect=False)
    helloReceived = old.connections.helloReceived
    links = []

    def ignoringQuery(connection, hello):
        # Version 2 has no query field: it keeps a direct link.
        helloReceived(connection, replace(hello, query=0))
        links.append((connection, old.peers.get(a.nodeId)))
    old.connections.helloReceived = ignoringQuery
    answer = yield askFindNode(a, old)
    assert isinstance(answer, Nodes)
    link, registered = links[0]
    assert registered is not None and registered.role == DIRECT
    assert old.connections.queries.served == 0
    yield waitFor(lambda: a.nodeId not in old.peers, timeout=PROMPT,
                  what="the link to the old node closed")
    assert link.closeReason.kind == CloseKind.ANSWERED
    assert old.metrics.disconnects["bye"] >= 1
    assert old.metrics.disconnects["protocol_error"] == 0
    assert a.metrics.disconnects["protocol_error"] == 0


@pytest_twisted.inlineCallbacks
def test_a_query_connection_carries_requests_and_nothing_else(
        overlay, raw):
    b = yield overlay.start(name="b", autoConnect=False)
    asker = yield raw(b)
    asker.send(Hello(newNodeId(), 3, 0, "asker", DIRECT, query=1),
               FindNode(newMessageId(), TARGET),
               FindNode(newMessageId(), TARGET))
    yield waitFor(lambda: asker.types() == ["HELLO", "NODES", "NODES"],
                  timeout=PROMPT, what="both requests answered")
    assert not asker.closed and b.connections.queries.served == 2
    asker.send(Ping(1))
    yield waitFor(lambda: asker.closed, timeout=PROMPT,
                  what="the query connection closed")
    bye = asker.lines()[-1]
    assert bye["type"] == "BYE" and "PING on a query connection" in \
        bye["reason"]
    assert len(b.peers) == 0


def test_a_query_hello_must_be_direct():
    with pytest.raises(Exception, match="query connection is not direct"):
        Hello(newNodeId(), 3, 0, "x", "neighbour", query=1).validate()


@pytest_twisted.inlineCallbacks
def test_a_query_connection_without_requests_closes_after_the_handshake_timeout(
        overlay, raw):
    b = yield overlay.start(name="b", autoConnect=False, handshakeTimeout=0.5)
    mute = yield raw(b)
    mute.send(Hello(newNodeId(), 3, 0, "mute", DIRECT, query=1))
    done = yield raw(b)
    done.send(Hello(newNodeId(), 3, 0, "done", DIRECT, query=1),
              FindNode(newMessageId(), TARGET))
    yield waitFor(lambda: mute.closed and done.closed, timeout=PROMPT,
                  what="both query connections closed")
    assert mute.types() == ["HELLO", "BYE"]
    assert mute.lines()[-1]["code"] == CloseKind.HANDSHAKE_TIMEOUT.value
    assert done.types() == ["HELLO", "NODES", "BYE"]
    assert done.lines()[-1]["code"] == CloseKind.IDLE.value


def test_a_request_unanswered_in_time_closes_its_query_connection():
    from p2poverlay.dht.rpc import DHTRequests
    from p2poverlay.registry import PeerRegistry

    class Dialed:
        query = True
        closed = None

        def __init__(self, nodeId):
            self.info = type("Info", (), {"node_id": nodeId})()

    class FakeQueries:
        def __init__(self):
            self.dials, self.ended = [], []

        def take(self, nodeId):
            return None

        def dial(self, host, port, request):
            from twisted.internet.defer import Deferred
            d = Deferred()
            self.dials.append(d)
            return d

        def finished(self, connection, reason):
            self.ended.append((connection, reason.kind))

    clock, queries = Clock(), FakeQueries()
    requests = DHTRequests(clock, PeerRegistry(), connect=None, timeout=5.0,
                           rate=20.0, burst=100.0, queries=queries)
    nodeId = newNodeId()
    failures = []
    requests.request(Contact(nodeId, "127.0.0.1", 9000, 0.0),
                     lambda rid: FindNode(rid, TARGET)).addErrback(
        failures.append)
    connection = Dialed(nodeId)
    queries.dials[0].callback(connection)
    assert requests.busy(connection)
    clock.advance(5)
    assert failures and queries.ended == [(connection, CloseKind.SILENT)]
    assert not requests.busy(connection)


class Kept:
    """A dialed query connection, as L{queries.Queries} keeps it."""

    def __init__(self, nodeId):
        self.info = self.peer = type("Info", (), {"node_id": nodeId})()
        self.closing = False
        self.closedWith = None

    def close(self, reason, tellPeer=True):
        self.closing, self.closedWith = True, (reason.kind, tellPeer)


def test_an_answered_query_connection_is_kept_a_while_and_so_many():
    clock = Clock()
    kept = queries.Queries(type("Owner", (), {"clock": clock})())
    first, second, again = Kept("1"), Kept("1"), Kept("2")
    kept.finished(first)
    kept.finished(second)  # one to node 1 is kept already
    assert second.closedWith == (CloseKind.ANSWERED, True)
    assert kept.lingering == 1
    assert kept.take("1") is first and kept.take("1") is None
    kept.finished(first)
    kept.finished(again, CloseReason(CloseKind.SILENT, "5 s"))
    assert again.closedWith == (CloseKind.SILENT, True), "unanswered: closed"
    clock.advance(queries.LINGER)
    assert first.closedWith == (CloseKind.ANSWERED, True)
    assert kept.take("1") is None
    many = [Kept(str(i)) for i in range(queries.MAX_LINGERING + 1)]
    for connection in many:
        kept.finished(connection)
    assert many[0].closing and not any(c.closing for c in many[1:])


@pytest_twisted.inlineCallbacks
def test_a_kept_query_connection_takes_no_outbound_slot(overlay):
    a = yield overlay.start(name="a", autoConnect=False, maxOutbound=1)
    b = yield overlay.start(name="b", autoConnect=False)
    c = yield overlay.start(name="c", autoConnect=False)
    yield askFindNode(a, b)
    assert a.connections.queries.lingering == 1
    info = yield a.connections.connect("127.0.0.1", c.listenPort)
    assert info.node_id == c.nodeId
