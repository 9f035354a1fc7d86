"""
Neighbours and direct links in a memory overlay: nodes that are full turn
newcomers away with other addresses; direct messages to non-neighbours go
over bounded, short-lived direct links that never carry the overlay.
"""

from __future__ import annotations

from p2poverlay.records import KNOWN
from p2poverlay.message import DIRECT, NEIGHBOUR
from p2poverlay.reasons import CloseKind, CloseReason
from memoverlay import (
    PROMPT, address, bodies, disconnected, memoryOverlay, outcome, start,
)


def neighbourIds(node):
    return {c.peer.node_id for c in node.topology.neighbours()}


def roleOf(node, other):
    info = node.peers.get(other.nodeId)
    return info.role if info else None


def line(overlay, **config):
    """A - B - C: A and C hold one neighbour each, B two."""
    a = start(overlay, name="a", minPeers=1, maxPeers=1, **config)
    b = start(overlay, join=a, name="b", minPeers=2, maxPeers=2, **config)
    c = start(overlay, join=b, name="c", minPeers=1, maxPeers=1, **config)
    overlay.runUntil(lambda: neighbourIds(b) == {a.nodeId, c.nodeId}
                     and neighbourIds(c) == {b.nodeId}, 10, "the line A-B-C")
    return a, b, c


def test_a_full_node_turns_a_newcomer_away_with_other_addresses():
    overlay = memoryOverlay(seed=1)
    hub = start(overlay, name="hub", minPeers=1, maxPeers=2)
    first = start(overlay, join=hub, minPeers=1)
    second = start(overlay, join=hub, minPeers=1)
    overlay.runUntil(lambda: len(neighbourIds(hub)) == 2, 10, "hub full")
    newcomer = start(overlay, join=hub, name="new", minPeers=2)
    # Turned away by the hub, it dials the nodes the hub told it of.
    overlay.runUntil(lambda: neighbourIds(newcomer) == {first.nodeId,
                                                        second.nodeId}, 10,
                     "the newcomer with the hub's neighbours")
    assert neighbourIds(hub) == {first.nodeId, second.nodeId}
    reasons = [r for p, r in disconnected(overlay, newcomer) if p == "hub"]
    assert reasons == [CloseReason(CloseKind.FULL).text]
    # The hub is still a known, live node: only not dialed for a while.
    assert newcomer.membership.book.get(hub.nodeId).state == KNOWN
    assert hub.nodeId in newcomer.topology._cooldown
    assert hub.membership.book.get(newcomer.nodeId).state == KNOWN


def test_direct_message_to_a_non_neighbour_goes_over_a_direct_link():
    overlay = memoryOverlay(seed=2)
    a, b, c = line(overlay)
    assert c.nodeId not in a.peers
    peer = outcome(overlay, a.send(address(overlay, c), "over a direct link"))
    assert peer.node_id == c.nodeId
    assert bodies(overlay, c, "direct") == ["over a direct link"]
    assert roleOf(a, c) == DIRECT and roleOf(c, a) == DIRECT
    # It is not a neighbour: degree bounds hold, broadcasts do not use it.
    assert neighbourIds(a) == {b.nodeId} and neighbourIds(c) == {b.nodeId}
    assert c.nodeId not in a.broadcaster.eager | a.broadcaster.lazy
    before = b.stats.broadcastsDelivered
    a.broadcast("through the overlay")
    overlay.runUntil(lambda: bodies(overlay, c, "broadcast")
                     == ["through the overlay"], 10, "the broadcast at C")
    assert b.stats.broadcastsDelivered == before + 1
    assert overlay.records["c"].messages[-1].via == "b"


def test_direct_message_by_node_id_from_the_address_book():
    overlay = memoryOverlay(seed=3)
    a, b, c = line(overlay, exchangeInterval=0.1)
    overlay.runUntil(lambda: c.nodeId in a.membership.book, 10,
                     "A learning of C by peer exchange")
    outcome(overlay, a.send(c.nodeId[:8], "by id"))
    outcome(overlay, a.send("c", "by name"))
    assert bodies(overlay, c, "direct") == ["by id", "by name"]


def test_an_idle_direct_link_closes_on_both_sides_and_is_not_redialed():
    overlay = memoryOverlay(seed=4)
    a, b, c = line(overlay, directLinkIdle=0.3, pingInterval=0.1)
    outcome(overlay, a.send(address(overlay, c), "hello"))
    overlay.runUntil(lambda: c.nodeId not in a.peers
                     and a.nodeId not in c.peers, 10,
                     "the idle direct link closed")
    for node, other in ((a, c), (c, a)):
        assert node.membership.book.get(other.nodeId).state == KNOWN
        assert other.nodeId not in node.membership.links
    assert neighbourIds(a) == {b.nodeId}


