"""
EpidemicBroadcast (Plumtree and flooding) against fake connections and a
Clock: every transition of the eager and lazy sets, announcements, grafts.
"""

from __future__ import annotations

from typing import Dict, List

import pytest
from twisted.internet.task import Clock

from p2poverlay import broadcast as broadcastModule, graftclock
from p2poverlay.broadcast import EpidemicBroadcast
from p2poverlay.config import NodeConfig
from p2poverlay.dispatch import Dispatcher
from p2poverlay.events import NodeStats, ReceivedMessage
from p2poverlay.message import (
    MAX_IDS, Broadcast, Graft, IHave, P2PMessage, Prune, newMessageId,
)
from p2poverlay.records import PeerInfo
from p2poverlay.signing import Verifier

ME = "0" * 32
ORIGIN = "f" * 32
A, B, C = "a" * 32, "b" * 32, "c" * 32


class FakeConnection:
    def __init__(self, nodeId: str, accepts: bool = True) -> None:
        self.peer = PeerInfo(nodeId, "127.0.0.1", 1, "", "outbound", 0.0)
        self.closing = False
        self.accepts = accepts
        self.sent: List[P2PMessage] = []
        self.slowedFor: List[float] = []

    @property
    def info(self) -> PeerInfo:
        return self.peer

    def sendEncoded(self, line: bytes, messageType: str = "BROADCAST",
                    force: bool = False) -> bool:
        if not (self.accepts or force):
            return False
        message = P2PMessage.decode(line)
        assert message.TYPE == messageType
        self.sent.append(message)
        return True

    def take(self) -> List[P2PMessage]:
        sent, self.sent = self.sent, []
        return sent

    def slowDown(self, seconds: float) -> None:
        self.slowedFor.append(seconds)


class FakeRegistry:
    def __init__(self) -> None:
        self.byId: Dict[str, FakeConnection] = {}

    def connection(self, nodeId: str):
        return self.byId.get(nodeId)

    def get(self, nodeId: str):
        connection = self.byId.get(nodeId)
        return connection.peer if connection is not None else None


class FakeNode:
    """What EpidemicBroadcast is given by its node, and what it delivers."""

    def __init__(self, **config) -> None:
        self.nodeId = ME
        self.reactor = Clock()
        self.config = NodeConfig(**config)
        self.stats = NodeStats()
        self.peers = FakeRegistry()
        self.delivered: List[ReceivedMessage] = []

    @property
    def deliveredIds(self) -> List[str]:
        return [received.message_id for received in self.delivered]


def make(tree: bool = True, neighbours=(A, B, C), **config):
    config.setdefault("lazyDelay", 0.05)
    config.setdefault("graftTimeout", 0.5)
    config["broadcastMode"] = "tree" if tree else "flood"
    node = FakeNode(**config)
    machine = EpidemicBroadcast(node.nodeId, node.config, node.reactor,
                                node.peers, Dispatcher(),
                                node.delivered.append, node.stats,
                                None, Verifier(acceptUnsigned=True))
    connections = {}
    for nodeId in neighbours:
        connections[nodeId] = node.peers.byId[nodeId] = FakeConnection(nodeId)
        machine.neighbourUp(nodeId)
    return node, machine, connections


def message(ttl: int = 5, body: str = "hi") -> Broadcast:
    return Broadcast(newMessageId(), ORIGIN, ttl, body, "origin")


def test_every_neighbour_starts_eager():
    _, machine, _ = make()
    assert machine.eager == {A, B, C} and machine.lazy == set()


def test_a_new_payload_is_delivered_and_pushed_to_the_other_eager_neighbours():
    node, machine, conns = make()
    m = message(ttl=5)
    machine.payloadReceived(conns[A], m)
    assert node.deliveredIds == [m.id]
    relayed = Broadcast(m.id, ORIGIN, 4, "hi", "origin")
    assert conns[B].take() == [relayed] and conns[C].take() == [relayed]
    assert conns[A].take() == []
    assert node.stats.broadcastPayloadsSent == 2
    assert node.stats.broadcastPayloadBytes == 2 * (len(relayed.encode()) + 1)


