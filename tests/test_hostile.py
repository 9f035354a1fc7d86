"""
Honest traffic is never punished, over real loopback sockets: a fast
sender is slowed, not banned; a refusal is not a protocol error; a relayed
message keeps its size; a line over the limit closes that link only.
(127.0.0.2 plays a second host.)
"""

import re
import time

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.protocol import Factory, Protocol

from p2poverlay import MessageTooLarge, PeerFull
from p2poverlay.message import (
    DIRECT, NEIGHBOUR, Broadcast, Graft, Hello, PeerAddress, Peers, Ping,
    newMessageId, newNodeId,
)
from helpers import PROMPT, waitFor
from test_resilience import OTHER_HOST, assertMessagesFlow, pause


@inlineCallbacks
def peer(raw, node, name, role=NEIGHBOUR):
    """A raw client from OTHER_HOST that completed its handshake with C{node}."""
    client = yield raw(node, OTHER_HOST)
    nodeId = newNodeId()
    client.send(Hello(nodeId, 1, 0, name, role))
    yield waitFor(lambda: nodeId in node.peers, timeout=PROMPT,
                  what=f"the handshake of {name}")
    return client, nodeId



@pytest_twisted.inlineCallbacks
def test_a_fast_sender_is_slowed_down_never_banned(overlay, raw):
    rate, burst, count = 1000, 100, 3000
    t = yield overlay.start(name="t", messageRate=rate, messageBurst=burst,
                            autoConnect=False)
    a = yield overlay.start(join=t, name="a", autoConnect=False)
    sender, rawId = yield peer(raw, t, "fast")
    started = time.monotonic()
    sender.transport.write(b"".join(Ping(i).encode() + b"\n"
                                    for i in range(count)))
    yield waitFor(lambda: sender.types().count("PONG") == count,
                  timeout=PROMPT + count / rate, what="every PING answered")
    elapsed = time.monotonic() - started
    # Read no faster than the rate allows (beyond the burst), and every
    # one of them read: TCP held the rest back.
    assert elapsed >= (count - burst) / rate * 0.9
    assert not sender.closed
    assert t.misbehaviour.score(OTHER_HOST) == 0
    assert not t.misbehaviour.isBanned(OTHER_HOST)
    assert rawId in t.peers
    yield assertMessagesFlow(overlay, a, t)


@pytest_twisted.inlineCallbacks
def test_a_node_with_no_room_is_not_taken_for_a_protocol_breaker(overlay):
    seed = yield overlay.start(name="seed", maxInbound=1, autoConnect=False)
    yield overlay.start(join=seed, name="first", autoConnect=False)
    newcomer = yield overlay.start(name="new", autoConnect=False)
    for _ in range(3):
        with pytest.raises(PeerFull, match="too many inbound connections"):
            yield newcomer.join("127.0.0.1", seed.listenPort)
    # Three refusals before any HELLO: no points, no ban; the seed is only
    # left alone for a while.
    assert newcomer.misbehaviour.score("127.0.0.1") == 0
    assert not newcomer.misbehaviour.isBanned("127.0.0.1")
    assert seed.misbehaviour.score("127.0.0.1") == 0


@pytest_twisted.inlineCallbacks
def test_a_relayed_message_keeps_its_size(overlay):
    # 'é' is two bytes in UTF-8, six as an escape: escaped, a relay would
    # turn this 60 kB body into 180 kB, past the 64 KiB line limit.
    body = "é" * 30_000 + "\ud800 and a lone surrogate"
    a = yield overlay.start(name="a", autoConnect=False)
    b = yield overlay.start(join=a, name="b", autoConnect=False)
    c = yield overlay.start(join=b, name="c", autoConnect=False)
    a.broadcast(body)
    yield waitFor(lambda: overlay.recorder(c).bodies("broadcast") == [body],
                  timeout=PROMPT, what="the broadcast two hops away")
    assert overlay.recorder(b).bodies("broadcast") == [body]
    for node in (a, b, c):
        assert overlay.recorder(node).disconnected == []


@pytest_twisted.inlineCallbacks
def test_the_origin_refuses_a_message_that_would_not_fit(overlay):
    a = yield overlay.start(name="a", autoConnect=False)
    b = yield overlay.start(join=a, name="b", autoConnect=False)
    with pytest.raises(MessageTooLarge) as caught:
        a.broadcast("x" * 70_000)
    assert re.fullmatch(r"the message takes 70\d{3} bytes, more than the "
                        r"65536-byte limit of a line", str(caught.value))
    with pytest.raises(MessageTooLarge):
        yield a.send(b.nodeId, "é" * 40_000)
    yield assertMessagesFlow(overlay, a, b)
    # Neither refused message went anywhere.
    assert all(len(body) < 1000 for body in overlay.recorder(b).bodies())


@pytest_twisted.inlineCallbacks
def test_a_line_over_the_limit_closes_that_link_only(overlay, raw):
    t = yield overlay.start(name="t", maxLineLength=1024, autoConnect=False)
    a = yield overlay.start(join=t, name="a", autoConnect=False)
    for _ in range(3):
        client = yield raw(t, OTHER_HOST)
        client.send(Hello(newNodeId(), 1, 0, "relay"))
        client.transport.write(b'{"type":"PING","nonce":' + b"1" * 2000
                               + b"}\n")
        yield waitFor(lambda client=client: client.closed, timeout=PROMPT,
                      what="the long line's link to close")
        byes = [line for line in client.lines() if line["type"] == "BYE"]
        assert [bye["reason"] for bye in byes] == ["line longer than 1024 bytes"]
    # Three of them, and still no misbehaviour; the other host is served.
    assert t.misbehaviour.score(OTHER_HOST) == 0
    assert not t.misbehaviour.isBanned(OTHER_HOST)
    yield assertMessagesFlow(overlay, a, t)


