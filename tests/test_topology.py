"""
Neighbours and direct links over loopback TCP: nodes that are full turn
newcomers away with other addresses; direct messages to non-neighbours go
over bounded, short-lived direct links that never carry the overlay.
"""

from __future__ import annotations

import pytest_twisted

from p2poverlay.records import KNOWN
from p2poverlay.message import DIRECT, NEIGHBOUR
from p2poverlay import Node, NodeConfig
from p2poverlay.reasons import CloseKind, CloseReason
from helpers import address, waitFor


def neighbourIds(node):
    return {c.peer.node_id for c in node.topology.neighbours()}


def roleOf(node, other):
    info = node.peers.get(other.nodeId)
    return info.role if info else None


@pytest_twisted.inlineCallbacks
def line(overlay, **config):
    """A - B - C: A and C hold one neighbour each, B two."""
    a = yield overlay.start(name="a", minPeers=1, maxPeers=1, **config)
    b = yield overlay.start(join=a, name="b", minPeers=2, maxPeers=2, **config)
    c = yield overlay.start(join=b, name="c", minPeers=1, maxPeers=1, **config)
    yield waitFor(lambda: neighbourIds(b) == {a.nodeId, c.nodeId}
                  and neighbourIds(c) == {b.nodeId}, what="the line A-B-C")
    return a, b, c


@pytest_twisted.inlineCallbacks
def test_a_full_node_turns_a_newcomer_away_with_other_addresses(overlay):
    hub = yield overlay.start(name="hub", minPeers=1, maxPeers=2)
    first = yield overlay.start(join=hub, minPeers=1)
    second = yield overlay.start(join=hub, minPeers=1)
    yield waitFor(lambda: len(neighbourIds(hub)) == 2, what="hub full")
    newcomer = yield overlay.start(join=hub, name="new", minPeers=2)
    # Turned away by the hub, it dials the nodes the hub told it of.
    yield waitFor(lambda: neighbourIds(newcomer) == {first.nodeId,
                                                     second.nodeId},
                  what="the newcomer with the hub's neighbours")
    assert neighbourIds(hub) == {first.nodeId, second.nodeId}
    reasons = [r for p, r in overlay.recorder(newcomer).disconnected
               if p.node_id == hub.nodeId]
    assert reasons == [CloseReason(CloseKind.FULL).text]
    # The hub is still a known, live node: only not dialed for a while.
    assert newcomer.membership.book.get(hub.nodeId).state == KNOWN
    assert hub.nodeId in newcomer.topology._cooldown
    assert hub.membership.book.get(newcomer.nodeId).state == KNOWN


@pytest_twisted.inlineCallbacks
def test_direct_message_to_a_non_neighbour_goes_over_a_direct_link(overlay):
    a, b, c = yield line(overlay)
    assert c.nodeId not in a.peers
    peer = yield a.send(address(c), "over a direct link")
    assert peer.node_id == c.nodeId
    assert overlay.recorder(c).bodies("direct") == ["over a direct link"]
    assert roleOf(a, c) == DIRECT and roleOf(c, a) == DIRECT
    # It is not a neighbour: degree bounds hold, broadcasts do not use it.
    assert neighbourIds(a) == {b.nodeId} and neighbourIds(c) == {b.nodeId}
    assert c.nodeId not in a.broadcaster.eager | a.broadcaster.lazy
    before = b.stats.broadcastsDelivered
    a.broadcast("through the overlay")
    yield waitFor(lambda: overlay.recorder(c).bodies("broadcast")
                  == ["through the overlay"], what="the broadcast at C")
    assert b.stats.broadcastsDelivered == before + 1
    assert overlay.recorder(c).messages[-1].via.node_id == b.nodeId


@pytest_twisted.inlineCallbacks
def test_direct_message_by_node_id_from_the_address_book(overlay):
    a, b, c = yield line(overlay, exchangeInterval=0.1)
    yield waitFor(lambda: c.nodeId in a.membership.book,
                  what="A learning of C by peer exchange")
    yield a.send(c.nodeId[:8], "by id")
    yield a.send("c", "by name")
    assert overlay.recorder(c).bodies("direct") == ["by id", "by name"]


@pytest_twisted.inlineCallbacks
def test_an_idle_direct_link_closes_on_both_sides_and_is_not_redialed(overlay):
    a, b, c = yield line(overlay, directLinkIdle=0.3, pingInterval=0.1)
    yield a.send(address(c), "hello")
    yield waitFor(lambda: c.nodeId not in a.peers and a.nodeId not in c.peers,
                  what="the idle direct link closed")
    for node, other in ((a, c), (c, a)):
        assert node.membership.book.get(other.nodeId).state == KNOWN
        assert other.nodeId not in node.membership.links
    assert neighbourIds(a) == {b.nodeId}


