"""
Resilience of the overlay: several Nodes in one reactor over real loopback
TCP, with short timings, facing lost connections, crashed and leaving
peers, restarts from a data directory, floods, slow readers and the
resource bounds of L{p2poverlay.node.NodeConfig}.

A crash is simulated without any BYE: the node's listening port goes away,
every one of its TCP connections is aborted and its membership (liveness
probes, redial links) stops, as if the process had been killed.  The
crashed node is left to the C{overlay} fixture, whose C{stopService} must
cope with a node in that state.

Raw clients are plain Twisted protocols that speak the wire protocol by
hand, some of them from 127.0.0.2 so that bans of that address can be told
apart from the well-behaved nodes on 127.0.0.1.
"""

import json
import socket

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import DeferredList, inlineCallbacks
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.internet.task import LoopingCall, deferLater

from p2poverlay.records import CONNECTED, DEAD, LEFT, RECONNECTING
from p2poverlay.errors import DeliveryFailed, PeerUnreachable
from p2poverlay.message import (
    Hello, PeerAddress, Peers, Ping, newMessageId, newNodeId,
)
from p2poverlay.store import NodeStore
from helpers import PROMPT, address, crash, waitFor

# Short timings so that failure detection, redialing and forgetting take
# a second or two instead of minutes.
FAST = dict(pingInterval=0.2, peerTimeout=1.0, reconnectInitialDelay=0.1,
            reconnectMaxDelay=0.5, forgetAfter=2.0)
# A second loopback address: traffic from it is told apart from 127.0.0.1.
OTHER_HOST = "127.0.0.2"


# -- helpers --------------------------------------------------------------------

def pause(seconds):
    return deferLater(reactor, seconds, lambda: None)


def state(node, other):
    """The state of C{other} in C{node}'s address book (None: not in it)."""
    entry = node.membership.book.get(other.nodeId)
    return entry.state if entry is not None else None