def twoDirectLinks(seed: int):
    """
    Nodes C{a}, C{x} and C{y} joined to a hub, C{a} allowed one direct
    link, after C{a} sent to C{x}, then to C{y}: C{(overlay, hub, a, x, y)}.
    """
    overlay = memoryOverlay(seed=seed)
    hub = start(overlay, name="hub", minPeers=3, maxPeers=3)
    a = start(overlay, join=hub, minPeers=1, maxPeers=1, maxDirectLinks=1)
    x = start(overlay, join=hub, minPeers=1, maxPeers=1)
    y = start(overlay, join=hub, minPeers=1, maxPeers=1)
    outcome(overlay, a.send(address(overlay, x), "to x"))
    outcome(overlay, a.send(address(overlay, y), "to y"))
    return overlay, hub, a, x, y


def test_direct_links_beyond_the_bound_close_the_least_recently_used():
    overlay, hub, a, x, y = twoDirectLinks(seed=5)
    overlay.runUntil(lambda: x.nodeId not in a.peers, 10, "x's link closed")
    assert roleOf(a, y) == DIRECT
    assert bodies(overlay, x, "direct") == ["to x"]
    assert bodies(overlay, y, "direct") == ["to y"]
    assert neighbourIds(a) == {hub.nodeId}


def test_a_lost_neighbour_is_replaced():
    overlay = memoryOverlay(seed=6)
    a = start(overlay, name="a", minPeers=2, maxPeers=2, pingInterval=0.1)
    b = start(overlay, join=a, minPeers=2, maxPeers=2, pingInterval=0.1)
    c = start(overlay, join=a, minPeers=2, maxPeers=2, pingInterval=0.1)
    d = start(overlay, join=c, minPeers=2, maxPeers=2, pingInterval=0.1)
    nodes = [a, b, c, d]
    overlay.runUntil(lambda: all(len(neighbourIds(n)) == 2 for n in nodes),
                     10, "a ring of four")
    gone = next(iter(neighbourIds(a)))
    leaver = next(n for n in nodes if n.nodeId == gone)
    outcome(overlay, leaver.stopService())
    rest = [n for n in nodes if n is not leaver]
    overlay.runUntil(lambda: all(len(neighbourIds(n)) == 2
                                 and gone not in n.peers for n in rest), 10,
                     "every survivor with two neighbours again")
    assert all(roleOf(n, m) == NEIGHBOUR
               for n in rest for m in rest if m is not n)


def test_a_node_left_alone_joins_again_through_its_join_address():
    overlay = memoryOverlay(seed=7)
    fast = dict(pingInterval=0.1, reconnectInitialDelay=0.05,
                reconnectMaxDelay=0.3)
    first = start(overlay)
    port = first.listenPort
    outcome(overlay, first.stopService())
    # Its seed is down: the join fails and the node is alone.
    lonely = overlay.addNode(join=[(overlay.host(first.config.name), port)],
                             **fast)
    overlay.runUntil(lambda: not lonely.connections.dialsInFlight, 10,
                     "the first join failed")
    assert not lonely.peers
    # A node on the seed's address again.
    seed = overlay.restart(first)
    overlay.runUntil(lambda: seed.nodeId in neighbourIds(lonely), 10,
                     "the lonely node joined through the seed once it was up")


def test_a_node_turned_away_for_too_many_connections_is_not_taken_as_gone():
    overlay = memoryOverlay(seed=8)
    hub = start(overlay, name="hub", maxInbound=1)
    start(overlay, join=hub)
    newcomer = start(overlay, name="new")
    # Refused before or after its handshake, by timing.
    ended = []
    newcomer.join(overlay.host("hub"), hub.listenPort).addBoth(ended.append)
    overlay.runUntil(lambda: ended, PROMPT, "the join to end")
    overlay.runUntil(lambda: hub.nodeId not in newcomer.peers
                     and not newcomer.connections.dialsInFlight, 10,
                     "the newcomer turned away")
    entry = newcomer.membership.book.get(hub.nodeId)
    assert entry is None or entry.state == KNOWN
    assert (overlay.host("hub"), hub.listenPort) in newcomer.topology.seeds


def test_a_neighbour_dial_this_node_has_no_room_for_leaves_the_node_known():
    overlay = memoryOverlay(seed=9)
    other = start(overlay, name="other")
    newcomer = start(overlay, join=other, name="new", minPeers=1, maxPeers=1)
    target = start(overlay, name="target")
    book = newcomer.membership.book
    entry = book.learn(target.nodeId, overlay.host("target"),
                       target.listenPort)
    # Full by the time the handshake completes: it turns the dial away.
    newcomer.topology._dial(entry)
    overlay.runUntil(lambda: not newcomer.topology.dialing, 10,
                     "the dial ended")
    assert target.nodeId not in newcomer.peers
    assert book.get(target.nodeId).state == KNOWN
    assert target.nodeId in newcomer.topology._cooldown


def test_a_dial_this_nodes_own_bound_stops_leaves_the_peer_alive():
    overlay = memoryOverlay(seed=21)
    hub = start(overlay, name="hub", minPeers=1, maxPeers=4)
    b = start(overlay, join=hub, name="b", minPeers=1, autoConnect=False)
    a = start(overlay, join=hub, name="a", minPeers=3, maxOutbound=1)
    overlay.run(3)
    # a's one outbound connection is to the hub: b was never dialed.
    assert b.nodeId not in a.peers
    entry = a.topology.book.get(b.nodeId)
    assert entry is not None and entry.state == KNOWN
