"""
Resilience of the overlay in memory: Nodes in a memory overlay, with short
timings, on a virtual clock, facing lost connections, crashed and leaving
peers, restarts from a data directory and the bound on outbound dials.

A crash is L{p2poverlay.node.Node.abort}: no BYE, the listening port
gone, every connection reset and the membership (liveness probes, redial
links) stopped, as if the process had been killed.  The tests of hostile
peers and of the wire run over loopback TCP, in C{test_resilience.py}.
"""

import json

import pytest
from twisted.internet.defer import DeferredList
from twisted.internet.protocol import Protocol, ServerFactory

from p2poverlay.records import CONNECTED, LEFT, RECONNECTING
from p2poverlay.errors import PeerUnreachable
from p2poverlay.message import newMessageId
from p2poverlay.store import NodeStore
from memoverlay import (
    PROMPT, address, bodies, connectedCount, disconnected, memoryOverlay,
    outcome, start,
)

# Short timings so that failure detection, redialing and forgetting take
# a second or two instead of minutes.
FAST = dict(pingInterval=0.2, peerTimeout=1.0, reconnectInitialDelay=0.1,
            reconnectMaxDelay=0.5, forgetAfter=2.0)


def state(node, other):
    """The state of C{other} in C{node}'s address book (None: not in it)."""
    entry = node.membership.book.get(other.nodeId)
    return entry.state if entry is not None else None


def assertMessagesFlow(overlay, a, b):
    """A direct message each way and a broadcast from C{a} reach their ends."""
    tag = newMessageId()[:8]
    for sender, receiver in ((a, b), (b, a)):
        body = f"direct {tag} from {sender.shortId}"
        peer = outcome(overlay, sender.send(receiver.nodeId, body), PROMPT,
                       "the direct message to be confirmed")
        assert peer.node_id == receiver.nodeId
        assert body in bodies(overlay, receiver, "direct")
    a.broadcast(f"broadcast {tag}")
    overlay.runUntil(lambda: f"broadcast {tag}" in
                     bodies(overlay, b, "broadcast"),
                     PROMPT, "the broadcast to arrive")


# -- 1. a lost connection is redialed ------------------------------------------

def test_an_aborted_connection_is_reconnected():
    overlay = memoryOverlay(seed=1, **FAST)
    a = start(overlay, name="a")
    b = start(overlay, join=a, name="b")
    overlay.runUntil(lambda: state(a, b) == state(b, a) == CONNECTED,
                     PROMPT, "a and b to record each other")
    old = a.peers.connection(b.nodeId)

    lostAt = overlay.now
    old.transport.abortConnection()
    overlay.runUntil(lambda: disconnected(overlay, a)
                     and disconnected(overlay, b),
                     PROMPT, "both ends to notice the loss")
    # Both nodes are back within a few redial delays.
    overlay.runUntil(
        lambda: b.nodeId in a.peers and a.nodeId in b.peers
        and connectedCount(overlay, a) == 2
        and connectedCount(overlay, b) == 2,
        PROMPT, "a and b to reconnect")
    assert overlay.now - lostAt < PROMPT
    assert a.peers.connection(b.nodeId) is not old
    assert state(a, b) == state(b, a) == CONNECTED
    # The duplicate dials (both ends redial) settle on one connection.
    overlay.runUntil(lambda: len(a.connections) == len(b.connections) == 1,
                     PROMPT, "one connection each")
    peer = outcome(overlay, a.send(b.nodeId, "after the reconnect"))
    assert peer.node_id == b.nodeId
    assert bodies(overlay, b, "direct") == ["after the reconnect"]
    assertMessagesFlow(overlay, a, b)


# -- 2. a crashed peer is redialed, then forgotten ---------------------------------

def test_a_crashed_peer_is_reconnecting_then_forgotten():
    overlay = memoryOverlay(seed=2, **FAST)
    a = start(overlay)
    b = start(overlay, join=a)
    port = b.listenPort
    crashedAt = overlay.now
    outcome(overlay, b.abort())
    overlay.runUntil(lambda: b.nodeId not in a.peers, PROMPT, "a to lose b")

    def waiting():
        entry = a.membership.book.get(b.nodeId)
        return (entry is not None and entry.state == RECONNECTING
                and entry.next_attempt is not None)
    overlay.runUntil(waiting, PROMPT, "a to wait for its next try")
    entry = a.membership.book.get(b.nodeId)
    assert (entry.host, entry.port) == (overlay.host(b.config.name), port)
    assert entry.next_attempt > crashedAt
    assert entry.next_attempt <= overlay.now + FAST["reconnectMaxDelay"] \
        + FAST["reconnectInitialDelay"] + 0.1
    assert b.nodeId in a.membership.links

    forgetAfter = FAST["forgetAfter"]
    overlay.runUntil(lambda: a.membership.book.get(b.nodeId) is None,
                     forgetAfter + FAST["reconnectMaxDelay"] + PROMPT,
                     "a to forget b")
    assert overlay.now - crashedAt >= forgetAfter - 0.1
    assert a.membership.links == {}
    # Forgotten for good: no link comes back for it.
    overlay.run(3 * FAST["reconnectMaxDelay"])
    assert a.membership.book.get(b.nodeId) is None
    assert a.membership.links == {}
    assert len(a.peers) == 0


