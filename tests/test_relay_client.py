"""
The client side of relays on fake links: reservations kept and renewed,
dials that fail, circuits this node did not ask for.
"""

import pytest
from twisted.internet.task import Clock

from p2poverlay.config import NodeConfig
from p2poverlay.errors import PeerUnreachable
from p2poverlay.registry import PeerRegistry
from p2poverlay.relay.circuits import CircuitTable
from p2poverlay.relay.client import RelayClient, RelayRefused
from p2poverlay.relay.wire import (
    CircuitClose, CircuitData, CircuitIncoming, CircuitOpen, CircuitReady,
    Reserve, Reserved, ReserveRefused,
)
from relaylinks import FakeLink

R, H = "1" * 64, "2" * 64
CID = "d" * 32


class Connections:
    """What a RelayClient uses of the node's Connections."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.config = NodeConfig()
        self.peers = PeerRegistry()
        self.factory = None


def client():
    connections = Connections()
    table = CircuitTable()
    return connections.clock, table, RelayClient(connections, table)


def results(deferred):
    out = []
    deferred.addBoth(out.append)
    return out


def test_a_reservation_is_kept_renewed_while_the_link_lasts():
    clock, _, relays = client()
    link = FakeLink(R)
    got = results(relays.reserve(link))
    assert link.take() == [Reserve()]
    relays.reservedReceived(link, Reserved(100, 1 << 20, 60))
    (reservation,) = got
    assert (reservation.relay, reservation.expires) == (R, 100.0)
    clock.advance(50)
    assert link.take() == [Reserve()]
    relays.reservedReceived(link, Reserved(100, 1 << 20, 60))
    assert relays.reservations[link].expires == 150.0
    assert relays.busy(link)
    link.lose()
    assert relays.reservations == {} and clock.getDelayedCalls() == []


def test_a_refused_reservation_fails_with_the_relays_reason():
    _, _, relays = client()
    link = FakeLink(R)
    got = results(relays.reserve(link))
    relays.refusedReceived(link, ReserveRefused("not relaying"))
    assert got[0].check(RelayRefused)
    assert "not relaying" in got[0].getErrorMessage()
    assert not relays.busy(link)


def test_a_link_closing_before_the_answer_fails_the_reservation():
    _, _, relays = client()
    link = FakeLink(R)
    got = results(relays.reserve(link))
    link.lose()
    assert got[0].check(PeerUnreachable)


def test_an_unasked_reserved_is_ignored():
    _, _, relays = client()
    link = FakeLink(R)
    relays.reservedReceived(link, Reserved(100, 1, 1))
    assert relays.reservations == {} and link.errors == []


def test_a_circuit_announced_without_a_reservation_is_refused():
    _, _, relays = client()
    link = FakeLink(R)
    relays.incomingReceived(link, CircuitIncoming(CID, H))
    assert link.take() == [CircuitClose(CID, "no reservation here")]


def test_a_dial_the_relay_refuses_fails_with_its_reason():
    _, table, relays = client()
    link = FakeLink(R)
    got = results(relays.dial(link, H))
    (opened,) = link.take()
    assert isinstance(opened, CircuitOpen) and opened.target == H
    table.closeReceived(link, CircuitClose(opened.cid, "no reservation"))
    assert got[0].check(PeerUnreachable)
    assert "no reservation" in got[0].getErrorMessage()
    assert len(table) == 0


def test_a_dial_the_relay_does_not_answer_gives_up_and_says_so():
    clock, table, relays = client()
    link = FakeLink(R)
    got = results(relays.dial(link, H))
    (opened,) = link.take()
    clock.advance(NodeConfig().connectTimeout)
    assert got[0].check(PeerUnreachable)
    assert link.take() == [CircuitClose(opened.cid, "aborted")]
    # Its late answer is ignored.
    relays.readyReceived(link, CircuitReady(opened.cid))
    assert link.errors == []


@pytest.mark.parametrize("message", [
    CircuitReady(CID), CircuitData(CID, "AA=="),
])
def test_what_names_no_circuit_of_ours_is_a_protocol_error(message):
    _, table, relays = client()
    link = FakeLink(R)
    if isinstance(message, CircuitReady):
        relays.readyReceived(link, message)
    else:
        table.dataReceived(link, message)
    assert link.errors == [f"unexpected CIRCUIT_READY {CID}"] \
        if isinstance(message, CircuitReady) \
        else [f"unknown circuit {CID}"]


def test_data_before_a_circuit_is_ready_is_a_protocol_error():
    _, table, relays = client()
    link = FakeLink(R)
    got = results(relays.dial(link, H))
    (opened,) = link.take()
    table.dataReceived(link, CircuitData(opened.cid, "AA=="))
    assert link.errors == [f"data before circuit {opened.cid} is ready"]
    assert got[0].check(PeerUnreachable)
