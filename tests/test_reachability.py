"""
Reachability: what peers observe of a node, the dial-backs that test it,
the state a node settles on and what it then advertises; and the peers'
side, dialing back within limits.
"""

from __future__ import annotations

import socket
from typing import List, Optional

import pytest
import pytest_twisted
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, inlineCallbacks, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from p2poverlay.dialback import PER_PEER_INTERVAL, DialBackServer
from p2poverlay.errors import PeerUnreachable
from p2poverlay.message import NEIGHBOUR, PROBE, Hello
from p2poverlay.natwire import (
    REACHED, REFUSED, UNREACHED, DialBackRequest, DialBackResult,
)
from p2poverlay.observations import (
    ENDPOINT_INDEPENDENT, MAX_OBSERVERS, NO_NAT, PER_DESTINATION, UNKNOWN,
    AddressObservations,
)
from p2poverlay.reachability import (
    MAX_CONFIDENCE, PRIVATE, PROBE_TIMEOUT, PUBLIC, RECHECK, Reachability,
)
from p2poverlay.records import PeerInfo
from helpers import PROMPT, waitFor
from memoverlay import memoryOverlay, start

LISTEN = 9000
LAN_HOST = "10.1.0.2"
ROUTER = "198.18.0.10"


def nodeId(n: int) -> str:
    return f"{n:032x}"


class FakeConnection:
    """A peer's established link, as reachability sees it."""

    def __init__(self, peer: int, outbound: bool = True,
                 remoteHost: Optional[str] = None,
                 localHost: str = LAN_HOST, localPort: int = 40000) -> None:
        # Each peer on a host of its own, unless told otherwise.
        remoteHost = remoteHost or f"198.18.1.{peer % 250 + 1}"
        self.peer = PeerInfo(node_id=nodeId(peer), host=remoteHost, port=9000,
                             name="", direction="outbound", since=0.0)
        self.outbound = outbound
        self.role = NEIGHBOUR
        self.query = False
        self.closing = False
        self.remoteHost = remoteHost
        self.transport = StringTransport(
            hostAddress=IPv4Address("TCP", localHost, localPort),
            peerAddress=IPv4Address("TCP", remoteHost, 9000))
        self.sent: List[object] = []

    def sendMessage(self, message: object) -> None:
        self.sent.append(message)


class FakePeers:
    def __init__(self) -> None:
        self.links: List[FakeConnection] = []

    def connections(self) -> List[FakeConnection]:
        return list(self.links)


class FirstChoice:
    """Chooses the first: the tests say which peer is asked."""

    def choice(self, items):
        return items[0]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def peers() -> FakePeers:
    return FakePeers()


@pytest.fixture
def reach(clock, peers) -> Reachability:
    return Reachability(clock, peers, lambda: LISTEN, FirstChoice())


def observe(reach, peers, clock, peer: int, observed: str, **kwargs):
    """Peer C{peer} links to the node and says it sees it at C{observed}."""
    connection = FakeConnection(peer, **kwargs)
    peers.links.append(connection)
    reach.heard(connection, Hello(nodeId(peer), 2, 9000, observed=observed))
    clock.advance(0)
    return connection


def requests(connection) -> List[DialBackRequest]:
    return [m for m in connection.sent if isinstance(m, DialBackRequest)]


def probeFrom(reach, peer: int, nonce: str) -> bool:
    """A probe connection from C{peer} comes in with C{nonce}."""
    probe = FakeConnection(peer, outbound=False)
    probe.role = PROBE
    return reach.probed(probe, Hello(nodeId(peer), 2, 9000, role=PROBE,
                                     nonce=nonce))


# -- what peers observe --------------------------------------------------------

def test_two_peers_agreeing_make_a_candidate_one_does_not():
    seen = AddressObservations(lambda: LISTEN)
    seen.heard(nodeId(1), f"{ROUTER}:40000", LAN_HOST, 40000, True)
    assert seen.candidate() is None and seen.behindNat() is None
    seen.heard(nodeId(2), "198.18.0.77:40001", LAN_HOST, 40001, True)
    assert seen.candidate() is None, "two peers, two hosts: no agreement"
    seen.heard(nodeId(3), f"{ROUTER}:40002", LAN_HOST, 40002, True)
    assert seen.candidate() == ROUTER
    assert seen.behindNat() is True
    assert seen.observersOf(ROUTER) == [nodeId(1), nodeId(3)]


