"""
The relay side: reservations, circuits between two links and their
limits, on fake links and a fake clock; hostile input costs the link
that sent it, and no other.
"""

import base64

import pytest
from twisted.internet.task import Clock

from p2poverlay.relay.circuits import CircuitTable
from p2poverlay.relay.service import RelayLimits, RelayService
from p2poverlay.relay.transport import WINDOW
from p2poverlay.relay.wire import (
    CircuitAccept, CircuitClose, CircuitCredit, CircuitData, CircuitIncoming,
    CircuitOpen, CircuitReady, Reserve, Reserved, ReserveRefused,
)
from relaylinks import FakeLink

H, D, E = "1" * 64, "2" * 64, "3" * 64
CID = "d" * 32


def chunk(size: int, fill: bytes = b"x") -> str:
    return base64.b64encode(fill * size).decode()


class Relay:
    """A RelayService, and the handlers a node would dispatch to."""

    def __init__(self, enabled: bool = True, canRelay=lambda: True,
                 **limits) -> None:
        self.clock = Clock()
        self.table = CircuitTable()
        self.limits = RelayLimits(**limits)
        self.service = RelayService(self.clock, self.table, self.limits,
                                    enabled, canRelay)
        self.handlers = {
            Reserve: self.service.reserveReceived,
            CircuitOpen: self.service.openReceived,
            CircuitAccept: self.service.acceptReceived,
            CircuitData: self.table.dataReceived,
            CircuitCredit: self.table.creditReceived,
            CircuitClose: self.table.closeReceived,
        }

    def receive(self, link, message) -> None:
        self.handlers[type(message)](link, message)

    def reserve(self, nodeId: str = H) -> FakeLink:
        link = FakeLink(nodeId)
        self.receive(link, Reserve())
        return link

    def circuit(self, target: FakeLink, cid: str = CID, dialer=None):
        """A circuit from a new dialer (or C{dialer}) to C{target}, open:
        (dialer link, the target's cid)."""
        dialer = dialer or FakeLink(D, host="10.0.0.3")
        self.receive(dialer, CircuitOpen(cid, target.info.node_id))
        (incoming,) = target.take(CircuitIncoming)
        self.receive(target, CircuitAccept(incoming.cid))
        assert dialer.take(CircuitReady) == [CircuitReady(cid)]
        return dialer, incoming.cid


# -- reservations ---------------------------------------------------------------

def test_a_reservation_says_its_lifetime_and_limits():
    relay = Relay(circuitBytes=1000, circuitSeconds=60.0, reservationTTL=300)
    link = relay.reserve()
    assert link.take() == [Reserved(300, 1000, 60)]
    assert relay.service.counters()["relay_reservations"] == 1


def test_reservations_past_the_limit_are_refused_but_renewals_are_not():
    relay = Relay(reservations=2)
    first, _ = relay.reserve(H), relay.reserve(D)
    third = relay.reserve(E)
    assert third.take() == [ReserveRefused("too many reservations")]
    first.take()
    relay.receive(first, Reserve())
    assert [type(m) for m in first.take()] == [Reserved]


@pytest.mark.parametrize("enabled, canRelay", [(False, True), (True, False)])
def test_a_node_that_does_not_relay_refuses_reservations(enabled, canRelay):
    relay = Relay(enabled=enabled, canRelay=lambda: canRelay)
    assert relay.reserve().take() == [ReserveRefused("not relaying")]
    assert relay.service.reservations == {}


def test_a_reservation_expires_unless_renewed():
    relay = Relay(reservationTTL=100)
    link = relay.reserve()
    relay.clock.advance(90)
    relay.receive(link, Reserve())
    relay.clock.advance(90)
    assert H in relay.service.reservations
    relay.clock.advance(10)
    assert relay.service.reservations == {}
    dialer = FakeLink(D)
    relay.receive(dialer, CircuitOpen(CID, H))
    assert dialer.take() == [CircuitClose(CID, "no reservation")]


def test_a_reservation_ends_with_its_link():
    relay = Relay()
    relay.reserve().lose()
    assert relay.service.reservations == {}
    assert relay.clock.getDelayedCalls() == []


# -- circuits -------------------------------------------------------------------

