"""
Bounded degree and tree broadcast on memory overlays of 100 nodes.

These tests assert properties (degree bounds, connectivity, exactly-once
delivery, payload transmissions per delivery), never how long anything took.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from typing import Dict, List, Set

from twisted.internet.defer import DeferredList

from p2poverlay.message import NEIGHBOUR
from p2poverlay import Node
from memoverlay import bodies, memoryOverlay, outcome, start

SIZE = 100
# Graft only after a real loss, never because a loaded machine is slow.
SCALE = dict(minPeers=4, maxPeers=8, graftTimeout=2.0, pingInterval=0.5,
             peerTimeout=30.0, exchangeInterval=1.0)


def alive(node: Node) -> bool:
    """Started, and neither stopped nor crashed."""
    return node.running


def neighbourGraph(nodes: List[Node]) -> Dict[str, Set[str]]:
    """Each running node's neighbours, by node id."""
    running = {n.nodeId for n in nodes if alive(n)}
    return {
        n.nodeId: {c.peer.node_id for c in n.topology.neighbours()
                   if c.peer.node_id in running}
        for n in nodes if alive(n)
    }


def isConnected(graph: Dict[str, Set[str]]) -> bool:
    if not graph:
        return True
    start = next(iter(graph))
    seen, queue = {start}, deque([start])
    while queue:
        for other in graph[queue.popleft()]:
            if other not in seen:
                seen.add(other)
                queue.append(other)
    return len(seen) == len(graph)


def settled(nodes: List[Node], minPeers: int) -> bool:
    """
    Every node has its neighbours, both ends agree on every link, nobody
    is dialing, and the graph is connected.
    """
    graph = neighbourGraph(nodes)
    return all(len(peers) >= minPeers for peers in graph.values()) \
        and all(u in graph[v] for u, peers in graph.items() for v in peers) \
        and not any(n.topology.dialing for n in nodes if alive(n)) \
        and isConnected(graph)


def payloadsSent(nodes: List[Node]) -> int:
    return sum(n.stats.broadcastPayloadsSent for n in nodes)


def broadcastEverywhere(overlay, nodes: List[Node], origin: Node, body: str):
    """Broadcast from C{origin}; run until every other running node has it."""
    origin.broadcast(body)
    others = [n for n in nodes if alive(n) and n is not origin]
    overlay.runUntil(
        lambda: all(body in bodies(overlay, n, "broadcast") for n in others),
        30, f"{body!r} at every node")
    return others


def startOverlay(seed: int, size: int, **config):
    """A memory overlay of C{size} nodes, all joined through the first."""
    overlay = memoryOverlay(seed, **config)
    first = start(overlay, name="n0")
    nodes = [first]
    for i in range(1, size):
        nodes.append(start(overlay, join=first, name=f"n{i}"))
    minPeers = config.get("minPeers", 8)
    overlay.runUntil(lambda: settled(nodes, minPeers), 60,
                     f"every node with {minPeers} neighbours, connected",
                     step=0.1)
    return overlay, nodes


def assertDegreeBounds(nodes: List[Node], minPeers: int, maxPeers: int):
    degrees = [len(n.topology.neighbours()) for n in nodes if alive(n)]
    assert min(degrees) >= minPeers
    assert max(degrees) <= maxPeers
    for node in nodes:
        if alive(node):
            assert all(c.role == NEIGHBOUR for c in node.topology.neighbours())


def test_a_hundred_nodes_form_a_bounded_connected_overlay():
    overlay, nodes = startOverlay(1, SIZE, **SCALE)
    assertDegreeBounds(nodes, SCALE["minPeers"], SCALE["maxPeers"])
    # No hub: the seed everyone joined through holds no more than anyone.
    assert len(nodes[0].topology.neighbours()) <= SCALE["maxPeers"]
    # The address books learned far more nodes than the neighbours.
    assert all(len(n.membership.book) > SCALE["maxPeers"] for n in nodes)


