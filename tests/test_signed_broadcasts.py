"""
Signed broadcasts over real loopback TLS: a forged origin, a tampered body
and a replay reach no node; the neighbour that sent a forgery is blamed,
and nobody else.
"""

from dataclasses import replace

import pytest_twisted

from p2poverlay.identity import NodeKey
from p2poverlay.message import (
    NEIGHBOUR, Broadcast, Hello, P2PMessage, Ping, newMessageId,
)
from p2poverlay.signing import Signer
from helpers import PROMPT, waitFor

TLS = dict(plaintext=False, autoConnect=False)


@pytest_twisted.inlineCallbacks
def neighbourOf(raw, node, source):
    """A raw TLS client with a key of its own, a neighbour of C{node}."""
    key = NodeKey.generate()
    client = yield raw(node, source, key=key)
    client.send(Hello(key.nodeId, 1, 0, "raw", NEIGHBOUR))
    yield waitFor(lambda: key.nodeId in node.peers, timeout=PROMPT,
                  what="the raw neighbour admitted")
    client.key = key
    return client


def broadcastsIn(client):
    return [P2PMessage.fromDict(line) for line in client.lines()
            if line["type"] == "BROADCAST"]


@pytest_twisted.inlineCallbacks
def genuineBroadcasts(overlay, raw, count):
    """C{count} broadcasts signed by a node, as a neighbour of it got them."""
    origin = yield overlay.start(name="origin", **TLS)
    listener = yield neighbourOf(raw, origin, "127.0.0.9")
    for n in range(count):
        origin.broadcast(f"genuine {n}")
    yield waitFor(lambda: len(broadcastsIn(listener)) == count,
                  timeout=PROMPT, what="the genuine broadcasts")
    return origin, broadcastsIn(listener)


@pytest_twisted.inlineCallbacks
def threeNodes(overlay):
    t = yield overlay.start(name="t", seenCacheSize=2, **TLS)
    a = yield overlay.start(join=t, name="a", **TLS)
    b = yield overlay.start(join=t, name="b", **TLS)
    yield waitFor(lambda: len(t.peers) == 2, timeout=PROMPT,
                  what="a and b joined t")
    return t, a, b


def delivered(overlay, nodes):
    return [overlay.recorder(n).bodies("broadcast") for n in nodes]


@pytest_twisted.inlineCallbacks
def test_a_tampered_body_or_forged_origin_reaches_nobody(overlay, raw, log):
    origin, (genuine,) = yield genuineBroadcasts(overlay, raw, 1)
    t, a, b = yield threeNodes(overlay)
    mallory = NodeKey.generate()
    forgeries = [
        # A relay changed the body under the same id and signature.
        replace(genuine, body="send your coins to mallory"),
        # Another node's origin, signed with mallory's own key.
        Signer(mallory).broadcast(Broadcast(
            newMessageId(), a.nodeId, 5, "a says: pay mallory", "a",
            time=genuine.time)),
        # Another node's origin, not signed at all.
        Broadcast(newMessageId(), a.nodeId, 5, "a, unsigned", "a",
                  time=genuine.time),
    ]
    for n, forgery in enumerate(forgeries):
        sender = yield neighbourOf(raw, t, f"127.0.0.{2 + n}")
        sender.send(forgery)
        yield waitFor(lambda sender=sender: sender.closed, timeout=PROMPT,
                      what="the sender of a forgery closed")
        assert "protocol_error" in str(sender.lines()[-1])
    assert t.stats.broadcastsForged == 3
    # The genuine one still goes everywhere, through an honest relay.
    honest = yield neighbourOf(raw, t, "127.0.0.6")
    honest.send(genuine, Ping(1))
    yield waitFor(lambda: all(delivered(overlay, [t, a, b])), timeout=PROMPT,
                  what="the genuine broadcast delivered")
    assert delivered(overlay, [t, a, b]) == [["genuine 0"]] * 3
    assert not honest.closed
    assert [w for w in log.warningTexts() if "bad signature" in w]


@pytest_twisted.inlineCallbacks
def test_a_replay_is_dropped_once_the_seen_cache_forgot_it(overlay, raw):
    origin, genuine = yield genuineBroadcasts(overlay, raw, 3)
    t, a, b = yield threeNodes(overlay)
    relay = yield neighbourOf(raw, t, "127.0.0.2")
    relay.send(*genuine)
    yield waitFor(lambda: len(overlay.recorder(b).bodies("broadcast")) == 3,
                  timeout=PROMPT, what="three broadcasts delivered")
    # t remembers two ids: the first is forgotten, and comes again.
    relay.send(genuine[0], Ping(7))
    yield waitFor(lambda: "PONG" in relay.types(), timeout=PROMPT,
                  what="the replay handled")
    assert t.stats.broadcastsStale == 1
    assert delivered(overlay, [t, a, b]) == [
        ["genuine 0", "genuine 1", "genuine 2"]] * 3
    assert not relay.closed  # A late copy is no forgery: nobody is blamed.


@pytest_twisted.inlineCallbacks
def test_a_broadcast_older_than_the_replay_window_is_dropped(overlay, raw):
    t, a, b = yield threeNodes(overlay)
    sender = yield neighbourOf(raw, t, "127.0.0.2")
    signer = Signer(sender.key)
    now = int(t.reactor.seconds() * 1000)
    window = int(t.config.broadcastWindow * 1000)
    stamps = {"too old": now - window - 60_000,
              "from the future": now + window + 60_000, "fresh": now}
    for body, stamp in stamps.items():
        sender.send(signer.broadcast(Broadcast(
            newMessageId(), sender.key.nodeId, 5, body, "raw", time=stamp)))
    yield waitFor(lambda: all(delivered(overlay, [t, a, b])), timeout=PROMPT,
                  what="the fresh broadcast delivered")
    assert delivered(overlay, [t, a, b]) == [["fresh"]] * 3
    assert t.stats.broadcastsStale == 2
    assert not sender.closed
