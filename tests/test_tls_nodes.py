"""
Nodes over TLS, on real loopback sockets: each proves the key its node id
is derived from, and a peer that claims another node's id is refused.
"""

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.endpoints import (
    TCP4ClientEndpoint, connectProtocol, wrapClientTLS,
)

from p2poverlay.errors import HandshakeFailed
from p2poverlay.identity import NodeKey
from p2poverlay.message import DIRECT, NEIGHBOUR, Hello, Ping
from p2poverlay.views import peersLines, peersView
from helpers import PROMPT, RawClient, address, waitFor
from test_resilience import assertByeLast, assertMessagesFlow
from test_tls import RSACreator

TLS = dict(plaintext=False)


@pytest_twisted.inlineCallbacks
def test_nodes_over_tls_know_each_other_by_their_keys(overlay):
    a = yield overlay.start(name="a", **TLS)
    b = yield overlay.start(join=a, name="b", **TLS)
    assert a.nodeId == a.key.nodeId and b.nodeId == b.key.nodeId
    yield waitFor(lambda: b.nodeId in a.peers and a.nodeId in b.peers,
                  timeout=PROMPT, what="a and b connected")
    connection = a.peers.connection(b.nodeId)
    assert connection.overTLS and connection.peerKey == b.key.publicBytes
    yield assertMessagesFlow(overlay, a, b)


@pytest_twisted.inlineCallbacks
def test_a_peer_claiming_another_nodes_id_is_refused(overlay, raw):
    a = yield overlay.start(name="a", **TLS)
    b = yield overlay.start(name="b", **TLS)
    impostor = yield raw(a, "127.0.0.2", key=NodeKey.generate())
    impostor.send(Hello(b.nodeId, 1, 0, "b", NEIGHBOUR))
    yield waitFor(lambda: impostor.closed, timeout=PROMPT,
                  what="the impostor refused")
    assertByeLast(impostor, a, "protocol error: node id does not match its key")
    assert b.nodeId not in a.peers
    # The real b, proving its key, is welcome; so is the impostor's own id.
    peer = yield b.send(address(a), "it is me")
    assert peer.node_id == a.nodeId
    honestKey = NodeKey.generate()
    honest = yield raw(a, "127.0.0.3", key=honestKey)
    honest.send(Hello(honestKey.nodeId, 1, 0, "c", DIRECT), Ping(3))
    yield waitFor(lambda: "PONG" in honest.types(), timeout=PROMPT,
                  what="the honest raw peer answered")


@pytest_twisted.inlineCallbacks
def test_a_plaintext_peer_on_a_tls_node_is_closed_and_others_served(overlay,
                                                                    raw):
    a = yield overlay.start(name="a", **TLS)
    plain = yield raw(a, "127.0.0.2")
    plain.send(Hello("c" * 64, 1, 0, "c", NEIGHBOUR))
    yield waitFor(lambda: plain.closed, timeout=PROMPT,
                  what="the plaintext peer closed")
    assert b"HELLO" not in plain.received
    b = yield overlay.start(join=a, name="b", **TLS)
    yield assertMessagesFlow(overlay, a, b)


@pytest_twisted.inlineCallbacks
def test_a_peer_whose_certificate_holds_no_node_key_is_closed(overlay, log):
    a = yield overlay.start(name="a", **TLS)
    endpoint = wrapClientTLS(RSACreator(), TCP4ClientEndpoint(
        reactor, "127.0.0.1", a.listenPort, timeout=PROMPT,
        bindAddress=("127.0.0.2", 0)))
    client = yield connectProtocol(endpoint, RawClient())
    client.send(Hello("d" * 64, 1, 0, "d", NEIGHBOUR))
    yield waitFor(lambda: client.closed, timeout=PROMPT,
                  what="the RSA peer closed")
    assert b"HELLO" not in client.received
    assert any("the peer's certificate holds no Ed25519 key" in w
               for w in log.warningTexts()), log.warningTexts()
    b = yield overlay.start(join=a, name="b", **TLS)
    yield assertMessagesFlow(overlay, a, b)


@pytest_twisted.inlineCallbacks
def test_peers_show_whether_each_link_is_verified_and_its_key(overlay):
    a = yield overlay.start(name="a", **TLS)
    b = yield overlay.start(join=a, name="b", **TLS)
    plain = yield overlay.start(name="p")
    plainer = yield overlay.start(join=plain, name="q")
    yield waitFor(lambda: b.nodeId in a.peers and plainer.nodeId in plain.peers,
                  timeout=PROMPT, what="both pairs connected")
    (view,) = peersView(a)
    assert view["verified"] and view["fingerprint"] == b.key.fingerprint
    assert peersLines(a)[0].endswith(f", key {b.key.fingerprint}")
    (view,) = peersView(plain)
    assert not view["verified"] and view["fingerprint"] is None
    assert peersLines(plain)[0].endswith(", key not verified")


@pytest_twisted.inlineCallbacks
def test_a_join_pinned_to_a_node_id_reaches_that_node_only(overlay, log):
    seed = yield overlay.start(name="seed", **TLS)
    other = yield overlay.start(name="other", **TLS)
    pinned = yield overlay.start(name="pinned", **TLS)
    peer = yield pinned.join("127.0.0.1", seed.listenPort, seed.nodeId)
    assert peer.node_id == seed.nodeId
    # Pinned to other, the seed's address is refused, and nobody blamed.
    wrong = yield overlay.start(name="wrong", **TLS)
    with pytest.raises(HandshakeFailed,
                       match="not the node expected at this address"):
        yield wrong.join("127.0.0.1", seed.listenPort, other.nodeId)
    assert seed.nodeId not in wrong.peers
    assert any(f"is node {seed.nodeId}, not {other.nodeId} as pinned" in w
               for w in log.warningTexts()), log.warningTexts()
    assert seed.misbehaviour.score("127.0.0.1") == 0


@pytest_twisted.inlineCallbacks
def test_an_unpinned_join_trusts_the_first_key_met_and_says_which(overlay,
                                                                  log):
    seed = yield overlay.start(name="seed", **TLS)
    newcomer = yield overlay.start(name="newcomer", **TLS)
    yield newcomer.join("127.0.0.1", seed.listenPort)
    assert newcomer.connections.pins.pinnedAt("127.0.0.1", seed.listenPort) \
        == seed.nodeId
    assert any(seed.key.fingerprint in line for line in log.texts())