@pytest_twisted.inlineCallbacks
def test_direct_links_beyond_the_bound_close_the_least_recently_used(overlay):
    hub = yield overlay.start(name="hub", minPeers=3, maxPeers=3)
    a = yield overlay.start(join=hub, minPeers=1, maxPeers=1,
                            maxDirectLinks=1)
    x = yield overlay.start(join=hub, minPeers=1, maxPeers=1)
    y = yield overlay.start(join=hub, minPeers=1, maxPeers=1)
    yield a.send(address(x), "to x")
    yield a.send(address(y), "to y")
    yield waitFor(lambda: x.nodeId not in a.peers, what="x's link closed")
    assert roleOf(a, y) == DIRECT
    assert overlay.recorder(x).bodies("direct") == ["to x"]
    assert overlay.recorder(y).bodies("direct") == ["to y"]
    assert neighbourIds(a) == {hub.nodeId}


@pytest_twisted.inlineCallbacks
def test_a_lost_neighbour_is_replaced(overlay):
    a = yield overlay.start(name="a", minPeers=2, maxPeers=2,
                            pingInterval=0.1)
    b = yield overlay.start(join=a, minPeers=2, maxPeers=2, pingInterval=0.1)
    c = yield overlay.start(join=a, minPeers=2, maxPeers=2, pingInterval=0.1)
    d = yield overlay.start(join=c, minPeers=2, maxPeers=2, pingInterval=0.1)
    nodes = [a, b, c, d]
    yield waitFor(lambda: all(len(neighbourIds(n)) == 2 for n in nodes),
                  what="a ring of four")
    gone = next(iter(neighbourIds(a)))
    leaver = next(n for n in nodes if n.nodeId == gone)
    yield leaver.stopService()
    rest = [n for n in nodes if n is not leaver]
    yield waitFor(lambda: all(len(neighbourIds(n)) == 2
                              and gone not in n.peers for n in rest),
                  what="every survivor with two neighbours again")
    assert all(roleOf(n, m) == NEIGHBOUR
               for n in rest for m in rest if m is not n)


@pytest_twisted.inlineCallbacks
def test_a_node_left_alone_joins_again_through_its_join_address(overlay):
    fast = dict(pingInterval=0.1, reconnectInitialDelay=0.05,
                reconnectMaxDelay=0.3)
    first = yield overlay.start()
    port = first.listenPort
    yield first.stopService()
    # Its seed is down: the join fails and the node is alone.
    lonely = Node(NodeConfig(listen="tcp:0:interface=127.0.0.1",
                             join=[("127.0.0.1", port)], **fast))
    overlay.nodes.append(lonely)
    lonely.startService()
    yield lonely.listening
    yield waitFor(lambda: not lonely.connections.dialsInFlight, what="the first join failed")
    assert not lonely.peers
    seed = yield overlay.start(listen=f"tcp:{port}:interface=127.0.0.1")
    yield waitFor(lambda: seed.nodeId in neighbourIds(lonely),
                  what="the lonely node joined through the seed once it was up")


@pytest_twisted.inlineCallbacks
def test_a_node_turned_away_for_too_many_connections_is_not_taken_as_gone(
        overlay):
    hub = yield overlay.start(name="hub", maxInbound=1)
    yield overlay.start(join=hub)
    newcomer = yield overlay.start(name="new")
    try:
        yield newcomer.join("127.0.0.1", hub.listenPort)
    except Exception:
        pass  # Refused before or after its handshake, by timing.
    yield waitFor(lambda: hub.nodeId not in newcomer.peers
                  and not newcomer.connections.dialsInFlight, what="the newcomer turned away")
    entry = newcomer.membership.book.get(hub.nodeId)
    assert entry is None or entry.state == KNOWN
    assert ("127.0.0.1", hub.listenPort) in newcomer.topology.seeds


@pytest_twisted.inlineCallbacks
def test_a_neighbour_dial_this_node_has_no_room_for_leaves_the_node_known(
        overlay):
    other = yield overlay.start(name="other")
    newcomer = yield overlay.start(join=other, name="new", minPeers=1,
                                   maxPeers=1)
    target = yield overlay.start(name="target")
    book = newcomer.membership.book
    entry = book.learn(target.nodeId, "127.0.0.1", target.listenPort)
    # Full by the time the handshake completes: it turns the dial away.
    newcomer.topology._dial(entry)
    yield waitFor(lambda: not newcomer.topology.dialing,
                  what="the dial ended")
    assert target.nodeId not in newcomer.peers
    assert book.get(target.nodeId).state == KNOWN
    assert target.nodeId in newcomer.topology._cooldown