def test_a_circuit_forwards_data_and_credit_untouched_between_its_legs():
    relay = Relay()
    target = relay.reserve()
    target.take()
    dialer = FakeLink(D)
    relay.receive(dialer, CircuitOpen(CID, H))
    (incoming,) = target.take()
    assert incoming.source == D and incoming.cid != CID
    relay.receive(target, CircuitAccept(incoming.cid))
    assert dialer.take() == [CircuitReady(CID)]
    data = chunk(1000, b"\x00\xff")
    relay.receive(dialer, CircuitData(CID, data))
    assert target.take() == [CircuitData(incoming.cid, data)]
    relay.receive(target, CircuitCredit(incoming.cid, 2000))
    assert dialer.take() == [CircuitCredit(CID, 2000)]
    relay.receive(target, CircuitData(incoming.cid, chunk(10)))
    assert dialer.take() == [CircuitData(CID, chunk(10))]
    assert relay.service.bytesRelayed == 2010
    assert dialer.errors == target.errors == []


def test_circuits_past_the_limit_are_refused():
    relay = Relay(circuits=1)
    target = relay.reserve()
    relay.circuit(target)
    other = FakeLink(E)
    relay.receive(other, CircuitOpen(CID, H))
    assert other.take() == [CircuitClose(CID, "too many circuits")]
    assert len(relay.service.circuits) == 1
    assert relay.service.counters()["relay_circuits_refused"] == 1


def test_a_relay_that_does_not_relay_refuses_circuits():
    relay = Relay()
    target = relay.reserve()
    relay.service.enabled = False
    dialer = FakeLink(D)
    relay.receive(dialer, CircuitOpen(CID, H))
    assert dialer.take() == [CircuitClose(CID, "not relaying")]
    assert target.take(CircuitIncoming) == []


def test_a_circuit_past_its_bytes_is_closed_at_both_ends():
    relay = Relay(circuitBytes=3000)
    target = relay.reserve()
    dialer, targetCid = relay.circuit(target)
    target.take()
    relay.receive(dialer, CircuitData(CID, chunk(2000)))
    relay.receive(target, CircuitData(targetCid, chunk(1000)))
    relay.receive(dialer, CircuitData(CID, chunk(1)))
    assert dialer.take(CircuitClose) == [CircuitClose(CID,
                                                      "circuit byte limit")]
    assert target.take(CircuitClose) == [
        CircuitClose(targetCid, "circuit byte limit")]
    assert relay.service.circuits == {} and relay.table.onLink(dialer) == []
    assert dialer.errors == target.errors == []


def test_a_circuit_past_its_time_is_closed_at_both_ends():
    relay = Relay(circuitSeconds=60.0)
    target = relay.reserve()
    dialer, targetCid = relay.circuit(target)
    relay.clock.advance(59)
    assert relay.service.circuits
    relay.clock.advance(1)
    assert dialer.take(CircuitClose) == [CircuitClose(CID,
                                                      "circuit time limit")]
    assert target.take(CircuitClose) == [
        CircuitClose(targetCid, "circuit time limit")]


def test_a_circuit_not_accepted_in_time_is_closed():
    relay = Relay(acceptTimeout=10.0)
    target = relay.reserve()
    dialer = FakeLink(D)
    relay.receive(dialer, CircuitOpen(CID, H))
    (incoming,) = target.take(CircuitIncoming)
    relay.clock.advance(10)
    assert dialer.take() == [CircuitClose(CID, "not accepted in time")]
    # A late answer is no fault of the target's.
    relay.receive(target, CircuitAccept(incoming.cid))
    assert target.errors == [] and dialer.take() == []


def test_an_end_closing_a_circuit_tells_the_other_end_only():
    relay = Relay()
    target = relay.reserve()
    dialer, targetCid = relay.circuit(target)
    target.take()
    relay.receive(dialer, CircuitClose(CID, "closed"))
    assert target.take() == [CircuitClose(targetCid, "closed")]
    assert dialer.take() == []
    # What the target sent before it heard of it is ignored.
    relay.receive(target, CircuitData(targetCid, chunk(5)))
    relay.receive(target, CircuitCredit(targetCid, 5))
    assert target.errors == [] and dialer.take() == []


