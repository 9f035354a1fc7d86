"""
A node nobody can dial keeps reservations with peers it dialed, and
advertises the first as its relay; relays that go or refuse are replaced.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Dict, List

import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from p2poverlay.errors import PeerFull
from p2poverlay.reachability import PRIVATE
from p2poverlay.relayuse import MAX_RELAYS, RETRY, RelayUse
from helpers import PROMPT, waitFor
from test_reachability import FakeConnection, FakePeers, failDialBacks


class Relays:
    """Reservations as the test grants or refuses them."""

    def __init__(self) -> None:
        self.asked: Dict[str, Deferred] = {}

    def __call__(self, connection) -> Deferred:
        d = self.asked[connection.peer.node_id] = Deferred()
        return d


def setUp(wants=True):
    clock, peers, relays = Clock(), FakePeers(), Relays()
    changes: List[object] = []
    use = RelayUse(clock, peers, relays, lambda: wants,
                   lambda: changes.append(use.current()))
    return clock, peers, relays, use, changes


def link(peers, n, outbound=True, port=9000):
    connection = FakeConnection(n, outbound=outbound,
                                remoteHost=f"198.18.0.{n}")
    connection.peer = replace(connection.peer, port=port)
    peers.links.append(connection)
    return connection


def test_it_reserves_with_peers_it_dialed_and_advertises_the_first():
    clock, peers, relays, use, changes = setUp()
    first, second = link(peers, 1), link(peers, 2)
    link(peers, 3, outbound=False)  # dialed this node: maybe not dialable
    link(peers, 4, port=0)  # listens nowhere
    use.check()
    assert sorted(relays.asked) == sorted([first.peer.node_id,
                                           second.peer.node_id])
    relays.asked[second.peer.node_id].callback(None)
    assert use.current() == (second.peer.node_id, "198.18.0.2", 9000)
    relays.asked[first.peer.node_id].callback(None)
    assert len(use.relays()) == MAX_RELAYS
    assert changes == [use.current()], "only the advertised one counts"


def test_a_relay_gone_is_replaced():
    clock, peers, relays, use, changes = setUp()
    first = link(peers, 1)
    use.check()
    relays.asked[first.peer.node_id].callback(None)
    third = link(peers, 3)
    peers.links.remove(first)
    use.peerRemoved(first.peer, first, None)
    assert changes[-1] is None
    clock.advance(0)
    relays.asked[third.peer.node_id].callback(None)
    assert use.current()[0] == third.peer.node_id
    assert changes[-1] == use.current()


def test_a_refusal_is_tried_again_later_others_first():
    clock, peers, relays, use, changes = setUp()
    first = link(peers, 1)
    use.check()
    relays.asked.pop(first.peer.node_id).errback(PeerFull("no room"))
    assert use.current() is None
    clock.advance(RETRY)
    assert first.peer.node_id in relays.asked


def test_a_node_that_can_be_dialed_reserves_nothing():
    clock, peers, relays, use, changes = setUp(wants=False)
    link(peers, 1)
    use.check()
    assert relays.asked == {}


@pytest_twisted.inlineCallbacks
def test_a_private_node_is_reached_through_its_relay_over_tls(overlay):
    """
    Found private (two peers fail to dial it back), a node reserves with
    the peers it dialed and says so; a node that joins later hears of it
    as reached through a relay, and a message to it goes that way, over
    TLS from end to end.
    """
    s = yield overlay.start(name="s", plaintext=False, dht=False)
    r = yield overlay.start(join=s, name="r", plaintext=False, dht=False)
    # Two neighbours and no more: it dials nobody else.
    h = yield overlay.start(join=s, name="h", plaintext=False, dht=False,
                            minPeers=2, maxPeers=2)
    yield h.join("127.0.0.1", r.listenPort)
    yield failDialBacks(h, s, r)
    assert h.reachability.state == PRIVATE
    yield waitFor(lambda: len(h.nat.relayUse.relays()) == 2, timeout=PROMPT,
                  what="two reservations")
    yield waitFor(lambda: (s.addressBook.get(h.nodeId) or object) and
                  s.addressBook.get(h.nodeId).relayed, timeout=PROMPT,
                  what="s told h is reached through a relay")
    p = yield overlay.start(join=s, name="p", plaintext=False, dht=False)
    yield waitFor(lambda: p.addressBook.get(h.nodeId) is not None
                  and p.addressBook.get(h.nodeId).relayed, timeout=PROMPT,
                  what="p heard of h through s")
    info = yield p.send(h.nodeId, "through the relay")
    assert info.node_id == h.nodeId
    connection = p.peers.connection(h.nodeId)
    assert connection.relayedBy in (s.nodeId, r.nodeId)
    assert connection.peerKey == h.key.publicBytes