@pytest_twisted.inlineCallbacks
def test_a_repeated_graft_does_not_amplify(overlay, raw):
    t = yield overlay.start(name="t", autoConnect=False)
    client, _ = yield peer(raw, t, "grafter")
    messageId, _ = t.broadcast("x" * 1000)
    # 500 GRAFTs for it in one go (about 30 kB in), then a PING: its PONG
    # says every GRAFT before it has been handled.
    client.send(*([Graft((messageId,))] * 500), Ping(7))
    yield waitFor(lambda: "PONG" in client.types(), timeout=PROMPT,
                  what="the PONG after the GRAFTs")
    copies = [line for line in client.lines()
              if line["type"] == "BROADCAST" and line["id"] == messageId]
    # The eager copy, and one for the GRAFT: not 500 kB out.
    assert len(copies) <= 2, len(copies)
    assert not client.closed


class Counting(Protocol):
    """Counts the connections a third party receives, and says nothing."""

    def connectionMade(self) -> None:
        self.factory.count += 1
        self.transport.abortConnection()


@pytest_twisted.inlineCallbacks
def test_peer_exchange_cannot_aim_a_node_at_a_third_party(overlay, raw):
    victimFactory = Factory.forProtocol(Counting)
    victimFactory.count = 0
    victim = reactor.listenTCP(0, victimFactory, interface="127.0.0.1")
    try:
        t = yield overlay.start(name="t", minPeers=8, reconnectMaxDelay=30.0,
                                handshakeTimeout=0.5, connectTimeout=0.5)
        attacker = yield raw(t, OTHER_HOST)
        attacker.send(Hello(newNodeId(), 1, 0, "aimer"))
        # 100 made-up nodes, all at the victim's address.
        attacker.send(Peers(tuple(
            PeerAddress(newNodeId(), "127.0.0.1", victim.getHost().port)
            for _ in range(100))))
        yield waitFor(lambda: victimFactory.count >= 1, timeout=PROMPT,
                      what="the first dial of the victim")
        yield pause(3.0)
        # The address did not answer: no id that names it is dialed again
        # within reconnectMaxDelay.
        assert victimFactory.count <= 2, victimFactory.count
    finally:
        yield victim.stopListening()


@pytest_twisted.inlineCallbacks
def test_addresses_learned_from_one_peer_are_budgeted(overlay, raw):
    t = yield overlay.start(name="t", autoConnect=False,
                            maxPeersPerExchange=1000, addressBookSize=5000)
    attacker = yield raw(t, OTHER_HOST)
    attacker.send(Hello(newNodeId(), 1, 0, "flooder"))
    for start in range(0, 1200, 100):  # a receiver reads 100 a message
        attacker.send(Peers(tuple(
            PeerAddress(newNodeId(), f"10.9.{i // 250}.{i % 250 + 1}", 9000)
            for i in range(start, start + 100))))
    attacker.send(Ping(1))
    yield waitFor(lambda: "PONG" in attacker.types(), timeout=PROMPT,
                  what="every PEERS handled")
    # The burst, and what a second or two refilled: not 1,200.
    assert 1000 <= len(t.membership.book) <= 1100, len(t.membership.book)


@pytest_twisted.inlineCallbacks
def test_a_broadcast_over_a_direct_link_is_not_delivered(overlay, raw):
    t = yield overlay.start(name="t", autoConnect=False)
    a = yield overlay.start(join=t, name="a", autoConnect=False)
    for role, delivered in ((DIRECT, False), (NEIGHBOUR, True)):
        client, rawId = yield peer(raw, t, "sender", role)
        body = f"over a {role} link"
        client.send(Broadcast(newMessageId(), rawId, 5, body,
                              time=int(time.time() * 1000)), Ping(1))
        yield waitFor(lambda client=client: "PONG" in client.types(),
                      timeout=PROMPT, what="the broadcast handled")
        if delivered:
            yield waitFor(lambda body=body:
                          body in overlay.recorder(a).bodies("broadcast"),
                          timeout=PROMPT, what="the relayed broadcast")
        assert (body in overlay.recorder(t).bodies("broadcast")) == delivered
        assert (body in overlay.recorder(a).bodies("broadcast")) == delivered
        client.close()


@pytest_twisted.inlineCallbacks
def test_a_ban_spares_honest_peers_that_share_the_address(overlay, raw):
    t = yield overlay.start(name="t", autoConnect=False)
    honest, honestId = yield peer(raw, t, "honest")
    # Another process on the same host breaks the protocol twice: banned.
    for _ in range(2):
        offender = yield raw(t, OTHER_HOST)
        offender.transport.write(b"garbage\n")
        yield waitFor(lambda offender=offender: offender.closed,
                      timeout=PROMPT, what="the offender cut off")
    assert t.misbehaviour.isBanned(OTHER_HOST)
    refused = yield raw(t, OTHER_HOST)
    yield waitFor(lambda: refused.closed, timeout=PROMPT,
                  what="a new connection from the banned address refused")
    # The honest peer on that address is still connected and answered.
    honest.send(Ping(42))
    yield waitFor(lambda: "PONG" in honest.types(), timeout=PROMPT,
                  what="the honest peer's PONG")
    assert not honest.closed and honestId in t.peers
