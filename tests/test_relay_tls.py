"""
A circuit through a relay between real nodes on loopback TCP, over TLS:
the dialer reaches the reserved node with its key proven end to end, and
the relay forwards bytes it cannot read.
"""

import base64

import pytest_twisted
from twisted.internet.defer import inlineCallbacks

from p2poverlay.message import DIRECT
from helpers import PROMPT, waitFor

# No DHT: its lookups would link the nodes directly (loopback is public).
TLS = dict(plaintext=False, autoConnect=False, dht=False)
SECRET = "a distinctive body the relay must never see"


@inlineCallbacks
def relayedTriple(overlay, watch=lambda relay: None):
    """
    r relays for h, which reserved there; d reached h through r.

    @param watch: called with r before the others start.
    """
    r = yield overlay.start(name="r", **TLS)
    watch(r)
    h = yield overlay.start(name="h", **TLS)
    d = yield overlay.start(name="d", **TLS)
    yield h.connect("127.0.0.1", r.listenPort)
    yield d.connect("127.0.0.1", r.listenPort)
    reservation = yield h.relaying.client.reserve(
        h.peers.connection(r.nodeId))
    peer = yield d.relaying.client.dial(d.peers.connection(r.nodeId),
                                        h.nodeId)
    return r, h, d, reservation, peer


def forwarded(relay):
    """Record every payload C{relay} forwards, decoded."""
    payloads = []
    service = relay.relaying.service
    forward = service.forwardData

    def recording(leg, message):
        payloads.append(base64.b64decode(message.data))
        forward(leg, message)
    service.forwardData = recording
    return payloads


@pytest_twisted.inlineCallbacks
def test_a_circuit_proves_the_targets_key_and_hides_its_messages(overlay):
    recorded = []
    r, h, d, reservation, peer = yield relayedTriple(
        overlay, watch=lambda relay: recorded.append(forwarded(relay)))
    (payloads,) = recorded
    assert reservation.relay == r.nodeId and reservation.ttl > 0
    assert peer.node_id == h.nodeId and peer.role == DIRECT
    connection = d.peers.connection(h.nodeId)
    assert connection.relayedBy == r.nodeId and connection.overTLS
    assert connection.peerKey == h.key.publicBytes
    back = h.peers.connection(d.nodeId)
    assert back.relayedBy == r.nodeId and back.peerKey == d.key.publicBytes
    delivered = yield d.send(h.nodeId, SECRET)
    assert delivered.node_id == h.nodeId
    assert SECRET in overlay.recorder(h).bodies()
    assert payloads and all(SECRET.encode() not in p for p in payloads)
    assert all(b"HELLO" not in p for p in payloads)


@pytest_twisted.inlineCallbacks
def test_a_mebibyte_passes_through_a_relay_without_a_reset(overlay, log):
    r, h, d, _, _ = yield relayedTriple(overlay)
    connection = d.peers.connection(h.nodeId)
    body = "m" * 32768
    sends = []
    for index in range(32):
        yield d.whenSendable()
        sends.append(d.send(h.nodeId, f"{index:02d}{body}"))
    for sent in sends:
        yield sent
    received = [b for b in overlay.recorder(h).bodies() if b.endswith(body)]
    assert [b[:2] for b in received] == [f"{i:02d}" for i in range(32)]
    assert d.peers.connection(h.nodeId) is connection
    assert not connection.closing
    assert r.relaying.service.bytesRelayed > 32 * 32768
    assert overlay.recorder(d).disconnected == []
    assert log.warningTexts() == []
    log.assertNoTracebacks()


@pytest_twisted.inlineCallbacks
def test_a_relay_closing_takes_its_circuits_with_it(overlay):
    r, h, d, _, _ = yield relayedTriple(overlay)
    yield r.stopService()
    yield waitFor(lambda: h.nodeId not in d.peers and d.nodeId not in h.peers,
                  timeout=PROMPT, what="the relayed connection closed")
    assert h.relaying.client.reservations == {}