def freePorts(count):
    """Ports on 127.0.0.1 that nothing listens on (just released)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def assertByeLast(client, node, reasonPrefix):
    """
    The client got one BYE last (after the node's HELLO, if the client
    said HELLO first and was let in); the BYE's reason.
    """
    lines = client.lines()
    assert lines, "nothing received"
    hellos = [line for line in lines if line["type"] == "HELLO"]
    assert hellos in ([], lines[:1]), lines[:3]
    assert all(h["node_id"] == node.nodeId for h in hellos)
    byes = [line for line in lines if line["type"] == "BYE"]
    assert len(byes) == 1, byes
    assert lines[-1] is byes[0], lines[-3:]
    assert byes[0]["reason"].startswith(reasonPrefix), byes[0]
    return byes[0]["reason"]


@inlineCallbacks
def assertMessagesFlow(overlay, a, b):
    """A direct message each way and a broadcast from C{a} reach their ends."""
    tag = newMessageId()[:8]
    for sender, receiver in ((a, b), (b, a)):
        sent = sender.send(receiver.nodeId, f"direct {tag} from {sender.shortId}")
        sent.addTimeout(PROMPT, reactor)
        peer = yield sent
        assert peer.node_id == receiver.nodeId
        assert f"direct {tag} from {sender.shortId}" in \
            overlay.recorder(receiver).bodies("direct")
    a.broadcast(f"broadcast {tag}")
    yield waitFor(lambda: f"broadcast {tag}" in
                  overlay.recorder(b).bodies("broadcast"),
                  timeout=PROMPT, what="the broadcast to arrive")


# -- 1. a lost connection is redialed ------------------------------------------------

@pytest_twisted.inlineCallbacks
def test_an_aborted_connection_is_reconnected(overlay):
    a = yield overlay.start(name="a", **FAST)
    b = yield overlay.start(join=a, name="b", **FAST)
    yield waitFor(lambda: state(a, b) == state(b, a) == CONNECTED,
                  timeout=PROMPT, what="a and b to record each other")
    old = a.peers.connection(b.nodeId)

    lostAt = reactor.seconds()
    old.transport.abortConnection()
    yield waitFor(lambda: overlay.recorder(a).disconnected
                  and overlay.recorder(b).disconnected,
                  timeout=PROMPT, what="both ends to notice the loss")
    # Both nodes are back within a few redial delays.
    yield waitFor(
        lambda: b.nodeId in a.peers and a.nodeId in b.peers
        and len(overlay.recorder(a).connected) == 2
        and len(overlay.recorder(b).connected) == 2,
        timeout=PROMPT, what="a and b to reconnect")
    assert reactor.seconds() - lostAt < PROMPT
    assert a.peers.connection(b.nodeId) is not old
    assert state(a, b) == state(b, a) == CONNECTED
    # The duplicate dials (both ends redial) settle on one connection.
    yield waitFor(lambda: len(a.connections) == len(b.connections) == 1,
                  timeout=PROMPT, what="one connection each")
    peer = yield a.send(b.nodeId, "after the reconnect")
    assert peer.node_id == b.nodeId
    assert overlay.recorder(b).bodies("direct") == ["after the reconnect"]
    yield assertMessagesFlow(overlay, a, b)


# -- 2. a crashed peer is redialed, then forgotten -------------------------------------

@pytest_twisted.inlineCallbacks
def test_a_crashed_peer_is_reconnecting_then_forgotten(overlay):
    a = yield overlay.start(**FAST)
    b = yield overlay.start(join=a, **FAST)
    port = b.listenPort
    crashedAt = reactor.seconds()
    yield crash(b)
    yield waitFor(lambda: b.nodeId not in a.peers, timeout=PROMPT,
                  what="a to lose b")

    def waiting():
        entry = a.membership.book.get(b.nodeId)
        return (entry is not None and entry.state == RECONNECTING
                and entry.next_attempt is not None)
    yield waitFor(waiting, timeout=PROMPT, what="a to wait for its next try")
    entry = a.membership.book.get(b.nodeId)
    assert (entry.host, entry.port) == ("127.0.0.1", port)
    assert entry.next_attempt > crashedAt
    assert entry.next_attempt <= reactor.seconds() + FAST["reconnectMaxDelay"] \
        + FAST["reconnectInitialDelay"] + 0.1
    assert b.nodeId in a.membership.links

    forgetAfter = FAST["forgetAfter"]
    yield waitFor(lambda: a.membership.book.get(b.nodeId) is None,
                  timeout=forgetAfter + FAST["reconnectMaxDelay"] + PROMPT,
                  what="a to forget b")
    assert reactor.seconds() - crashedAt >= forgetAfter - 0.1
    assert a.membership.links == {}
    # Forgotten for good: no link comes back for it.
    yield pause(3 * FAST["reconnectMaxDelay"])
    assert a.membership.book.get(b.nodeId) is None
    assert a.membership.links == {}
    assert len(a.peers) == 0


# -- 3. a crashed peer back on its port is redialed ------------------------------------

@pytest_twisted.inlineCallbacks
def test_a_crashed_peer_back_on_its_port_is_redialed(overlay):
    a = yield overlay.start(name="a", **FAST)
    b = yield overlay.start(join=a, name="b", **FAST)
    port = b.listenPort
    yield crash(b)
    yield waitFor(lambda: state(a, b) == RECONNECTING
                  and b.nodeId in a.membership.links,
                  timeout=PROMPT, what="a to redial b")

    # The same node (same id, same port) restarts; it joins nobody.
    again = yield overlay.start(nodeId=b.nodeId, name="b",
                            listen=f"tcp:{port}:interface=127.0.0.1", **FAST)
    assert again.config.join == ()
    yield waitFor(lambda: b.nodeId in a.peers and a.nodeId in again.peers,
                  timeout=FAST["reconnectMaxDelay"] + PROMPT,
                  what="a's link to reach b again")
    assert state(a, again) == CONNECTED
    # a dialed: the connection is its link's.
    connection = a.peers.connection(b.nodeId)
    assert connection.outbound
    assert connection.link is a.membership.links.get(b.nodeId)
    assert not again.peers.connection(a.nodeId).outbound
    yield assertMessagesFlow(overlay, a, again)


# -- 4. a peer that leaves is not chased, and is welcome back --------------------------

class CountingFactory(ServerFactory):
    """Counts the connections made to a port."""

    def __init__(self):
        self.count = 0

    def buildProtocol(self, addr):
        self.count += 1
        return Protocol()


@pytest_twisted.inlineCallbacks
def test_a_leaving_peer_is_not_redialed_and_is_welcomed_back(overlay):
    a = yield overlay.start(name="a", **FAST)
    b = yield overlay.start(join=a, name="b", **FAST)
    port = b.listenPort
    yield b.stopService()
    yield waitFor(lambda: state(a, b) == LEFT, timeout=PROMPT,
                  what="a to see b leave")
    assert b.nodeId not in a.peers
    assert a.membership.links == {}
    (peer, reason), = overlay.recorder(a).disconnected
    assert peer.node_id == b.nodeId and reason == "node shutting down"

    # Nobody dials b's old address for many redial delays.
    sentinel = CountingFactory()
    listening = reactor.listenTCP(port, sentinel, interface="127.0.0.1")
    try:
        for _ in range(10):
            yield pause(FAST["reconnectMaxDelay"] / 5)
            assert a.membership.links == {}
            assert state(a, b) in (LEFT, None)
    finally:
        yield listening.stopListening()
    assert sentinel.count == 0

    # b restarts with the same id and joins a: a takes it back.
    again = yield overlay.start(nodeId=b.nodeId, name="b", join=a,
                            listen=f"tcp:{port}:interface=127.0.0.1", **FAST)
    assert b.nodeId in a.peers and a.nodeId in again.peers
    # (join() fires as the handshake completes, a moment before the
    # joining node records the peer in its address book.)
    yield waitFor(lambda: state(a, again) == state(again, a) == CONNECTED,
                  timeout=PROMPT, what="a and b to record each other")
    yield assertMessagesFlow(overlay, a, again)


# -- 5. persistence ---------------------------------------------------------------------

@pytest_twisted.inlineCallbacks
def test_a_restarted_node_keeps_its_id_and_redials_its_saved_peers(
        overlay, tmp_path):
    q = yield overlay.start(name="q", **FAST)
    r = yield overlay.start(join=q, name="r", **FAST)
    directory = tmp_path / "p"
    store = NodeStore(str(directory))
    store.open()
    try:
        p = yield overlay.start(store=store, join=q, name="p", **FAST)
        # It learns r from q and connects to it.
        yield waitFor(lambda: {q.nodeId, r.nodeId} <= set(
            i.node_id for i in p.peers.snapshot()), timeout=PROMPT,
            what="p to meet q and r")
        yield p.stopService()
    finally:
        store.close()
    yield waitFor(lambda: state(q, p) == LEFT and state(r, p) == LEFT,
                  timeout=PROMPT, what="q and r to see p leave")
    saved = json.loads((directory / "peers.json").read_text())
    assert {(e["node_id"], e["host"], e["port"]) for e in saved["peers"]} == {
        (q.nodeId, "127.0.0.1", q.listenPort),
        (r.nodeId, "127.0.0.1", r.listenPort)}

    store = NodeStore(str(directory))
    store.open()
    try:
        p2 = yield overlay.start(store=store, name="p", **FAST)
        assert p2.config.join == ()
        assert p2.nodeId == p.nodeId
        yield waitFor(lambda: q.nodeId in p2.peers and r.nodeId in p2.peers
                      and p2.nodeId in q.peers and p2.nodeId in r.peers,
                      timeout=PROMPT, what="p2 to redial its saved peers")
        assert state(q, p2) == state(r, p2) == CONNECTED
        assert state(p2, q) == state(p2, r) == CONNECTED
        assert p2.peers.connection(q.nodeId).outbound
        assert p2.peers.connection(r.nodeId).outbound
        yield assertMessagesFlow(overlay, p2, q)
        yield p2.stopService()
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
@pytest_twisted.inlineCallbacks
def test_corrupt_saved_peers_give_a_fresh_start(overlay, tmp_path, log,
                                                 content):
    directory = tmp_path / "c"
    directory.mkdir()
    (directory / "peers.json").write_bytes(content)
    store = NodeStore(str(directory))
    store.open()
    try:
        node = yield overlay.start(store=store, **FAST)
        assert node.running and node.listenPort
        assert len(node.membership.book) == 0
        assert node.membership.links == {}
        warnings = [w for w in log.warningTexts() if "peers.json" in w]
        assert len(warnings) == 1, log.warningTexts()
        assert log.failures() == [], log.describeFailures()
        # It serves as usual, and saves a good file over the bad one.
        other = yield overlay.start(join=node, **FAST)
        assert other.nodeId in node.peers
        yield node.stopService()
    finally:
        store.close()
    saved = json.loads((directory / "peers.json").read_text())
    assert [e["node_id"] for e in saved["peers"]] == [other.nodeId]


# -- 6. three of ten crash ----------------------------------------------------------------

@pytest_twisted.inlineCallbacks
def test_broadcasts_reach_every_survivor_exactly_once_when_3_of_10_crash(
        overlay):
    # minPeers=9: every node a neighbour of every other.
    first = yield overlay.start(name="n0", minPeers=9, **FAST)
    nodes = [first]
    for i in range(1, 10):
        nodes.append((yield overlay.start(join=first, name=f"n{i}",
                                          minPeers=9, **FAST)))
    yield waitFor(lambda: all(len(n.peers) == 9 for n in nodes),
                  timeout=15, what="a full mesh of 10")
    # The node everyone joined through is one of the dead.
    dead = [nodes[0], nodes[4], nodes[7]]
    survivors = [n for n in nodes if n not in dead]
    deadIds = {n.nodeId for n in dead}
    crashedAt = reactor.seconds()
    yield DeferredList([crash(n) for n in dead])
    deadline = FAST["peerTimeout"] + 2 * FAST["pingInterval"] + 1.0
    yield waitFor(lambda: all(
        not deadIds & {p.node_id for p in n.peers.snapshot()}
        for n in survivors), timeout=deadline,
        what="the survivors to drop the dead")
    assert reactor.seconds() - crashedAt <= deadline + 0.5
    for n in survivors:
        assert len(n.peers) == len(survivors) - 1

    for origin in survivors:
        origin.broadcast(f"from {origin.name}")
    expected = {n: sorted(f"from {o.name}" for o in survivors if o is not n)
                for n in survivors}
    yield waitFor(lambda: all(
        sorted(overlay.recorder(n).bodies("broadcast")) == expected[n]
        for n in survivors), timeout=PROMPT, what="every broadcast everywhere")
    # Let the flood's duplicates arrive, then check none was delivered.
    yield pause(0.5)
    for n in survivors:
        assert sorted(overlay.recorder(n).bodies("broadcast")) == expected[n]
    for n in dead:
        assert not any(body.startswith("from ")
                       for body in overlay.recorder(n).bodies("broadcast"))

    # The dead are forgotten after forgetAfter, and no links remain.
    yield waitFor(lambda: all(
        not any(n.membership.book.get(i) for i in deadIds)
        and not deadIds & set(n.membership.links) for n in survivors),
        timeout=FAST["forgetAfter"] + FAST["reconnectMaxDelay"] + PROMPT,
        what="the survivors to forget the dead")


# -- 7. ten thousand direct messages ---------------------------------------------------------

@pytest_twisted.inlineCallbacks
def test_ten_thousand_direct_messages_arrive_once_and_in_order(overlay):
    # Default limits: the rate burst (10,000) and the send buffer (4 MiB)
    # take this without throttling anything away.
    a = yield overlay.start(name="a")
    b = yield overlay.start(join=a, name="b")
    count = 10_000
    started = reactor.seconds()
    sends = [a.send(b.nodeId, f"{i:05d}") for i in range(count)]
    everything = DeferredList(sends, consumeErrors=True)
    everything.addTimeout(30, reactor)
    results = yield everything
    elapsed = reactor.seconds() - started
    failures = [r for ok, r in results if not ok]
    assert failures == [], failures[0]
    assert all(peer.node_id == b.nodeId for _, peer in results)
    assert overlay.recorder(b).bodies("direct") == [
        f"{i:05d}" for i in range(count)]
    assert b.stats.directDelivered == count
    # Same connection throughout, and nobody was banned for it.
    assert len(a.connections) == len(b.connections) == 1
    assert not b.misbehaviour.isBanned("127.0.0.1")
    assert elapsed < 15, f"10,000 messages took {elapsed:.1f} s"


# -- 8. bounds ---------------------------------------------------------------------------------

@pytest_twisted.inlineCallbacks
def test_max_inbound_turns_away_the_extra_connection(overlay, raw):
    t = yield overlay.start(maxInbound=3)
    first = []
    for _ in range(3):
        first.append((yield raw(t)))
    yield waitFor(lambda: len(t.connections) == 3, timeout=PROMPT,
                  what="three connections accepted")
    extra = yield raw(t)
    yield waitFor(lambda: extra.closed, timeout=PROMPT,
                  what="the fourth connection to be closed")
    assert assertByeLast(extra, t, "too many") == \
        "too many inbound connections"
    yield pause(0.1)
    assert not any(c.closed for c in first)
    # Still in their handshake: the node says HELLO once they have.
    assert [c.types() for c in first] == [[]] * 3
    # The bound is on connections open now: one goes, another may come.
    first[0].close()
    yield waitFor(lambda: len(t.connections) == 2, timeout=PROMPT,
                  what="the node to see one go")
    late = yield raw(t)
    late.send(Hello(newNodeId(), 1, 0, "late"))
    yield waitFor(lambda: late.received, timeout=PROMPT, what="HELLO")
    yield pause(0.1)
    assert not late.closed and late.types() == ["HELLO"]
    assert len(t.connections) == 3


@pytest_twisted.inlineCallbacks
def test_max_outbound_refuses_a_second_dial(overlay):
    n = yield overlay.start(maxOutbound=1, autoConnect=False)
    x = yield overlay.start(autoConnect=False)
    y = yield overlay.start(autoConnect=False)
    peer = yield n.connect("127.0.0.1", x.listenPort)
    assert peer.node_id == x.nodeId
    with pytest.raises(PeerUnreachable) as info:
        yield n.connect("127.0.0.1", y.listenPort)
    assert "outbound" in str(info.value)
    with pytest.raises(PeerUnreachable):
        yield n.send(address(y), "through a dial")
    assert {p.node_id for p in n.peers.snapshot()} == {x.nodeId}
    # Inbound connections are counted apart: y may still dial n.
    peer = yield y.connect("127.0.0.1", n.listenPort)
    assert peer.node_id == n.nodeId
    assert {p.node_id for p in n.peers.snapshot()} == {x.nodeId, y.nodeId}


def peersMessage(count):
    """A PEERS message of C{count} distinct nodes that listen nowhere."""
    return Peers(tuple(
        PeerAddress(newNodeId(), "127.0.0.1", port, f"ghost{i}")
        for i, port in enumerate(freePorts(count))))


@pytest_twisted.inlineCallbacks
def test_one_peer_exchange_teaches_at_most_max_peers_per_exchange(
        overlay, raw):
    t = yield overlay.start(maxPeersPerExchange=5, **FAST)
    client = yield raw(t)
    rawId = newNodeId()
    message = peersMessage(50)
    client.send(Hello(rawId, 1, 0, "raw"), message)
    ids = {entry.node_id for entry in message.peers}

    def learned():
        return [e for e in t.membership.book.all() if e.node_id in ids]
    yield waitFor(lambda: rawId in t.peers and learned(), timeout=PROMPT,
                  what="the node to take the PEERS message")
    yield pause(0.3)
    assert 0 < len(learned()) <= 5, len(learned())
    assert len(t.membership.book) <= 6  # the raw client and what it taught
    # A valid message: the client is still connected.
    assert rawId in t.peers and not client.closed


@pytest_twisted.inlineCallbacks
def test_the_address_book_never_exceeds_its_size(overlay, raw):
    t = yield overlay.start(addressBookSize=4, **FAST)
    book = t.membership.book
    sizes = []
    put = book._put

    def recordingPut(entry):
        result = put(entry)
        sizes.append(len(book))
        return result
    book._put = recordingPut

    client = yield raw(t)
    rawId = newNodeId()
    client.send(Hello(rawId, 1, 0, "raw"), peersMessage(50))
    yield waitFor(lambda: rawId in t.peers and len(sizes) > 4,
                  timeout=PROMPT, what="the first PEERS message")
    # Real nodes join too; more PEERS keep coming.
    m1 = yield overlay.start(join=t, **FAST)
    client.send(peersMessage(50))
    m2 = yield overlay.start(join=t, **FAST)
    client.send(peersMessage(50))
    yield waitFor(lambda: len(sizes) >= 150, timeout=PROMPT,
                  what="all PEERS entries to be taken")
    yield pause(0.3)
    assert max(sizes) <= 4, max(sizes)
    assert len(book) <= 4
    # What made room were the nodes heard of, never the connected ones.
    for nodeId in (rawId, m1.nodeId, m2.nodeId):
        assert book.get(nodeId) is not None
        assert book.get(nodeId).state == CONNECTED


# -- 9. rate limits and bans ------------------------------------------------------------------

@pytest_twisted.inlineCallbacks
def test_a_flooding_address_is_banned_and_others_are_served(overlay, raw,
                                                            log):
    t = yield overlay.start(name="t", messageRate=50, messageBurst=50,
                            banThreshold=10, banTime=30, autoConnect=False)
    a = yield overlay.start(join=t, name="a", autoConnect=False)
    flooder = yield raw(t, OTHER_HOST)
    rawId = newNodeId()
    assert flooder.transport.getHost().host == OTHER_HOST
    flooder.send(Hello(rawId, 1, 0, "flood"))
    yield waitFor(lambda: rawId in t.peers, timeout=PROMPT,
                  what="the flooder's handshake")
    # 20,000 PINGs written at once: far past 50 a second.
    flooder.transport.write(b"".join(
        Ping(i).encode() + b"\n" for i in range(20_000)))
    yield waitFor(lambda: flooder.closed, timeout=PROMPT,
                  what="the flooder to be cut off")
    # HELLO first and one BYE, whose reason is the ban (that the BYE is
    # also the last line is checked at the end).
    lines = flooder.lines()
    assert lines[0]["type"] == "HELLO" and lines[0]["node_id"] == t.nodeId
    byes = [line for line in lines if line["type"] == "BYE"]
    assert len(byes) == 1, byes
    reason = byes[0]["reason"]
    assert reason == "banned: more than 50 messages/s"
    banning = [w for w in log.warningTexts() if "banning 127.0.0.2" in w]
    assert len(banning) == 1, log.warningTexts()
    assert t.misbehaviour.isBanned(OTHER_HOST)
    assert t.misbehaviour.bannedUntil(OTHER_HOST) > reactor.seconds() + 25
    yield waitFor(lambda: rawId not in t.peers, timeout=PROMPT)
    assert t.membership.book.get(rawId).state == DEAD
    # Only a fraction of the flood was read before the ban.
    pongs = flooder.types().count("PONG")
    assert 0 < pongs < 2_000, pongs

    # The banned address is turned away at once, even with a fresh id.
    again = yield raw(t, OTHER_HOST)
    yield waitFor(lambda: again.closed, timeout=PROMPT,
                  what="the banned address to be closed")
    assert assertByeLast(again, t, "banned: ") == reason
    assert again.types() == ["BYE"]

    # 127.0.0.1 is another address: a is served as before.
    assert not t.misbehaviour.isBanned("127.0.0.1")
    assert a.nodeId in t.peers and overlay.recorder(a).disconnected == []
    yield assertMessagesFlow(overlay, a, t)
    assert log.failures() == [], log.describeFailures()

    # Nothing follows the BYE: it is the last thing a closing node says.
    after = lines[lines.index(byes[0]) + 1:]
    assert after == [], f"{len(after)} line(s) after the BYE: {after[:3]}"


@pytest_twisted.inlineCallbacks
def test_two_protocol_errors_in_a_row_ban_an_address(overlay, raw, log):
    # Defaults: banThreshold 100, a protocol error is worth 50 points.
    t = yield overlay.start(name="t", autoConnect=False)
    a = yield overlay.start(join=t, name="a", autoConnect=False)
    for attempt in range(2):
        client = yield raw(t, OTHER_HOST)
        client.transport.write(b"garbage\n")
        yield waitFor(lambda client=client: client.closed, timeout=PROMPT,
                      what=f"garbage connection {attempt + 1} to be closed")
        assertByeLast(client, t, "protocol error: not valid JSON")
    # The second error, a moment after the first, reaches the threshold.
    assert t.misbehaviour.isBanned(OTHER_HOST), \
        f"score {t.misbehaviour.score(OTHER_HOST):.3f} after two errors"
    assert any("banning 127.0.0.2" in w for w in log.warningTexts()), \
        log.warningTexts()
    third = yield raw(t, OTHER_HOST)
    yield waitFor(lambda: third.closed, timeout=PROMPT)
    assert third.types() == ["BYE"]
    assertByeLast(third, t, "banned: protocol error")
    assert not t.misbehaviour.isBanned("127.0.0.1")
    yield assertMessagesFlow(overlay, a, t)


# -- 10. a slow reader ------------------------------------------------------------------------

@pytest_twisted.inlineCallbacks
def test_a_peer_that_stops_reading_is_bounded_then_dropped(overlay, raw, log):
    sendBuffer = 64 * 1024
    t = yield overlay.start(name="t", maxSendBuffer=sendBuffer,
                            peerTimeout=1.0, pingInterval=0.2,
                            autoConnect=False)
    a = yield overlay.start(join=t, name="a", autoConnect=False)
    client = yield raw(t)
    rawId = newNodeId()
    client.send(Hello(rawId, 1, 0, "slow"))
    yield waitFor(lambda: rawId in t.peers, timeout=PROMPT,
                  what="the slow client's handshake")
    # It stops reading, but keeps talking so that it is not merely silent.
    client.transport.pauseProducing()
    nonces = iter(range(10**6))
    pinger = LoopingCall(lambda: client.closed or client.send(Ping(next(nonces))))
    pinger.start(0.1)

    slow = t.peers.connection(rawId)
    toA = t.peers.connection(a.nodeId)
    outbox = slow.outbox
    seen = {"max": 0, "forced": 0}
    write = outbox.write

    def recordingWrite(line, force=False):
        taken = write(line, force)
        if force:
            seen["forced"] += len(line) + 1
        seen["max"] = max(seen["max"], outbox.queuedBytes)
        return taken
    outbox.write = recordingWrite

    filler = "x" * 10_000
    sent = []
    direct = None
    deadline = reactor.seconds() + 10
    try:
        for i in range(2000):
            if reactor.seconds() > deadline:
                break
            # Pace the broadcasts to what a, a good reader, takes: only the
            # slow reader is to fall behind.
            while toA.outbox.paused or toA.outbox.queuedBytes:
                assert reactor.seconds() < deadline, "a stopped reading"
                yield pause(0.001)
            if i % 20 == 0:
                yield pause(0)
            body = f"{i:05d} {filler}"
            t.broadcast(body)
            sent.append(body)
            if direct is None and t.stats.broadcastsDropped:
                # The slow client's send buffer is full right now.
                assert rawId in t.peers
                assert outbox.queuedBytes > sendBuffer - 11_000
                direct = t.send(rawId, "y" * 16_000)
            if rawId not in t.peers and len(sent) >= 300:
                break
        assert direct is not None, "no broadcast was ever dropped"
        with pytest.raises(DeliveryFailed) as info:
            yield direct
        assert "send buffer" in str(info.value)
        assert t.stats.broadcastsDropped > 0
        assert seen["max"] <= sendBuffer + seen["forced"], seen

        yield waitFor(lambda: rawId not in t.peers, timeout=PROMPT,
                      what="the node to drop the slow reader")
        drops = [r for p, r in overlay.recorder(t).disconnected
                 if p.node_id == rawId]
        assert drops == ["not reading"]
        assert any("has not read for" in w for w in log.warningTexts()), \
            log.warningTexts()
        yield waitFor(lambda: client.closed, timeout=PROMPT,
                      what="the slow client to see the end")
        # a got every broadcast, in order, and is still connected.
        yield waitFor(lambda: len(overlay.recorder(a).messages) >= len(sent),
                      timeout=PROMPT, what="a to get every broadcast")
        assert overlay.recorder(a).bodies("broadcast") == sent
        assert a.nodeId in t.peers and overlay.recorder(a).disconnected == []
        assert log.failures() == [], log.describeFailures()
    finally:
        if pinger.running:
            pinger.stop()