def test_peers_on_one_host_agree_only_once():
    """Many node ids on one machine cannot name this node's public host:
    only observers on two hosts can."""
    seen = AddressObservations(lambda: LISTEN)
    for peer in range(1, 6):
        seen.heard(nodeId(peer), "203.0.113.66:40000", LAN_HOST, 40000, True,
                   observerHost="198.18.0.99")
    assert seen.candidate() is None
    seen.heard(nodeId(9), f"{ROUTER}:40001", LAN_HOST, 40001, True,
               observerHost="198.18.0.20")
    seen.heard(nodeId(10), f"{ROUTER}:40002", LAN_HOST, 40002, True,
               observerHost="198.18.0.21")
    assert seen.candidate() == ROUTER, "two hosts outweigh five ids on one"


def test_one_peer_saying_it_twice_is_one_observer():
    seen = AddressObservations(lambda: LISTEN)
    for port in (40000, 40001):
        seen.heard(nodeId(1), f"{ROUTER}:{port}", LAN_HOST, port, True)
    assert len(seen) == 1 and seen.candidate() is None


def test_loopback_and_unreadable_observations_are_not_kept():
    seen = AddressObservations(lambda: LISTEN)
    assert seen.heard(nodeId(1), "127.0.0.1:5000", "127.0.0.1", 5000, True) \
        is None
    assert seen.heard(nodeId(2), "[::1]:5000", "::1", 5000, True) is None
    assert seen.heard(nodeId(3), "not an address", LAN_HOST, 1, True) is None
    assert len(seen) == 0


def test_a_peer_that_dialed_names_a_host_only_at_the_listening_port():
    seen = AddressObservations(lambda: LISTEN)
    seen.heard(nodeId(1), f"{LAN_HOST}:{LISTEN}", LAN_HOST, LISTEN, False)
    seen.heard(nodeId(2), f"{LAN_HOST}:{LISTEN + 1}", LAN_HOST, LISTEN, False)
    assert seen.candidate() is None
    seen.heard(nodeId(3), f"{LAN_HOST}:{LISTEN}", LAN_HOST, LISTEN, False)
    assert seen.candidate() == LAN_HOST
    assert seen.behindNat() is False and seen.mapping() == NO_NAT


def test_a_nat_that_keeps_ports_maps_endpoint_independently():
    seen = AddressObservations(lambda: LISTEN)
    for peer, port in ((1, 40000), (2, 40007)):
        seen.heard(nodeId(peer), f"{ROUTER}:{port}", LAN_HOST, port, True)
    assert seen.mapping() == ENDPOINT_INDEPENDENT


def test_a_nat_that_changes_ports_maps_per_destination():
    seen = AddressObservations(lambda: LISTEN)
    for peer, port in ((1, 40000), (2, 40007)):
        seen.heard(nodeId(peer), f"{ROUTER}:{port + 1111}", LAN_HOST, port,
                   True)
    assert seen.mapping() == PER_DESTINATION


def test_too_few_dialed_observations_leave_the_mapping_unknown():
    seen = AddressObservations(lambda: LISTEN)
    seen.heard(nodeId(1), f"{ROUTER}:40000", LAN_HOST, 40000, True)
    seen.heard(nodeId(2), f"{ROUTER}:{LISTEN}", LAN_HOST, LISTEN, False)
    assert seen.candidate() == ROUTER and seen.mapping() == UNKNOWN


def test_only_the_latest_observers_are_kept():
    seen = AddressObservations(lambda: LISTEN)
    for peer in range(MAX_OBSERVERS + 5):
        seen.heard(nodeId(peer), f"{ROUTER}:{peer + 1}", LAN_HOST, peer + 1,
                   True)
    assert len(seen) == MAX_OBSERVERS
    assert nodeId(0) not in seen.observersOf(ROUTER)