def test_tree_broadcast_delivers_exactly_once_at_one_payload_per_delivery():
    overlay, nodes = startOverlay(2, SIZE, **SCALE)
    rng = random.Random(5)
    # The first broadcasts shape the tree: duplicates prune links.
    for i in range(3):
        broadcastEverywhere(overlay, nodes, rng.choice(nodes), f"warm {i}")
    before = payloadsSent(nodes)
    rounds = 10
    for i in range(rounds):
        broadcastEverywhere(overlay, nodes, rng.choice(nodes), f"steady {i}")
    deliveries = rounds * (SIZE - 1)
    assert (payloadsSent(nodes) - before) / deliveries <= 1.2
    for node in nodes:
        counts = Counter(bodies(overlay, node, "broadcast"))
        assert all(count == 1 for count in counts.values()), node.name
    # Flooding the same graph costs a payload per neighbour link and hop.
    eager = sum(len(n.broadcaster.eager) for n in nodes) / 2
    assert eager == SIZE - 1, "the eager links form a spanning tree"


def test_flooding_sends_a_payload_over_every_link():
    overlay, nodes = startOverlay(3, 30, broadcastMode="flood", **SCALE)
    before = payloadsSent(nodes)
    broadcastEverywhere(overlay, nodes, nodes[7], "flooded")
    links = sum(len(g) for g in neighbourGraph(nodes).values()) / 2
    # Every link carries it once in each direction but the origin's
    # and the first arrival's: 2E - (N - 1).
    assert payloadsSent(nodes) - before == 2 * links - (len(nodes) - 1)


def test_the_tree_repairs_itself_when_nodes_on_it_die():
    overlay, nodes = startOverlay(4, 40, **dict(SCALE, graftTimeout=0.3))
    for i in range(3):
        broadcastEverywhere(overlay, nodes, nodes[0], f"warm {i}")
    # Kill the nodes with most eager links: the inner nodes of the tree.
    inner = sorted(nodes[1:], key=lambda n: len(n.broadcaster.eager))[-4:]
    outcome(overlay, DeferredList([n.abort() for n in inner]))
    survivors = [n for n in nodes if alive(n)]
    for i in range(3):
        broadcastEverywhere(overlay, survivors, nodes[0], f"after {i}")
    for node in survivors:
        counts = Counter(bodies(overlay, node, "broadcast"))
        assert all(count == 1 for count in counts.values()), node.name


def test_churn_keeps_the_overlay_connected_and_bounded():
    overlay, nodes = startOverlay(5, 60, **SCALE)
    rng = random.Random(11)
    victims = rng.sample(nodes[1:], 15)
    outcome(overlay, DeferredList([n.abort() for n in victims]))
    newcomers = []
    for i in range(10):
        newcomers.append(start(
            overlay, join=rng.choice([n for n in nodes if alive(n)]),
            name=f"new{i}"))
    living = [n for n in nodes + newcomers if alive(n)]
    overlay.runUntil(lambda: settled(living, SCALE["minPeers"]), 60,
                     "the overlay settled after churn", step=0.1)
    assertDegreeBounds(living, SCALE["minPeers"], SCALE["maxPeers"])
    broadcastEverywhere(overlay, living, newcomers[-1], "after churn")
    for node in living:
        counts = Counter(bodies(overlay, node, "broadcast"))
        assert counts["after churn"] == (0 if node is newcomers[-1] else 1)


def test_broadcasts_sent_while_nodes_join_and_crash_reach_every_stayer_once():
    config = dict(SCALE, graftTimeout=0.3)
    overlay, nodes = startOverlay(6, 40, **config)
    rng = random.Random(23)
    victims = rng.sample(nodes[1:], 5)
    stayers = [n for n in nodes if n not in victims]
    origins = {}
    for i in range(20):
        body = f"during churn {i}"
        origins[body] = rng.choice(stayers)
        origins[body].broadcast(body)
        if i % 4 == 1:
            outcome(overlay, victims.pop().abort())
        if i % 4 == 3:
            start(overlay, join=rng.choice(stayers), name=f"late{i}")
        overlay.run(0.02)

    def missing(node):
        expected = {b for b, origin in origins.items() if origin is not node}
        return expected - set(bodies(overlay, node, "broadcast"))

    overlay.runUntil(lambda: not any(missing(n) for n in stayers), 30,
                     "every broadcast at every node that stayed")
    for node in stayers:
        counts = Counter(bodies(overlay, node, "broadcast"))
        assert all(count == 1 for count in counts.values()), node.name
