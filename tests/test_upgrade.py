"""
Connection reversal: over a relayed connection the side others can dial
asks the other to dial it directly, and the direct link is kept.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import Logger, formatEvent

from p2poverlay.dispatch import Dispatcher
from p2poverlay.errors import PeerUnreachable
from p2poverlay.natwire import DialMe
from p2poverlay.reachability import PRIVATE, PUBLIC
from p2poverlay.upgrade import PUNCH, REVERSAL, DirectUpgrade
from test_reachability import FakeConnection


class FakeReach:
    def __init__(self, state, address=None):
        self.state, self.address = state, address


class Dials:
    def __init__(self):
        self.made = []
        self.clock = Clock()

    def connect(self, host, port, role="neighbour"):
        d = Deferred()
        self.made.append((host, port, role, d))
        return d


def relayed(peer):
    connection = FakeConnection(peer)
    connection.relayedBy = "r" * 64
    connection.info = connection.peer
    errors = connection.errors = []
    connection.protocolError = errors.append
    return connection


def test_a_public_node_asks_its_relayed_peer_to_dial_it():
    upgrade = DirectUpgrade(Dials(), FakeReach(PUBLIC, ("198.18.0.2", 9000)),
                            Dispatcher())
    connection = relayed(7)
    upgrade.peerReached(connection.peer, connection)
    assert connection.sent == [DialMe("198.18.0.2", 9000)]
    direct = FakeConnection(8)
    upgrade.peerReached(direct.peer, direct)
    assert direct.sent == [], "a direct link needs nothing"


def test_a_reversal_logs_how_long_after_the_relayed_link_it_came():
    dials = Dials()
    upgrade = DirectUpgrade(dials, FakeReach(PUBLIC, ("198.18.0.2", 9000)),
                            Dispatcher())
    events = []
    upgrade.log = Logger(observer=events.append)
    connection = relayed(7)
    upgrade.peerReached(connection.peer, connection)
    dials.clock.advance(0.25)
    direct = FakeConnection(7)
    upgrade.peerReached(direct.peer, direct)
    assert upgrade.linkOf(direct.peer.node_id, direct) == REVERSAL
    [said] = [formatEvent(e) for e in events]
    assert said.startswith("dialed back by ")
    assert said.endswith(": the link 250 ms after the relayed one")


def test_a_private_node_asks_nobody():
    upgrade = DirectUpgrade(Dials(), FakeReach(PRIVATE), Dispatcher())
    connection = relayed(7)
    upgrade.peerReached(connection.peer, connection)
    assert connection.sent == []


def test_asked_it_dials_once_and_counts_the_upgrade():
    dials = Dials()
    upgrade = DirectUpgrade(dials, FakeReach(PRIVATE), Dispatcher())
    connection = relayed(7)
    upgrade.dialMeReceived(connection, DialMe("198.18.0.2", 9000))
    upgrade.dialMeReceived(connection, DialMe("198.18.0.2", 9000))
    assert [(h, p) for h, p, _, _ in dials.made] == [("198.18.0.2", 9000)]
    dials.made[0][3].callback(connection.peer)
    assert upgrade.upgraded == {connection.peer.node_id: REVERSAL}
    assert upgrade.counters() == {
        "upgrade_attempts": {REVERSAL: 1, PUNCH: 0},
        "upgrade_successes": {REVERSAL: 1, PUNCH: 0}}


def test_another_node_at_the_address_is_no_upgrade():
    dials = Dials()
    upgrade = DirectUpgrade(dials, FakeReach(PRIVATE), Dispatcher())
    connection = relayed(7)
    upgrade.dialMeReceived(connection, DialMe("198.18.0.2", 9000))
    dials.made[0][3].callback(FakeConnection(9).peer)
    assert upgrade.upgraded == {}
    assert upgrade.counters()["upgrade_successes"] == {REVERSAL: 0, PUNCH: 0}


def test_a_failed_dial_may_be_asked_again():
    dials = Dials()
    upgrade = DirectUpgrade(dials, FakeReach(PRIVATE), Dispatcher())
    connection = relayed(7)
    upgrade.dialMeReceived(connection, DialMe("198.18.0.2", 9000))
    dials.made[0][3].errback(PeerUnreachable("timed out"))
    upgrade.dialMeReceived(connection, DialMe("198.18.0.2", 9000))
    assert len(dials.made) == 2


def test_dial_me_on_a_direct_connection_is_a_protocol_error():
    upgrade = DirectUpgrade(Dials(), FakeReach(PRIVATE), Dispatcher())
    connection = relayed(7)
    connection.relayedBy = None
    upgrade.dialMeReceived(connection, DialMe("198.18.0.2", 9000))
    assert connection.errors == ["DIAL_ME on a direct connection"]


def test_a_relayed_peer_is_not_judged_by_its_relays_address():
    """Misbehaviour on a relayed connection counts against the node, not
    against the relay's address, which honest relayed nodes share; nor do
    limits by address refuse circuits."""
    from twisted.internet.testing import MemoryReactorClock

    from p2poverlay import Node, NodeConfig
    from memory import BOB, connect, established
    node = Node(NodeConfig(name="me", plaintext=True, dht=False),
                reactor=MemoryReactorClock())
    relayed, _ = established(node, BOB, 9000)
    relayed.relayedBy = "ab" * 32
    node.connections.misbehaved(relayed, 1000, "a forged broadcast")
    assert not node.misbehaviour.isBanned(relayed.remoteHost)
    assert node.connections.offenders.isBanned(BOB)
    circuit, transport = connect(node)
    circuit.relayedBy = "ab" * 32
    assert node.connections.inbound.refusal(circuit, [relayed] * 50,
                                            "banned") is None