# -- dial-backs ----------------------------------------------------------------

def test_agreement_asks_a_third_peer_to_dial_back(reach, peers, clock):
    first = observe(reach, peers, clock, 1, f"{ROUTER}:40000")
    second = observe(reach, peers, clock, 2, f"{ROUTER}:40001")
    assert reach.state == "unknown"
    third = observe(reach, peers, clock, 3, f"{ROUTER}:40002")
    # The first two agreed and a request went at once, to one of them
    # (there was no third yet): the third is asked next time.
    asked = requests(first) + requests(second)
    assert len(asked) == 1 and not requests(third)
    assert (asked[0].host, asked[0].port) == (ROUTER, LISTEN)


def test_a_third_observer_is_preferred_as_prober(reach, peers, clock):
    first = FakeConnection(1)
    second = FakeConnection(2)
    third = FakeConnection(3)
    peers.links += [first, second, third]
    for peer in (1, 2, 3):
        reach.observations.heard(nodeId(peer), f"{ROUTER}:4000{peer}",
                                 LAN_HOST, 40000 + peer, True)
    reach.consider()
    assert not requests(first) and not requests(second)
    assert len(requests(third)) == 1


def test_the_probe_with_its_nonce_proves_the_address(reach, peers, clock):
    observe(reach, peers, clock, 1, f"{ROUTER}:40000")
    asked = observe(reach, peers, clock, 2, f"{ROUTER}:40001")
    [request] = requests(peers.links[0]) + requests(asked)
    prober = int(peers.links[0].peer.node_id if requests(peers.links[0])
                 else asked.peer.node_id, 16)
    assert not probeFrom(reach, prober, "0" * 64), "a nonce it never sent"
    assert not probeFrom(reach, 99, request.nonce), "from another node"
    assert reach.state == "unknown"
    assert probeFrom(reach, prober, request.nonce)
    assert reach.state == PUBLIC and reach.address == (ROUTER, LISTEN)
    assert reach.advertised() == (True, ROUTER)
    assert reach.outcomes["reached"] == 1
    assert "public at 198.18.0.10:9000 (dialed back by 1" in reach.describe()


def test_a_peer_saying_reached_proves_nothing(reach, peers, clock):
    observe(reach, peers, clock, 1, f"{ROUTER}:40000")
    observe(reach, peers, clock, 2, f"{ROUTER}:40001")
    [asked] = [c for c in peers.links if requests(c)]
    reach.resultReceived(asked, DialBackResult(requests(asked)[0].nonce,
                                               REACHED))
    assert reach.state == "unknown"


def test_two_peers_failing_to_reach_make_it_private(reach, peers, clock):
    observe(reach, peers, clock, 1, f"{ROUTER}:40000")
    observe(reach, peers, clock, 2, f"{ROUTER}:40001")
    # Not advertised while it is behind a NAT and not shown reachable.
    assert reach.advertised() == (False, None)
    [asked] = [c for c in peers.links if requests(c)]
    reach.resultReceived(asked, DialBackResult(
        requests(asked)[0].nonce, UNREACHED, "timed out"))
    assert reach.state == "unknown", "one peer's failure decides nothing"
    clock.advance(1)
    [other] = [c for c in peers.links if c is not asked]
    assert len(requests(other)) == 1, "the other peer is asked next"
    # It does not answer at all: the wait runs out.
    clock.advance(PROBE_TIMEOUT)
    assert reach.state == PRIVATE
    assert reach.outcomes == {"reached": 0, "unreached": 1, "refused": 0,
                              "timeout": 1}
    assert f"private: seen at {ROUTER}, not reachable from outside" \
        in reach.describe()