def test_a_duplicate_prunes_the_link_it_came_over():
    node, machine, conns = make()
    m = message()
    machine.payloadReceived(conns[A], m)
    conns[B].take()
    machine.payloadReceived(conns[B], m)
    assert node.deliveredIds == [m.id]
    assert conns[B].take() == [Prune()]
    assert machine.lazy == {B} and machine.eager == {A, C}
    assert node.stats.broadcastDuplicates == 1
    assert node.stats.broadcastControlSent == 1


def test_a_second_duplicate_over_a_lazy_link_sends_no_second_prune():
    _, machine, conns = make()
    m = message()
    machine.payloadReceived(conns[A], m)
    machine.payloadReceived(conns[B], m)
    conns[B].take()
    machine.payloadReceived(conns[B], m)
    assert conns[B].take() == []


def test_flooding_never_prunes():
    node, machine, conns = make(tree=False)
    m = message()
    machine.payloadReceived(conns[A], m)
    machine.payloadReceived(conns[B], m)
    machine.pruneReceived(conns[C], Prune())
    assert machine.eager == {A, B, C} and machine.lazy == set()
    assert Prune() not in conns[B].take()


def test_prune_received_turns_the_link_lazy_and_ids_go_there_in_one_batch():
    node, machine, conns = make()
    machine.pruneReceived(conns[C], Prune())
    first, second = message(), message()
    machine.payloadReceived(conns[A], first)
    machine.payloadReceived(conns[A], second)
    assert conns[C].take() == []  # Not yet: announcements wait lazyDelay.
    node.reactor.advance(0.05)
    assert conns[C].take() == [IHave((first.id, second.id))]
    assert [type(m) for m in conns[B].take()] == [Broadcast, Broadcast]


def test_announcements_are_split_into_batches_of_at_most_max_ids():
    node, machine, conns = make(neighbours=(A, B))
    machine.pruneReceived(conns[B], Prune())
    ids = []
    for _ in range(MAX_IDS + 3):
        m = message()
        ids.append(m.id)
        machine.originate(m)
    node.reactor.advance(0.05)
    batches = conns[B].take()
    assert [len(b.ids) for b in batches] == [MAX_IDS, 3]
    assert [i for b in batches for i in b.ids] == ids


def test_zero_lazy_delay_announces_at_once():
    node, machine, conns = make(lazyDelay=0)
    machine.pruneReceived(conns[B], Prune())
    m = message()
    machine.payloadReceived(conns[A], m)
    assert conns[B].take() == [IHave((m.id,))]


def test_an_announced_payload_that_does_not_come_is_grafted():
    node, machine, conns = make()
    m = message()
    machine.pruneReceived(conns[B], Prune())
    machine.ihaveReceived(conns[B], IHave((m.id,)))
    node.reactor.advance(0.49)
    assert conns[B].take() == []
    node.reactor.advance(0.01)
    assert conns[B].take() == [Graft((m.id,))]
    assert B in machine.eager, "grafting takes the link into the tree"


def test_the_next_announcer_is_asked_after_half_the_timeout():
    node, machine, conns = make()
    m = message()
    machine.ihaveReceived(conns[B], IHave((m.id,)))
    machine.ihaveReceived(conns[C], IHave((m.id,)))
    node.reactor.advance(0.5)
    assert conns[B].take() == [Graft((m.id,))]
    node.reactor.advance(0.25)
    assert conns[C].take() == [Graft((m.id,))]
    node.reactor.advance(10)
    assert conns[B].take() == [] and conns[C].take() == []


def test_the_graft_timeout_follows_how_late_payloads_come():
    node, machine, conns = make(graftTimeout=0.5)
    clock = node.reactor
    assert machine.graftTimeout == 0.5  # nothing observed yet: the floor
    grafted = []
    for _ in range(12):  # every payload comes 0.8 s after its IHAVE
        m = message()
        machine.ihaveReceived(conns[B], IHave((m.id,)))
        clock.advance(0.8)
        grafted.append(Graft((m.id,)) in conns[B].take())
        machine.payloadReceived(conns[A], m)
        conns[A].take(), conns[B].take(), conns[C].take()
    # The first ones are grafted needlessly; then the node waits longer.
    assert grafted[0] and not any(grafted[-6:])
    assert 0.8 < machine.graftTimeout <= graftclock.MAX_GRAFT_TIMEOUT
    # A payload that never comes is still grafted, only later.
    m = message()
    machine.ihaveReceived(conns[B], IHave((m.id,)))
    clock.advance(machine.graftTimeout)
    assert conns[B].take() == [Graft((m.id,))]


