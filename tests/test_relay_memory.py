"""
Circuits through a relay between real nodes on the in-memory network
(plaintext), on its virtual clock.
"""

import pytest

from p2poverlay.errors import DeliveryFailed, PeerUnreachable
from p2poverlay.message import DIRECT
from p2poverlay.relay import RelayRefused
from memoverlay import bodies, memoryOverlay, outcome, start


def linked(overlay, node, relay):
    outcome(overlay, node.connect(overlay.host(relay.config.name),
                                  relay.listenPort))
    return node.peers.connection(relay.nodeId)


def triple(overlay, **relaySettings):
    """r relays for h (reserved there); d, linked to r, cannot reach h
    but through r."""
    r = start(overlay, name="r", **relaySettings)
    h = start(overlay, name="h")
    d = start(overlay, name="d")
    overlay.partition([h], [d])
    outcome(overlay, h.relaying.client.reserve(linked(overlay, h, r)))
    return r, h, d, linked(overlay, d, r)


def test_a_node_is_reached_and_sent_to_through_its_relay():
    overlay = memoryOverlay()
    r, h, d, link = triple(overlay)
    peer = outcome(overlay, d.relaying.client.dial(link, h.nodeId))
    assert peer.node_id == h.nodeId
    assert d.peers.connection(h.nodeId).relayedBy == r.nodeId
    assert h.peers.connection(d.nodeId).relayedBy == r.nodeId
    assert outcome(overlay, d.send(h.nodeId, "through r")).node_id == h.nodeId
    assert bodies(overlay, h) == ["through r"]
    # Relayed, a HELLO says nothing of where its sender is seen (it would
    # name the relay's host).
    for node, other in ((d, h), (h, d)):
        observations = node.reachability.observations
        assert other.nodeId not in observations.observersOf(
            overlay.host("r"))
        assert other.nodeId not in observations.observersOf(
            overlay.host(node.config.name))
    counters = r.relaying.counters()
    assert counters["relay_circuits"] == counters["relay_reservations"] == 1


def test_a_mebibyte_passes_both_ways_without_a_reset():
    overlay = memoryOverlay()
    r, h, d, link = triple(overlay)
    outcome(overlay, d.relaying.client.dial(link, h.nodeId))
    connection = d.peers.connection(h.nodeId)
    body = "b" * 32768
    sends = [d.send(h.nodeId, body) for _ in range(32)] + \
        [h.send(d.nodeId, body) for _ in range(32)]
    for sent in sends:
        outcome(overlay, sent)
    assert bodies(overlay, h).count(body) == bodies(overlay, d).count(body) \
        == 32
    assert d.peers.connection(h.nodeId) is connection
    assert r.relaying.service.bytesRelayed > 2 * 32 * 32768
    assert overlay.records["d"].peersDown == []


def test_a_circuit_past_the_relays_byte_limit_is_closed():
    overlay = memoryOverlay()
    r, h, d, link = triple(overlay, relayCircuitBytes=200_000)
    outcome(overlay, d.relaying.client.dial(link, h.nodeId))
    sends = [d.send(h.nodeId, "c" * 32768) for _ in range(8)]
    overlay.runUntil(lambda: h.nodeId not in d.peers, 10, "the circuit closed")
    assert r.relaying.counters()["relay_circuits"] == 0
    failed = []
    for sent in sends:
        sent.addErrback(lambda f: failed.append(f.check(DeliveryFailed)))
    overlay.run(60)
    assert failed and all(failed)
    # The links to the relay stay: the limit is the circuit's.
    assert r.nodeId in d.peers and r.nodeId in h.peers


def test_a_node_with_no_reservation_cannot_be_dialed_through_a_relay():
    overlay = memoryOverlay()
    r = start(overlay, name="r")
    h = start(overlay, name="h")
    d = start(overlay, name="d")
    overlay.partition([h], [d])
    linked(overlay, h, r)
    with pytest.raises(PeerUnreachable, match="no reservation"):
        outcome(overlay, d.relaying.client.dial(linked(overlay, d, r),
                                                h.nodeId))


def test_a_node_that_does_not_relay_refuses_to_reserve():
    overlay = memoryOverlay()
    r = start(overlay, name="r", relay=False)
    h = start(overlay, name="h")
    with pytest.raises(RelayRefused, match="not relaying"):
        outcome(overlay, h.relaying.client.reserve(linked(overlay, h, r)))


def test_a_reservation_outlives_its_lifetime_while_renewed():
    overlay = memoryOverlay()
    r, h, d, link = triple(overlay)
    overlay.run(3 * r.relaying.service.limits.reservationTTL)
    assert h.nodeId in r.relaying.service.reservations
    assert outcome(overlay, d.relaying.client.dial(link, h.nodeId)).node_id \
        == h.nodeId


def reservedOnDirectLink(overlay):
    r = start(overlay, name="r")
    h = start(overlay, name="h")
    outcome(overlay, h.connect(overlay.host("r"), r.listenPort, role=DIRECT))
    link = h.peers.connection(r.nodeId)
    outcome(overlay, h.relaying.client.reserve(link))
    return r, h, link


def test_a_reservation_keeps_its_direct_link_open():
    overlay = memoryOverlay()
    r, h, first = reservedOnDirectLink(overlay)
    overlay.run(3 * h.config.directLinkIdle)
    assert list(h.relaying.client.reservations) == [first]
    assert not first.closing and first.role == DIRECT
    assert r.relaying.service.reservations[h.nodeId].link.peer.node_id \
        == h.nodeId


def test_a_reservation_moves_to_the_connection_its_pair_keeps():
    overlay = memoryOverlay()
    r, h, first = reservedOnDirectLink(overlay)
    # Dialed again as a neighbour, the direct link gives way.
    outcome(overlay, h.connect(overlay.host("r"), r.listenPort))
    second = h.peers.connection(r.nodeId)
    assert second is not first and first.closing
    overlay.run(1)
    assert list(h.relaying.client.reservations) == [second]
    assert r.relaying.service.reservations[h.nodeId].link.peer.node_id \
        == h.nodeId
    assert not r.relaying.service.reservations[h.nodeId].link.closing
