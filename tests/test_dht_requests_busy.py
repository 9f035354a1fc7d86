"""
A DHT request keeps the link it went over busy (not closed as idle)
until it is answered, times out or fails, and no longer.
"""

from __future__ import annotations

from twisted.internet.task import Clock

from p2poverlay.dht.routing import Contact
from p2poverlay.dht.rpc import DHTRequests
from p2poverlay.message import Ping
from p2poverlay.registry import PeerRegistry
from test_reachability import FakeConnection


def setUp():
    clock = Clock()
    registry = PeerRegistry()
    links = {n: FakeConnection(n) for n in (1, 2)}
    for link in links.values():
        link.info = link.peer
        link.lastUsed = 0.0
        registry.add(link.peer, link)
    requests = DHTRequests(clock, registry, connect=None, timeout=5.0,
                           rate=20.0, burst=100.0)
    return clock, requests, links


def ask(requests, link):
    contact = Contact(link.peer.node_id, link.peer.host, 9000)
    results = []
    requests.request(contact, lambda rid: Ping(1, 0)).addBoth(results.append)
    return results


def test_busy_while_a_request_waits_on_the_link():
    clock, requests, links = setUp()
    first, second = ask(requests, links[1]), ask(requests, links[1])
    assert requests.busy(links[1]) and not requests.busy(links[2])
    [rid1, rid2] = list(requests._pending)
    requests.answerReceived(links[1], rid1, Ping(2, 0))
    assert first and requests.busy(links[1]), "one still waits"
    clock.advance(5)
    assert second and not requests.busy(links[1])


def test_a_closed_link_is_not_busy_and_its_request_goes_again():
    clock, requests, links = setUp()
    ask(requests, links[1])
    old, new = links[1], FakeConnection(1)
    new.info, new.lastUsed = new.peer, 0.0
    requests.peers.remove(old.peer.node_id, old)
    requests.peers.add(new.peer, new)
    requests.linkClosed(old)
    assert not requests.busy(old)
    assert requests.busy(new), "sent again over the new link"
    requests.cancelAll()
    assert not requests.busy(new)