def test_an_observer_no_longer_linked_is_linked_to_for_the_second_try(
        reach, peers, clock):
    """A node with one peer: the second observer was a DHT query's, its
    connection gone; it is linked to, then asked, and the node decides."""
    linked = []
    reach.linkTo = linked.append
    observe(reach, peers, clock, 1, f"{ROUTER}:40000")
    gone = observe(reach, peers, clock, 2, f"{ROUTER}:40001")
    peers.links.remove(gone)
    [asked] = [c for c in peers.links if requests(c)] or [gone]
    assert asked is not gone, "only a linked peer is asked"
    reach.resultReceived(asked, DialBackResult(
        requests(asked)[0].nonce, UNREACHED, "timed out"))
    clock.advance(1)
    assert linked == [nodeId(2)] and len(requests(asked)) == 1
    again = observe(reach, peers, clock, 2, f"{ROUTER}:40001")
    clock.advance(1)
    [request] = requests(again)
    reach.resultReceived(again, DialBackResult(request.nonce, UNREACHED,
                                               "timed out"))
    assert reach.state == PRIVATE
    clock.advance(60)
    assert linked == [nodeId(2)], "linked to once, not again and again"


def test_a_refusal_is_no_failure(reach, peers, clock):
    observe(reach, peers, clock, 1, f"{ROUTER}:40000")
    observe(reach, peers, clock, 2, f"{ROUTER}:40001")
    [asked] = [c for c in peers.links if requests(c)]
    reach.resultReceived(asked, DialBackResult(
        requests(asked)[0].nonce, REFUSED, "busy"))
    assert reach.state == "unknown" and reach.outcomes["refused"] == 1


def test_a_result_from_a_peer_not_asked_is_ignored(reach, peers, clock):
    observe(reach, peers, clock, 1, f"{ROUTER}:40000")
    observe(reach, peers, clock, 2, f"{ROUTER}:40001")
    [asked] = [c for c in peers.links if requests(c)]
    [other] = [c for c in peers.links if c is not asked]
    reach.resultReceived(other, DialBackResult(
        requests(asked)[0].nonce, UNREACHED))
    assert reach.outcomes["unreached"] == 0


def test_a_public_node_does_not_flip_on_a_lost_probe(reach, peers, clock):
    """Confirmed again and again, it takes more failures than it had
    confirmations, from two peers at least, to become private."""
    observe(reach, peers, clock, 1, f"{ROUTER}:40000")
    observe(reach, peers, clock, 2, f"{ROUTER}:40001")

    def pendingProber():
        [(nonce, probe)] = list(reach._pending.items())
        return nonce, int(probe.prober, 16)

    nonce, prober = pendingProber()
    probeFrom(reach, prober, nonce)
    for _ in range(MAX_CONFIDENCE):
        clock.advance(RECHECK)
        nonce, prober = pendingProber()
        probeFrom(reach, prober, nonce)
    assert reach.state == PUBLIC and reach.confidence == MAX_CONFIDENCE
    states = []
    for _ in range(MAX_CONFIDENCE + 2):
        clock.advance(RECHECK)
        pendingProber()
        clock.advance(PROBE_TIMEOUT)  # Nobody gets through.
        states.append(reach.state)
    assert states[:MAX_CONFIDENCE] == [PUBLIC] * MAX_CONFIDENCE
    assert states[-1] == PRIVATE


def test_stopped_it_asks_nobody(reach, peers, clock):
    reach.stop()
    observe(reach, peers, clock, 1, f"{ROUTER}:40000")
    observe(reach, peers, clock, 2, f"{ROUTER}:40001")
    assert not any(requests(c) for c in peers.links)
    assert clock.getDelayedCalls() == [] or all(
        not call.active() for call in clock.getDelayedCalls())


def test_its_counters_and_view(reach, peers, clock):
    observe(reach, peers, clock, 1, f"{ROUTER}:40000")
    assert reach.counters()["reachability"] == {
        "unknown": 1, "public": 0, "private": 0}
    view = reach.view()
    assert view["state"] == "unknown" and view["observers"] == 1
    assert view["address"] is None and view["candidate"] is None


# -- dialing peers back ----------------------------------------------------------

NONCE = "ab" * 32


class Prober:
    """What DialBackServer dials with: records, and answers as told."""

    def __init__(self) -> None:
        self.dials: List[tuple] = []
        self.answer: object = None

    def __call__(self, host: str, port: int, nonce: str) -> Deferred:
        self.dials.append((host, port, nonce))
        if isinstance(self.answer, Exception):
            return fail(self.answer)
        return succeed(self.answer)