# -- 3. a crashed peer back on its port is redialed ----------------------------------

def test_a_crashed_peer_back_on_its_port_is_redialed():
    overlay = memoryOverlay(seed=3, **FAST)
    a = start(overlay, name="a")
    b = start(overlay, join=a, name="b")
    outcome(overlay, b.abort())
    overlay.runUntil(lambda: state(a, b) == RECONNECTING
                     and b.nodeId in a.membership.links,
                     PROMPT, "a to redial b")

    # The same node (same id, same port) restarts; it joins nobody.
    again = overlay.restart(b)
    assert again.config.join == ()
    overlay.runUntil(lambda: b.nodeId in a.peers and a.nodeId in again.peers,
                     FAST["reconnectMaxDelay"] + PROMPT,
                     "a's link to reach b again")
    assert state(a, again) == CONNECTED
    # a dialed: the connection is its link's.
    connection = a.peers.connection(b.nodeId)
    assert connection.outbound
    assert connection.link is a.membership.links.get(b.nodeId)
    assert not again.peers.connection(a.nodeId).outbound
    assertMessagesFlow(overlay, a, again)


# -- 4. a peer that leaves is not chased, and is welcome back ------------------------

class CountingFactory(ServerFactory):
    """Counts the connections made to a port."""

    def __init__(self):
        self.count = 0

    def buildProtocol(self, addr):
        self.count += 1
        return Protocol()


def test_a_leaving_peer_is_not_redialed_and_is_welcomed_back():
    overlay = memoryOverlay(seed=4, **FAST)
    a = start(overlay, name="a")
    b = start(overlay, join=a, name="b")
    port = b.listenPort
    outcome(overlay, b.stopService())
    overlay.runUntil(lambda: state(a, b) == LEFT, PROMPT,
                     "a to see b leave")
    assert b.nodeId not in a.peers
    assert a.membership.links == {}
    (peer, reason), = disconnected(overlay, a)
    assert peer == "b" and reason == "node shutting down"

    # Nobody dials b's old address for many redial delays.
    sentinel = CountingFactory()
    endpoint = overlay.network.host(overlay.host("b")).serverEndpoint(
        f"tcp:{port}")
    listening = outcome(overlay, endpoint.listen(sentinel))
    try:
        for _ in range(10):
            overlay.run(FAST["reconnectMaxDelay"] / 5)
            assert a.membership.links == {}
            assert state(a, b) in (LEFT, None)
    finally:
        outcome(overlay, listening.stopListening())
    assert sentinel.count == 0

    # b restarts with the same id and joins a: a takes it back.
    again = overlay.restart(b)
    outcome(overlay, again.join(overlay.host("a"), a.listenPort))
    assert b.nodeId in a.peers and a.nodeId in again.peers
    # (join() fires as the handshake completes, a moment before the
    # joining node records the peer in its address book.)
    overlay.runUntil(lambda: state(a, again) == state(again, a) == CONNECTED,
                     PROMPT, "a and b to record each other")
    assertMessagesFlow(overlay, a, again)


# -- 5. persistence --------------------------------------------------------------------

def test_a_restarted_node_keeps_its_id_and_redials_its_saved_peers(tmp_path):
    overlay = memoryOverlay(seed=5, **FAST)
    q = start(overlay, name="q")
    r = start(overlay, join=q, name="r")
    directory = tmp_path / "p"
    store = NodeStore(str(directory))
    store.open()
    try:
        p = start(overlay, store=store, join=q, name="p")
        # It learns r from q and connects to it.
        overlay.runUntil(lambda: {q.nodeId, r.nodeId} <= set(
            i.node_id for i in p.peers.snapshot()), PROMPT,
            "p to meet q and r")
        outcome(overlay, p.stopService())
    finally:
        store.close()
    overlay.runUntil(lambda: state(q, p) == LEFT and state(r, p) == LEFT,
                     PROMPT, "q and r to see p leave")
    saved = json.loads((directory / "peers.json").read_text())
    assert {(e["node_id"], e["host"], e["port"]) for e in saved["peers"]} == {
        (q.nodeId, overlay.host("q"), q.listenPort),
        (r.nodeId, overlay.host("r"), r.listenPort)}

    store = NodeStore(str(directory))
    store.open()
    try:
        p2 = overlay.restart(p, store=store)
        assert p2.config.join == ()
        assert p2.nodeId == p.nodeId
        overlay.runUntil(lambda: q.nodeId in p2.peers and r.nodeId in p2.peers
                         and p2.nodeId in q.peers and p2.nodeId in r.peers,
                         PROMPT, "p2 to redial its saved peers")
        assert state(q, p2) == state(r, p2) == CONNECTED
        assert state(p2, q) == state(p2, r) == CONNECTED
        assert p2.peers.connection(q.nodeId).outbound
        assert p2.peers.connection(r.nodeId).outbound
        assertMessagesFlow(overlay, p2, q)
        outcome(overlay, p2.stopService())
    finally:
        store.close()


