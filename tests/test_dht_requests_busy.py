"""
A DHT request keeps the link it went over busy (not closed as idle)
until it is answered, times out or fails, and no longer; how long it
waits follows how late answers come.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.python.failure import Failure

from p2poverlay.dht.routing import Contact
from p2poverlay.dht.rpc import DHTRequests, NoAnswer
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


def answerAfter(clock, requests, link, delay):
    results = ask(requests, link)
    [rid] = list(requests._pending)
    clock.advance(delay)
    requests.answerReceived(link, rid, Ping(2, 0))
    return results


def test_a_request_waits_longer_once_answers_have_come_late():
    clock, requests, links = setUp()
    assert requests.wait.seconds == 5.0  # nothing seen yet: the timeout
    for _ in range(30):  # a loaded network: answers take 3 to 4.9 s
        for delay in (3.0, 4.9):
            answerAfter(clock, requests, links[1], delay)
    assert 7.0 < requests.wait.seconds <= 4 * 5.0
    # An answer 7 s late now counts, where a 5 s timeout would have given
    # the request up (and asked another node in its stead).
    late = answerAfter(clock, requests, links[1], 7.0)
    assert late and not isinstance(late[0], Failure)
    # A node that never answers fails once the wait is over, saying so.
    wait = requests.wait.seconds
    silent = ask(requests, links[2])
    clock.advance(wait - 0.01)
    assert not silent
    clock.advance(0.01)
    assert silent[0].check(NoAnswer)
    assert f"did not answer within {wait:.3g} s" in \
        silent[0].getErrorMessage()


def test_the_wait_is_bounded_however_late_answers_come():
    clock, requests, links = setUp()
    for _ in range(40):
        for delay in (1.0, 19.0):
            answerAfter(clock, requests, links[1], min(
                delay, requests.wait.seconds - 0.01))
    assert requests.wait.seconds == 4 * 5.0


def test_quick_answers_keep_the_configured_timeout():
    clock, requests, links = setUp()
    for _ in range(20):
        answerAfter(clock, requests, links[1], 0.01)
    assert requests.wait.seconds == 5.0  # never below it
    silent = ask(requests, links[2])
    clock.advance(4.99)
    assert not silent
    clock.advance(0.01)
    assert silent[0].check(NoAnswer)