def test_the_graft_timeout_is_smoothed_and_bounded():
    timeout = graftclock.GraftTimeout(floor=0.5)
    for _ in range(50):
        timeout.observed(0.01)
    assert timeout.seconds == 0.5  # never below the configured timeout
    for _ in range(50):
        timeout.observed(100.0)
    assert timeout.seconds == graftclock.MAX_GRAFT_TIMEOUT
    steady = graftclock.GraftTimeout(floor=0.1)
    for _ in range(200):
        steady.observed(1.0)
    assert steady.seconds == pytest.approx(1.0, abs=0.01)  # no deviation


def test_a_payload_that_comes_in_time_cancels_the_graft():
    node, machine, conns = make()
    m = message()
    machine.ihaveReceived(conns[B], IHave((m.id,)))
    machine.payloadReceived(conns[A], m)
    conns[B].take()
    node.reactor.advance(5)
    assert all(not isinstance(x, Graft) for x in conns[B].take())
    assert node.reactor.getDelayedCalls() == []


def test_announcements_of_known_ids_are_ignored():
    node, machine, conns = make()
    m = message()
    machine.payloadReceived(conns[A], m)
    machine.ihaveReceived(conns[B], IHave((m.id,)))
    assert node.reactor.getDelayedCalls() == []


def test_a_neighbour_gone_is_not_asked():
    node, machine, conns = make()
    m = message()
    machine.ihaveReceived(conns[B], IHave((m.id,)))
    machine.ihaveReceived(conns[C], IHave((m.id,)))
    machine.neighbourDown(B)
    del node.peers.byId[B]
    node.reactor.advance(0.5)
    assert conns[C].take() == [Graft((m.id,))]
    assert machine.eager == {A, C}


def test_graft_received_sends_the_payload_and_makes_the_link_eager():
    node, machine, conns = make()
    m = message(ttl=5)
    machine.payloadReceived(conns[A], m)
    machine.payloadReceived(conns[B], m)  # B turns lazy
    conns[B].take()
    machine.graftReceived(conns[B], Graft((m.id, newMessageId())))
    assert conns[B].take() == [Broadcast(m.id, ORIGIN, 4, "hi", "origin")]
    assert B in machine.eager


def test_own_broadcasts_are_kept_for_grafts_and_never_delivered_back():
    node, machine, conns = make()
    m = Broadcast(newMessageId(), ME, 5, "mine", "")
    assert machine.originate(m) == 3
    for conn in conns.values():
        assert conn.take() == [m]
    machine.payloadReceived(conns[A], Broadcast(m.id, ME, 3, "mine", ""))
    assert node.deliveredIds == []
    machine.graftReceived(conns[A], Graft((m.id,)))
    assert conns[A].take()[-1] == m


def test_a_payload_at_its_last_hop_is_delivered_and_not_relayed():
    node, machine, conns = make()
    machine.pruneReceived(conns[C], Prune())
    m = message(ttl=1)
    machine.payloadReceived(conns[A], m)
    node.reactor.advance(1)
    assert node.deliveredIds == [m.id]
    assert conns[B].take() == [] and conns[C].take() == []


def test_a_full_send_buffer_counts_a_dropped_broadcast():
    node, machine, conns = make()
    conns[B].accepts = False
    m = message()
    machine.payloadReceived(conns[A], m)
    assert node.stats.broadcastsDropped == 1
    assert node.stats.broadcastPayloadsSent == 1
    # Control messages still go: the tree must not break.
    machine.payloadReceived(conns[B], m)
    assert conns[B].take() == [Prune()]


def test_the_payload_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(broadcastModule, "PAYLOAD_CACHE_SIZE", 3)
    node, machine, conns = make()
    sent = [message() for _ in range(5)]
    for m in sent:
        machine.payloadReceived(conns[A], m)
    for conn in conns.values():
        conn.take()
    machine.graftReceived(conns[B], Graft(tuple(m.id for m in sent)))
    assert [m.id for m in conns[B].take()] == [m.id for m in sent[2:]]


def test_stop_cancels_every_timer():
    node, machine, conns = make()
    machine.pruneReceived(conns[B], Prune())
    machine.payloadReceived(conns[A], message())
    machine.ihaveReceived(conns[C], IHave((newMessageId(),)))
    assert node.reactor.getDelayedCalls()
    machine.stop()
    assert node.reactor.getDelayedCalls() == []