@pytest.mark.parametrize("content", [
    b"\x00{not json",
    b'{"peers": ',
    b'{"peers": 5}',
    b"[1, 2, 3]",
    "\u00e9t\u00e9".encode("latin-1"),
], ids=["binary", "truncated", "peers-not-a-list", "not-an-object",
        "not-utf8"])
def test_corrupt_saved_peers_give_a_fresh_start(tmp_path, log, content):
    overlay = memoryOverlay(seed=6, **FAST)
    directory = tmp_path / "c"
    directory.mkdir()
    (directory / "peers.json").write_bytes(content)
    store = NodeStore(str(directory))
    store.open()
    try:
        node = start(overlay, store=store)
        assert node.running and node.listenPort
        assert len(node.membership.book) == 0
        assert node.membership.links == {}
        warnings = [w for w in log.warningTexts() if "peers.json" in w]
        assert len(warnings) == 1, log.warningTexts()
        assert log.failures() == [], log.describeFailures()
        # It serves as usual, and saves a good file over the bad one.
        other = start(overlay, join=node)
        assert other.nodeId in node.peers
        outcome(overlay, node.stopService())
    finally:
        store.close()
    saved = json.loads((directory / "peers.json").read_text())
    assert [e["node_id"] for e in saved["peers"]] == [other.nodeId]


# -- 6. three of ten crash ---------------------------------------------------------------

def test_broadcasts_reach_every_survivor_exactly_once_when_3_of_10_crash():
    overlay = memoryOverlay(seed=7, **FAST)
    # minPeers=9: every node a neighbour of every other.
    first = start(overlay, name="n0", minPeers=9)
    nodes = [first]
    for i in range(1, 10):
        nodes.append(start(overlay, join=first, name=f"n{i}", minPeers=9))
    overlay.runUntil(lambda: all(len(n.peers) == 9 for n in nodes), 15,
                     "a full mesh of 10")
    # The node everyone joined through is one of the dead.
    dead = [nodes[0], nodes[4], nodes[7]]
    survivors = [n for n in nodes if n not in dead]
    deadIds = {n.nodeId for n in dead}
    crashedAt = overlay.now
    outcome(overlay, DeferredList([n.abort() for n in dead]))
    deadline = FAST["peerTimeout"] + 2 * FAST["pingInterval"] + 1.0
    overlay.runUntil(lambda: all(
        not deadIds & {p.node_id for p in n.peers.snapshot()}
        for n in survivors), deadline, "the survivors to drop the dead")
    assert overlay.now - crashedAt <= deadline + 0.5
    for n in survivors:
        assert len(n.peers) == len(survivors) - 1

    for origin in survivors:
        origin.broadcast(f"from {origin.name}")
    expected = {n: sorted(f"from {o.name}" for o in survivors if o is not n)
                for n in survivors}
    overlay.runUntil(lambda: all(
        sorted(bodies(overlay, n, "broadcast")) == expected[n]
        for n in survivors), PROMPT, "every broadcast everywhere")
    # Let the flood's duplicates arrive, then check none was delivered.
    overlay.run(0.5)
    for n in survivors:
        assert sorted(bodies(overlay, n, "broadcast")) == expected[n]
    for n in dead:
        assert not any(body.startswith("from ")
                       for body in bodies(overlay, n, "broadcast"))

    # The dead are forgotten after forgetAfter, and no links remain.
    overlay.runUntil(lambda: all(
        not any(n.membership.book.get(i) for i in deadIds)
        and not deadIds & set(n.membership.links) for n in survivors),
        FAST["forgetAfter"] + FAST["reconnectMaxDelay"] + PROMPT,
        "the survivors to forget the dead")


# -- 7. bounds ---------------------------------------------------------------------------

def test_max_outbound_refuses_a_second_dial():
    overlay = memoryOverlay(seed=8)
    n = start(overlay, maxOutbound=1, autoConnect=False)
    x = start(overlay, autoConnect=False)
    y = start(overlay, autoConnect=False)
    peer = outcome(overlay, n.connect(overlay.host(x.name), x.listenPort))
    assert peer.node_id == x.nodeId
    with pytest.raises(PeerUnreachable) as info:
        outcome(overlay, n.connect(overlay.host(y.name), y.listenPort))
    assert "outbound" in str(info.value)
    with pytest.raises(PeerUnreachable):
        outcome(overlay, n.send(address(overlay, y), "through a dial"))
    assert {p.node_id for p in n.peers.snapshot()} == {x.nodeId}
    # Inbound connections are counted apart: y may still dial n.
    peer = outcome(overlay, y.connect(overlay.host(n.name), n.listenPort))
    assert peer.node_id == n.nodeId
    assert {p.node_id for p in n.peers.snapshot()} == {x.nodeId, y.nodeId}
