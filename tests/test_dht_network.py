"""
Routing by id among 1,000 nodes that know each other only through the DHT
(L{p2poverlay.dht.memory.DHTNetwork}: every node's real Kademlia, requests
carried on a virtual clock): every lookup of a live node finds it, and a
refresh period after a fifth of the nodes crashed, at least 99 % still do.
"""

from __future__ import annotations

import random
from typing import List

import pytest
from twisted.internet.defer import DeferredList

from p2poverlay.config import NodeConfig
from p2poverlay.dht.memory import DHTNetwork

SIZE = 1000
LOOKUPS = 200
REFRESH = 300.0


def lookUp(network: DHTNetwork, count: int, seed: int) -> List:
    """C{count} lookups of random live nodes by random live nodes."""
    rng = random.Random(seed)
    alive = network.alive()
    pairs = [rng.sample(alive, 2) for _ in range(count)]
    done: List = []
    DeferredList([network.lookup(a, b) for a, b in pairs],
                 consumeErrors=True).addCallback(done.append)
    network.runUntil(lambda: done, timeout=600)
    return [(b, result if ok else None)
            for (_, b), (ok, result) in zip(pairs, done[0])]


@pytest.fixture(scope="module")
def network() -> DHTNetwork:
    network = DHTNetwork(NodeConfig(dht=True, dhtRefreshInterval=REFRESH),
                         seed=7)
    network.addNodes(SIZE)
    return network


def test_every_node_joined_and_its_nearest_know_it(network):
    nodes = network.nodes
    assert all(n.dht.joined and len(n.dht.table) >= 20 for n in nodes)
    # A node's own lookup made it and the nodes nearest it know each other.
    rng = random.Random(1)
    for node in rng.sample(nodes, 50):
        own = node.dht.table.ownId
        nearest = sorted((n for n in nodes if n is not node),
                         key=lambda n: n.dht.table.ownId ^ own)[:5]
        assert nearest[0].nodeId in node.dht.table
        assert any(node.nodeId in n.dht.table for n in nearest)


def test_every_lookup_of_a_live_node_succeeds(network):
    outcomes = lookUp(network, LOOKUPS, seed=2)
    found = [r for target, r in outcomes
             if r is not None and r.found is not None
             and r.found.nodeId == target.nodeId]
    assert len(found) == LOOKUPS
    assert max(r.asked for r in found) <= 3 * 20


def deadShare(network: DHTNetwork) -> float:
    """The share of the live nodes' contacts that are crashed nodes."""
    dead = {n.nodeId for n in network.nodes if not n.running}
    live = network.alive()
    stale = sum(1 for n in live for c in n.dht.table.contacts()
                if c.nodeId in dead)
    return stale / sum(len(n.dht.table) for n in live)


def test_after_a_fifth_crash_and_a_refresh_period_99_percent_succeed(network):
    for node in random.Random(3).sample(network.nodes, SIZE // 5):
        network.crash(node)
    before = deadShare(network)
    network.run(REFRESH)
    outcomes = lookUp(network, LOOKUPS, seed=4)
    found = sum(1 for target, r in outcomes
                if r is not None and r.found is not None
                and r.found.nodeId == target.nodeId)
    assert found >= 0.99 * LOOKUPS
    # Nodes that did not answer left the tables (the rest are found out
    # as lookups and refreshes come to ask them).
    assert deadShare(network) < before
