"""
Each peer's DHT requests are answered up to a rate (a token bucket per
peer); a peer's bucket is forgotten once it has refilled, as a new one
starts the same, so a node does not keep one for every peer that ever
asked.
"""

from __future__ import annotations

from twisted.internet.task import Clock

from p2poverlay.dht.rpc import DHTRequests
from p2poverlay.registry import PeerRegistry
from test_reachability import FakeConnection


def setUp():
    clock = Clock()
    links = {n: FakeConnection(n) for n in (1, 2)}
    for link in links.values():
        link.info = link.peer
        link.lastUsed = 0.0
    requests = DHTRequests(clock, PeerRegistry(), connect=None, timeout=5.0,
                           rate=1.0, burst=2.0)
    return clock, requests, links


def test_a_peer_past_its_burst_is_refused_until_it_refills():
    clock, requests, links = setUp()
    assert [requests.mayServe(links[1]) for _ in range(3)] == [
        True, True, False]
    assert requests.mayServe(links[2])  # the others are not held back
    clock.advance(1)
    assert [requests.mayServe(links[1]) for _ in range(2)] == [True, False]
    assert requests.refused == 2


def test_a_refilled_budget_is_forgotten_and_an_empty_one_kept():
    clock, requests, links = setUp()
    requests.mayServe(links[1])
    requests.mayServe(links[1])
    clock.advance(1)  # one token back of two: not refilled
    requests.mayServe(links[2])
    assert requests.budgetsKept == 2
    clock.advance(10)
    requests.mayServe(links[2])
    assert requests.budgetsKept == 1  # links[1]'s went, refilled
    # Coming back, it starts as a new peer does: with a full burst.
    assert [requests.mayServe(links[1]) for _ in range(3)] == [
        True, True, False]
