"""
A node nobody can dial keeps reservations with peers it dialed, and
advertises the first as its relay; relays that go or refuse are replaced.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Dict, List

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from p2poverlay.errors import PeerFull
from p2poverlay.relayuse import MAX_RELAYS, RETRY, RelayUse
from test_reachability import FakeConnection, FakePeers


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