def test_a_link_closing_closes_its_circuits_and_tells_the_other_ends():
    relay = Relay()
    target = relay.reserve()
    dialer, targetCid = relay.circuit(target)
    other, otherCid = relay.circuit(target, cid="e" * 32,
                                    dialer=FakeLink(E, host="10.0.0.4"))
    target.take()
    dialer.lose()
    assert target.take() == [CircuitClose(targetCid,
                                          "the other end's link closed")]
    assert list(relay.service.circuits)[0].dialer.link is other
    target.lose()
    assert other.take(CircuitClose) == [
        CircuitClose("e" * 32, "the other end's link closed")]
    assert relay.service.circuits == {} and relay.service.reservations == {}
    assert len(relay.table) == 0


# -- hostile input ---------------------------------------------------------------

def test_data_on_an_unknown_circuit_is_that_links_protocol_error():
    relay = Relay()
    target = relay.reserve()
    dialer, targetCid = relay.circuit(target)
    stranger = FakeLink(E, host="10.0.0.9")
    # The target's id for the circuit names nothing on another link.
    relay.receive(stranger, CircuitData(targetCid, chunk(5)))
    assert stranger.errors == [f"unknown circuit {targetCid}"]
    relay.receive(dialer, CircuitData(CID, chunk(5)))
    assert [type(m) for m in target.take(CircuitData)] == [CircuitData]
    assert dialer.errors == target.errors == []


def test_data_beyond_the_window_is_the_senders_protocol_error():
    relay = Relay()
    target = relay.reserve()
    dialer, targetCid = relay.circuit(target)
    target.take()
    for _ in range(WINDOW // 16384):
        relay.receive(dialer, CircuitData(CID, chunk(16384)))
    assert len(target.take(CircuitData)) == WINDOW // 16384
    relay.receive(dialer, CircuitData(CID, chunk(1)))
    assert dialer.errors == [f"more data than credit on circuit {CID}"]
    assert target.take() == [CircuitClose(targetCid,
                                          "the other end's link closed")]
    assert target.errors == [] and not target.closing


def test_credit_beyond_the_window_is_the_granters_protocol_error():
    relay = Relay()
    target = relay.reserve()
    dialer, targetCid = relay.circuit(target)
    relay.receive(target, CircuitCredit(targetCid, 1))
    assert target.errors == [f"credit beyond the window on circuit "
                             f"{targetCid}"]
    assert dialer.errors == []


def test_data_before_the_circuit_is_accepted_is_a_protocol_error():
    relay = Relay()
    target = relay.reserve()
    dialer = FakeLink(D)
    relay.receive(dialer, CircuitOpen(CID, H))
    relay.receive(dialer, CircuitData(CID, chunk(5)))
    assert dialer.errors == [f"data before circuit {CID} is open"]
    assert target.errors == []


def test_opening_a_circuit_id_in_use_is_a_protocol_error():
    relay = Relay()
    target = relay.reserve()
    dialer, _ = relay.circuit(target)
    relay.receive(dialer, CircuitOpen(CID, H))
    assert dialer.errors == [f"circuit id {CID} in use"]


@pytest.mark.parametrize("who", ["dialer", "stranger", "target twice"])
def test_an_accept_not_the_targets_to_give_is_a_protocol_error(who):
    relay = Relay()
    target = relay.reserve()
    dialer = FakeLink(D)
    relay.receive(dialer, CircuitOpen(CID, H))
    (incoming,) = target.take(CircuitIncoming)
    if who == "dialer":
        relay.receive(dialer, CircuitAccept(CID))
        offender = dialer
    elif who == "stranger":
        offender = FakeLink(E)
        relay.receive(offender, CircuitAccept(incoming.cid))
    else:
        relay.receive(target, CircuitAccept(incoming.cid))
        relay.receive(target, CircuitAccept(incoming.cid))
        offender = target
    assert len(offender.errors) == 1
    assert "CIRCUIT_ACCEPT" in offender.errors[0] or \
        "unknown" in offender.errors[0]
    others = [link for link in (dialer, target) if link is not offender]
    assert all(link.errors == [] for link in others)


def test_a_node_cannot_open_a_circuit_to_itself():
    relay = Relay()
    target = relay.reserve()
    relay.receive(target, CircuitOpen(CID, H))
    assert target.take(CircuitClose) == [
        CircuitClose(CID, "that is the dialer itself")]


def test_stopping_closes_every_circuit():
    relay = Relay()
    target = relay.reserve()
    dialer, targetCid = relay.circuit(target)
    relay.service.stop()
    assert dialer.take(CircuitClose) == [CircuitClose(CID, "the relay stopped")]
    assert relay.service.reservations == {}
    assert relay.clock.getDelayedCalls() == []
