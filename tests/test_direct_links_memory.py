"""
Direct links on an in-memory overlay: the bound and its grace period, and
a direct link that becomes a neighbour when its node is joined.
"""

from __future__ import annotations

from p2poverlay.directlinks import GRACE
from p2poverlay.message import DIRECT, NEIGHBOUR

from memoverlay import PROMPT, address, bodies, memoryOverlay, outcome, start
from test_topology_memory import neighbourIds, roleOf, twoDirectLinks


def test_a_new_direct_link_outlives_the_bound_for_its_grace_period_only():
    overlay, _, a, x, y = twoDirectLinks(seed=11)
    made = overlay.now
    overlay.run(GRACE / 2)
    # Two links, one over the bound: the older one is still in its grace.
    assert roleOf(a, x) == DIRECT and roleOf(a, y) == DIRECT
    overlay.runUntil(lambda: x.nodeId not in a.peers, GRACE + 2,
                     "the link beyond the bound closed")
    assert overlay.now - made >= GRACE
    assert roleOf(a, y) == DIRECT
    assert bodies(overlay, x, "direct") == ["to x"]


def test_joining_a_node_linked_directly_makes_it_a_neighbour():
    overlay = memoryOverlay(seed=12)
    b = start(overlay, name="b", minPeers=1, maxPeers=2)
    a = start(overlay, name="a", minPeers=1, maxPeers=2, autoConnect=False)
    outcome(overlay, a.send(address(overlay, b), "first, directly"))
    assert roleOf(a, b) == DIRECT and roleOf(b, a) == DIRECT
    outcome(overlay, a.join(overlay.host("b"), b.listenPort))
    overlay.runUntil(lambda: roleOf(b, a) == NEIGHBOUR, 5, "b's neighbour a")
    assert roleOf(a, b) == NEIGHBOUR
    assert neighbourIds(a) == {b.nodeId} and neighbourIds(b) == {a.nodeId}
    outcome(overlay, a.send(b.nodeId, "then as a neighbour"))
    assert bodies(overlay, b, "direct") == ["first, directly",
                                            "then as a neighbour"]


def test_a_full_node_keeps_a_direct_link_that_asks_to_be_a_neighbour_direct():
    overlay = memoryOverlay(seed=13)
    full = start(overlay, name="full", minPeers=1, maxPeers=1)
    start(overlay, join=full, name="other", minPeers=1, maxPeers=1)
    a = start(overlay, name="a", minPeers=1, maxPeers=2, autoConnect=False)
    outcome(overlay, a.send(address(overlay, full), "directly"))
    before = neighbourIds(full)
    joined = a.join(overlay.host("full"), full.listenPort)
    joined.addErrback(lambda _: None)
    overlay.run(2)
    assert neighbourIds(full) == before and len(before) == 1
    assert a.nodeId not in neighbourIds(full)


def test_a_node_out_of_inbound_slots_closes_an_idle_direct_link_for_a_newcomer():
    overlay = memoryOverlay(seed=14)
    t = start(overlay, name="t", minPeers=1, maxPeers=4, maxInbound=3,
              autoConnect=False)
    senders = [start(overlay, name=name, autoConnect=False)
               for name in ("x", "y", "w")]
    for sender in senders:
        outcome(overlay, sender.send(address(overlay, t), "from " + sender.name))
        overlay.run(PROMPT)  # A probe of t's address comes and goes too.
    assert [roleOf(t, s) for s in senders] == [DIRECT] * 3
    z = start(overlay, join=t, name="z", minPeers=1, autoConnect=False)
    # Rather than turn z away, t let go of the link used longest ago.
    assert roleOf(t, z) == NEIGHBOUR and roleOf(z, t) == NEIGHBOUR
    overlay.runUntil(lambda: senders[0].nodeId not in t.peers, PROMPT,
                     "x's idle link closed")
    assert [roleOf(t, s) for s in senders[1:]] == [DIRECT] * 2
    assert bodies(overlay, t, "direct") == ["from x", "from y", "from w"]
