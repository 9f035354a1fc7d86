"""
Resilience of the overlay on the wire: several Nodes in one reactor over
real loopback TCP, facing a long stream of direct messages, floods, bad
input, slow readers and the resource bounds of
L{p2poverlay.node.NodeConfig}, from hand-written clients.  Lost
connections, crashed and leaving peers and restarts from a data directory
are tested in memory, in C{test_resilience_memory.py}.

Raw clients are plain Twisted protocols that speak the wire protocol by
hand, some of them from 127.0.0.2 so that bans of that address can be told
apart from the well-behaved nodes on 127.0.0.1.
"""

import socket

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import DeferredList, inlineCallbacks
from twisted.internet.task import LoopingCall, deferLater

from p2poverlay.records import CONNECTED
from p2poverlay.errors import DeliveryFailed
from p2poverlay.message import (
    Hello, PeerAddress, Peers, Ping, newMessageId, newNodeId,
)
from helpers import PROMPT, waitFor

# Short timings: probes, redials and forgetting within a second or two.
FAST = dict(pingInterval=0.2, peerTimeout=1.0, reconnectInitialDelay=0.1,
            reconnectMaxDelay=0.5, forgetAfter=2.0)
# A second loopback address: traffic from it is told apart from 127.0.0.1.
OTHER_HOST = "127.0.0.2"


# -- helpers --------------------------------------------------------------------

def pause(seconds):
    return deferLater(reactor, seconds, lambda: None)


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


# -- 1. ten thousand direct messages ---------------------------------------------------------

@pytest_twisted.inlineCallbacks
def test_ten_thousand_direct_messages_arrive_once_and_in_order(overlay):
    # Default limits: the send window paces the sender below the rate
    # limit, within the send buffer (4 MiB), and nothing is thrown away.
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


# -- 2. bounds ---------------------------------------------------------------------------------

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
    assert not late.closed and late.types() == ["HELLO", "PEERS"]
    assert len(t.connections) == 3


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


# -- 3. rate limits and bans ------------------------------------------------------------------

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


# -- 4. a slow reader -------------------------------------------------------------------------

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
