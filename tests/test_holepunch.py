"""
TCP hole punching's timing: one round trip over the relay, and both
sides dial at the same moment.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock

from p2poverlay import holepunch
from p2poverlay.dispatch import Dispatcher
from p2poverlay.holepunch import TRIES, HolePunching
from p2poverlay.natwire import PUNCH_CONNECT, PUNCH_NONE, PUNCH_SYNC, HolePunch
from p2poverlay.observations import PER_DESTINATION
from p2poverlay.reachability import PRIVATE
from p2poverlay.upgrade import PUNCH
from test_upgrade import relayed

A_PUBLIC, B_PUBLIC = ("198.18.0.1", 9001), ("198.18.0.2", 9002)


class Observations:
    def __init__(self, host, mapping="one"):
        self.host, self.kind = host, mapping

    def candidate(self):
        return self.host

    def mapping(self):
        return self.kind


class Reach:
    def __init__(self, host, mapping="one"):
        self.state = PRIVATE
        self.observations = Observations(host, mapping)


class Upgrade:
    def __init__(self):
        self.attempts = {PUNCH: 0}
        self.successes = {PUNCH: 0}
        self.upgraded = {}


class Connections:
    def __init__(self, clock):
        self.clock = clock


class Network:
    reactor = None
    tls = None


def punching(clock, address, mapping="one"):
    return HolePunching(Connections(clock), Reach(address[0], mapping),
                        Network(), lambda: ("10.0.0.2", address[1]),
                        Upgrade(), Dispatcher())


def recordDials(monkeypatch, clock):
    """Each dial from the listening port: (when, to host, to port, its
    Deferred)."""
    dials = []

    def dialFrom(reactor, local, host, port, factory, timeout):
        d = Deferred()
        dials.append((clock.seconds(), host, port, d))
        return d

    monkeypatch.setattr(holepunch, "dialFrom", dialFrom)
    return dials


def pair(peerA=7, peerB=8):
    """A's outbound relayed connection to B, and B's inbound one."""
    toB, toA = relayed(peerB), relayed(peerA)
    toB.outbound, toA.outbound = True, False
    return toB, toA


def test_both_sides_dial_one_relayed_round_trip_after_the_circuit(
        monkeypatch):
    clock = Clock()
    dials = recordDials(monkeypatch, clock)
    a, b = punching(clock, A_PUBLIC), punching(clock, B_PUBLIC)
    toB, toA = pair()
    toB.circuitRoundTrip = 0.100
    a.peerReached(toB.info, toB)
    [connect] = toB.sent
    assert connect == HolePunch(PUNCH_CONNECT, *A_PUBLIC, rtt=100)
    clock.advance(0.050)  # A's connect crosses the relay
    b.punchReceived(toA, connect)
    [answer] = toA.sent
    assert answer == HolePunch(PUNCH_CONNECT, *B_PUBLIC)
    assert dials == [], "B waits half a round trip"
    clock.advance(0.050)  # B's answer crosses the relay
    a.punchReceived(toB, answer)
    assert sorted((when, host, port) for when, host, port, _ in dials) == [
        (0.100, *A_PUBLIC), (0.100, *B_PUBLIC)], "both at once"
    assert a.upgrade.attempts[PUNCH] == 1


def test_one_dial_at_a_time_whatever_the_peer_sends(monkeypatch):
    clock = Clock()
    dials = recordDials(monkeypatch, clock)
    b = punching(clock, B_PUBLIC)
    _, toA = pair()
    for _ in range(5):
        b.punchReceived(toA, HolePunch(PUNCH_CONNECT, *A_PUBLIC, rtt=100))
    clock.advance(0.05)
    assert len(dials) == 1


def test_a_missed_try_is_tried_again_with_the_round_trip_it_measured(
        monkeypatch):
    clock = Clock()
    dials = recordDials(monkeypatch, clock)
    a = punching(clock, A_PUBLIC)
    toB, _ = pair()
    toB.circuitRoundTrip = 0.300
    a.peerReached(toB.info, toB)
    for _ in range(TRIES):
        clock.advance(0.120)
        a.punchReceived(toB, HolePunch(PUNCH_CONNECT, *B_PUBLIC))
        dials[-1][3].errback(ConnectionRefusedError())
    rtts = [m.rtt for m in toB.sent]
    assert rtts == [300, 120, 120], "then the measured 120 ms"
    assert len(dials) == TRIES


def test_a_node_whose_nat_maps_per_destination_answers_none(monkeypatch):
    clock = Clock()
    dials = recordDials(monkeypatch, clock)
    b = punching(clock, B_PUBLIC, PER_DESTINATION)
    _, toA = pair()
    b.punchReceived(toA, HolePunch(PUNCH_CONNECT, *A_PUBLIC, rtt=100))
    clock.advance(1)
    assert toA.sent == [HolePunch(PUNCH_NONE)]
    assert dials == []


def test_hole_punch_on_a_direct_connection_is_a_protocol_error():
    b = punching(Clock(), B_PUBLIC)
    _, toA = pair()
    toA.relayedBy = None
    b.punchReceived(toA, HolePunch(PUNCH_CONNECT, *A_PUBLIC))
    assert toA.errors == ["HOLE_PUNCH on a direct connection"]


def test_sync_from_a_node_that_sent_no_rtt_is_no_error(monkeypatch):
    clock = Clock()
    dials = recordDials(monkeypatch, clock)
    b = punching(clock, B_PUBLIC)
    _, toA = pair()
    b.punchReceived(toA, HolePunch(PUNCH_CONNECT, *A_PUBLIC))
    clock.advance(0)
    assert len(dials) == 1, "no rtt: B dials at once"
    dials[0][3].errback(ConnectionRefusedError())
    b.punchReceived(toA, HolePunch(PUNCH_SYNC))
    assert toA.errors == [] and len(dials) == 1