def results(connection) -> List[DialBackResult]:
    return [m for m in connection.sent if isinstance(m, DialBackResult)]


def test_a_peer_is_dialed_back_where_it_is_seen(clock):
    prober = Prober()
    server = DialBackServer(clock, prober)
    peer = FakeConnection(7, remoteHost=ROUTER)
    prober.answer = peer.peer
    server.requestReceived(peer, DialBackRequest(NONCE, ROUTER, LISTEN))
    assert prober.dials == [(ROUTER, LISTEN, NONCE)]
    assert results(peer) == [DialBackResult(NONCE, REACHED)]
    assert server.running == 0


def test_another_node_answering_is_unreached(clock):
    prober = Prober()
    server = DialBackServer(clock, prober)
    peer = FakeConnection(7, remoteHost=ROUTER)
    prober.answer = FakeConnection(8).peer
    server.requestReceived(peer, DialBackRequest(NONCE, ROUTER, LISTEN))
    assert results(peer) == [DialBackResult(NONCE, UNREACHED,
                                            "another node answers there")]


def test_a_failed_dial_is_reported_with_its_reason(clock):
    prober = Prober()
    server = DialBackServer(clock, prober)
    peer = FakeConnection(7, remoteHost=ROUTER)
    prober.answer = PeerUnreachable("connection timed out")
    server.requestReceived(peer, DialBackRequest(NONCE, ROUTER, LISTEN))
    assert results(peer) == [DialBackResult(NONCE, UNREACHED,
                                            "connection timed out")]


def test_no_dial_to_a_host_the_peer_is_not_at(clock):
    """Nobody can point a node at a third party."""
    prober = Prober()
    server = DialBackServer(clock, prober)
    peer = FakeConnection(7, remoteHost=ROUTER)
    server.requestReceived(peer, DialBackRequest(NONCE, "203.0.113.9", 80))
    assert prober.dials == []
    assert results(peer) == [DialBackResult(
        NONCE, REFUSED, "this node sees you at another host")]


def test_a_peer_asking_too_often_is_refused(clock):
    prober = Prober()
    server = DialBackServer(clock, prober)
    peer = FakeConnection(7, remoteHost=ROUTER)
    prober.answer = peer.peer
    server.requestReceived(peer, DialBackRequest(NONCE, ROUTER, LISTEN))
    server.requestReceived(peer, DialBackRequest(NONCE, ROUTER, LISTEN))
    assert results(peer)[-1] == DialBackResult(NONCE, REFUSED,
                                               "asked too often")
    clock.advance(PER_PEER_INTERVAL)
    server.requestReceived(peer, DialBackRequest(NONCE, ROUTER, LISTEN))
    assert results(peer)[-1].outcome == REACHED
    assert len(prober.dials) == 2
    assert server.counters()["dial_backs_served"] == {
        REACHED: 2, UNREACHED: 0, REFUSED: 1}


def test_many_peers_at_once_are_refused_past_the_rate(clock):
    prober = Prober()
    server = DialBackServer(clock, prober)
    outcomes = []
    for peer in range(20):
        connection = FakeConnection(peer, remoteHost=ROUTER)
        prober.answer = connection.peer
        server.requestReceived(connection, DialBackRequest(NONCE, ROUTER,
                                                           LISTEN))
        outcomes.append(results(connection)[0].outcome)
    assert outcomes.count(REACHED) == 5 and outcomes.count(REFUSED) == 15


# -- whole nodes, in memory --------------------------------------------------------

def test_nodes_in_memory_learn_they_are_public():
    """
    Three real nodes on the in-memory network (each its own 10.0.0.x
    host): peers' observations agree, a dial-back gets through, and each
    node is public at its own address and signs it.
    """
    overlay = memoryOverlay()
    a = start(overlay)
    b = start(overlay, a)
    c = start(overlay, a)
    nodes = [a, b, c]
    overlay.runUntil(lambda: all(n.reachability.state == PUBLIC
                                 for n in nodes), timeout=120)
    for node in nodes:
        assert node.reachability.address == (
            overlay.host(node.config.name), node.listenPort)
        assert node.reachability.confirmedBy
        assert node.metrics.snapshot()["reachability"][PUBLIC] == 1