@pytest.mark.parametrize("tree", [True, False])
def test_payloads_from_a_non_neighbour_are_delivered_without_joining_the_tree(
        tree):
    node, machine, conns = make(tree=tree)
    stranger = FakeConnection("d" * 32)
    m = message()
    machine.payloadReceived(stranger, m)
    machine.payloadReceived(stranger, m)
    assert node.deliveredIds == [m.id]
    assert "d" * 32 not in machine.eager | machine.lazy
    assert stranger.take() == []


# -- a hostile neighbour ------------------------------------------------------------


def test_a_repeated_graft_is_answered_once():
    node, machine, conns = make()
    m = message()
    machine.originate(m)
    for c in conns.values():
        c.take()
    for _ in range(50):
        machine.graftReceived(conns[A], Graft((m.id,)))
    assert [x.id for x in conns[A].take()] == [m.id]
    # Another id, or the same one from another neighbour, is answered.
    other = message()
    machine.originate(other)
    conns[A].take()
    conns[B].take()
    machine.graftReceived(conns[A], Graft((m.id, other.id)))
    machine.graftReceived(conns[B], Graft((m.id,)))
    assert [x.id for x in conns[A].take()] == [other.id]
    assert [x.id for x in conns[B].take()] == [m.id]
    # A neighbour that comes back is a new link: it may ask again.
    machine.neighbourDown(A)
    machine.neighbourUp(A)
    machine.graftReceived(conns[A], Graft((m.id,)))
    assert [x.id for x in conns[A].take()] == [m.id]


def test_a_graft_that_could_not_be_sent_may_be_repeated():
    node, machine, conns = make()
    m = message()
    machine.originate(m)
    conns[A].take()
    conns[A].accepts = False  # its send buffer is full
    machine.graftReceived(conns[A], Graft((m.id,)))
    conns[A].accepts = True
    machine.graftReceived(conns[A], Graft((m.id,)))
    assert [x.id for x in conns[A].take()] == [m.id]


def test_an_ihave_flood_is_bounded(monkeypatch):
    # The defaults scaled down, so that the clock keeps few timers.
    monkeypatch.setattr(broadcastModule, "ANNOUNCED_IDS_PER_SECOND", 100.0)
    monkeypatch.setattr(broadcastModule, "ANNOUNCED_IDS_BURST", 500.0)
    monkeypatch.setattr(broadcastModule, "MAX_MISSING", 2000)
    node, machine, conns = make()
    for _ in range(20):
        machine.ihaveReceived(conns[A], IHave(tuple(
            newMessageId() for _ in range(MAX_IDS))))
    # 20,000 ids at once: only the burst is tracked, and timers with them;
    # the flooder is read more slowly, the more it sent past its budget.
    assert machine.waitingFor == 500
    assert conns[A].slowedFor[0] == pytest.approx((MAX_IDS - 500) / 100.0)
    assert len(conns[A].slowedFor) == 20 and not conns[B].slowedFor
    assert len(node.reactor.getDelayedCalls()) == 500
    # Another neighbour's announcements still count.
    honest = message()
    machine.ihaveReceived(conns[B], IHave((honest.id,)))
    assert machine.waitingFor == 501
    # A tenth of a second later the flooder has 10 more ids' worth.
    node.reactor.advance(0.1)
    machine.ihaveReceived(conns[A], IHave(tuple(
        newMessageId() for _ in range(MAX_IDS))))
    assert machine.waitingFor == 511


def test_ids_waited_for_are_bounded_across_neighbours(monkeypatch):
    monkeypatch.setattr(broadcastModule, "MAX_MISSING", 50)
    monkeypatch.setattr(broadcastModule, "MAX_ANNOUNCERS", 2)
    node, machine, conns = make()
    ids = tuple(newMessageId() for _ in range(80))
    for c in conns.values():
        machine.ihaveReceived(c, IHave(ids))
    assert machine.waitingFor == 50
    # Each id remembers two announcers at most.
    node.reactor.advance(node.config.graftTimeout)
    grafts = [msg for c in conns.values() for msg in c.take()
              if isinstance(msg, Graft)]
    assert len(grafts) == 50
