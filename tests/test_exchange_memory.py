"""
Peer exchange in a memory overlay: a full node points newcomers in need
at each other, leaves out of its samples the nodes that said they were
full, and sends a node as many addresses as it needs.
"""

from __future__ import annotations

from p2poverlay.exchange import EXCHANGE_SAMPLE, SATED_SHARE
from memoverlay import PROMPT, disconnected, memoryOverlay, start


def neighbourIds(node):
    return {c.peer.node_id for c in node.topology.neighbours()}


def turnedAway(overlay, joiner, through):
    """Have C{joiner} join C{through}, which turns it away; run until it has."""
    joiner.join(overlay.host(through.config.name),
                through.listenPort).addErrback(lambda _: None)
    overlay.runUntil(lambda: (through.config.name, "full")
                     in disconnected(overlay, joiner), PROMPT,
                     f"{joiner.config.name} turned away by "
                     f"{through.config.name}")


def test_a_full_node_points_newcomers_in_need_at_each_other():
    overlay = memoryOverlay(seed=4)
    hub = start(overlay, name="hub", minPeers=1, maxPeers=1)
    start(overlay, join=hub, name="first", minPeers=1, maxPeers=1)
    overlay.runUntil(lambda: len(neighbourIds(hub)) == 1, PROMPT, "hub full")
    early = overlay.addNode(name="early", minPeers=2, maxPeers=4)
    turnedAway(overlay, early, hub)
    needy = hub.topology.peerExchange.needy
    # By the hub's minPeers it lacks one neighbour: it is to be told of
    # twice.
    assert needy.timesLeft(early.nodeId) == 2
    late = overlay.addNode(name="late", minPeers=2, maxPeers=4)
    turnedAway(overlay, late, hub)
    assert needy.timesLeft(early.nodeId) == 1
    assert late.nodeId in needy
    # Turned away as well, it dials the node it was told of, which has room.
    overlay.runUntil(lambda: early.nodeId in neighbourIds(late), PROMPT,
                     "late and early neighbours")


def test_nodes_that_said_full_are_left_out_of_samples():
    overlay = memoryOverlay(seed=5)
    hub = start(overlay, name="hub", minPeers=1, maxPeers=2)
    first = start(overlay, join=hub, name="first", minPeers=1, maxPeers=4)
    other = start(overlay, join=hub, name="other", minPeers=1, maxPeers=4)
    overlay.runUntil(lambda: len(neighbourIds(hub)) == 2, PROMPT, "hub full")
    # It learns of the hub from "other", dials it and is turned away.
    newcomer = start(overlay, join=other, name="new", minPeers=3, maxPeers=4)
    overlay.runUntil(lambda: ("hub", "full") in disconnected(overlay, newcomer)
                     and first.nodeId in neighbourIds(newcomer), PROMPT,
                     "the newcomer turned away by the hub")

    def told(node):
        return {a.node_id for _ in range(20) for a in
                node.topology.peerExchange.sample("f" * 32, "10.9.9.9",
                                                  neighbours=0).peers}

    assert hub.nodeId in newcomer.membership.book
    assert hub.nodeId not in told(newcomer)
    assert {first.nodeId, other.nodeId} <= told(newcomer)
    # Its neighbours, which it did not find full, tell of the hub.
    assert hub.nodeId in told(other)


def test_a_sample_is_as_long_as_its_recipient_needs():
    overlay = memoryOverlay(seed=6)
    hub = start(overlay, name="hub", minPeers=8, maxPeers=40)
    for n in range(EXCHANGE_SAMPLE + 4):
        start(overlay, join=hub, name=f"n{n}", minPeers=1, maxPeers=40)
    overlay.runUntil(lambda: len(neighbourIds(hub)) == EXCHANGE_SAMPLE + 4,
                     PROMPT, "every node a neighbour of the hub")
    exchange = hub.topology.peerExchange

    def size(neighbours):
        return len(exchange.sample("f" * 32, "10.9.9.9", neighbours).peers)

    # Unsaid (peer exchange) or lacking 8 neighbours: a full sample.
    assert size(-1) == size(0) == EXCHANGE_SAMPLE
    # Twice what it lacks, but at least a quarter of a sample.
    assert size(3) == 10
    assert size(6) == size(8) == size(12) == int(EXCHANGE_SAMPLE * SATED_SHARE)