# -- over real sockets -------------------------------------------------------------

@pytest_twisted.inlineCallbacks
def test_a_dial_back_over_tls_on_loopback(overlay):
    """
    Asked over its link, a peer dials the node back on a new TLS
    connection carrying the nonce; the node is then public at the address
    dialed, and the probe connection is gone without a trace in either
    node's peers.  (Loopback observations count for nothing, so the test
    asks for the dial-back itself.)
    """
    a = yield overlay.start(name="a", plaintext=False)
    b = yield overlay.start(join=a, name="b", plaintext=False)
    yield waitFor(lambda: b.nodeId in a.peers, timeout=PROMPT,
                  what="a and b connected")
    a.reachability.ask(a.peers.connection(b.nodeId), "127.0.0.1")
    yield waitFor(lambda: a.reachability.state == PUBLIC, timeout=PROMPT,
                  what="a dialed back")
    assert a.reachability.address == ("127.0.0.1", a.listenPort)
    assert a.reachability.confirmedBy == {b.nodeId}
    yield waitFor(lambda: b.metrics.snapshot()["dial_backs_served"][REACHED]
                  == 1, timeout=PROMPT, what="b's report")
    yield waitFor(lambda: len(a.connections) == len(b.connections) == 1,
                  timeout=PROMPT, what="the probe closed")
    assert [p.node_id for p in a.peers.snapshot()] == [b.nodeId]


@pytest_twisted.inlineCallbacks
def test_a_dial_back_to_a_closed_port_is_unreached(overlay):
    a = yield overlay.start(name="a")
    b = yield overlay.start(join=a, name="b")
    yield waitFor(lambda: b.nodeId in a.peers, timeout=PROMPT,
                  what="a and b connected")
    port = a.listenPort
    a.reachability.listenPort = lambda: closedPort()
    a.reachability.ask(a.peers.connection(b.nodeId), "127.0.0.1")
    yield waitFor(lambda: a.reachability.outcomes["unreached"] == 1,
                  timeout=PROMPT, what="b's report of its failure")
    assert a.reachability.state == "unknown" and a.listenPort == port


def closedPort() -> int:
    """A loopback port nobody listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_in_a_stable_overlay_reachability_never_flips():
    """Five nodes in memory for an hour of virtual time, rechecked every
    ten minutes: each becomes public once and stays so."""
    overlay = memoryOverlay()
    first = start(overlay)
    nodes = [first] + [start(overlay, first) for _ in range(4)]
    overlay.runUntil(lambda: all(n.reachability.state == PUBLIC
                                 for n in nodes), timeout=120)
    overlay.run(3600)
    for node in nodes:
        assert node.reachability.state == PUBLIC
        assert node.reachability.changes == 1
        assert node.reachability.outcomes["reached"] >= 5
        assert node.metrics.snapshot()["reachability_changes"] == 1


def test_a_node_that_does_not_listen_asks_for_no_dial_back(clock, peers):
    reach = Reachability(clock, peers, lambda: 0, FirstChoice())
    observe(reach, peers, clock, 1, f"{ROUTER}:40000")
    observe(reach, peers, clock, 2, f"{ROUTER}:40001")
    assert not any(requests(c) for c in peers.links)


@inlineCallbacks
def failDialBacks(node, *peers):
    """
    Have each of C{peers} dial C{node} back at a port nobody listens on,
    in vain: two such failures make it private, as behind a NAT (no
    loopback observation would).
    """
    node.reachability.listenPort = closedPort
    for failures, peer in enumerate(peers, 1):
        node.reachability.ask(node.peers.connection(peer.nodeId), "127.0.0.1")
        yield waitFor(lambda n=failures: node.reachability.outcomes[
            "unreached"] == n, timeout=PROMPT, what=f"{peer.name} failed")
