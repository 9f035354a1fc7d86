"""
Routing by id on an in-memory overlay of real nodes: every lookup of a
live node succeeds, and still at least 99 % of them once a fifth of the
nodes crashed and a refresh period went by.  Properties only, never how
long anything took.  (Here at 200 nodes, to keep the suite quick; the
benchmark, ``python -m benchmarks --only dht``, checks the same at 1,000
and 10,000.)
"""

from __future__ import annotations

import random
from typing import List

from twisted.internet.defer import DeferredList

from p2poverlay import Node, NodeConfig
from p2poverlay.dht.lookup import LookupResult
from p2poverlay.errors import TooManyLookups
from p2poverlay.memnet import MemoryOverlay, UniformDelay

from memoverlay import bodies, outcome

# A WAN's delays; few neighbours and slow probes keep 1,000 nodes cheap.
WAN = UniformDelay(0.005, 0.150)
SIZE = 200
DHT = dict(minPeers=3, maxPeers=6, pingInterval=10.0, peerTimeout=30.0,
           exchangeInterval=30.0, dht=True, dhtRefreshInterval=300.0)


def overlayOf(size: int, seed: int) -> "tuple[MemoryOverlay, List[Node]]":
    overlay = MemoryOverlay(seed=seed, config=NodeConfig(**DHT), delay=WAN)
    nodes = overlay.addNodes(size, every=0.02)
    overlay.run(60)  # formed, and every node through its DHT join
    return overlay, nodes


def lookUpMany(overlay: MemoryOverlay, nodes: List[Node], count: int,
               seed: int) -> List[LookupResult]:
    """C{count} lookups, each of a random live node by another, at once."""
    rng = random.Random(seed)
    alive = [n for n in nodes if n.running]
    pairs = [rng.sample(alive, 2) for _ in range(count)]
    done = DeferredList([a.dht.findNode(b.nodeId) for a, b in pairs],
                        consumeErrors=True)
    results = outcome(overlay, done, timeout=60, what="the lookups")
    found = []
    for (ok, result), (_, target) in zip(results, pairs):
        assert ok, result
        found.append(result)
        if result.found is not None:
            assert result.found.nodeId == target.nodeId
    return found


def test_every_lookup_of_a_live_node_succeeds_and_survives_crashes():
    overlay, nodes = overlayOf(SIZE, seed=1)
    assert all(n.dht.findable for n in nodes)  # each one's own lookup ran
    results = lookUpMany(overlay, nodes, 200, seed=2)
    assert all(r.found is not None for r in results)
    assert all(r.asked <= 20 for r in results)
    # A fifth of the nodes crash; one refresh period later the tables have
    # let them go.
    victims = random.Random(3).sample(nodes, SIZE // 5)
    overlay.crash(*victims)
    overlay.run(DHT["dhtRefreshInterval"])
    results = lookUpMany(overlay, nodes, 200, seed=4)
    succeeded = sum(r.found is not None for r in results)
    assert succeeded >= 0.99 * len(results), succeeded


def test_send_to_a_node_never_heard_of_is_delivered_after_a_lookup():
    overlay, nodes = overlayOf(40, seed=5)
    sender = nodes[0]
    target = next(n for n in nodes[1:]
                  if not sender.peers.connection(n.nodeId))
    # Whatever peer exchange told the sender of it, it forgets.
    sender.addressBook.forget(target.nodeId)
    sent = outcome(overlay, sender.reach.sendTelling(target.nodeId, "hi"))
    info, lookup = sent
    assert info.node_id == target.nodeId
    assert lookup is not None and lookup.found.nodeId == target.nodeId
    assert bodies(overlay, target, "direct") == ["hi"]


def test_lookups_beyond_the_limit_fail_at_once():
    overlay, nodes = overlayOf(20, seed=6)
    node = nodes[0]
    limit = node.config.dhtMaxLookups
    rng = random.Random(7)
    pending = [node.dht.lookup(rng.getrandbits(256)) for _ in range(limit + 3)]
    refused = [d for d in pending if d.called]
    assert len(refused) == 3 and not any(d.called for d in pending[:limit])
    failures: List = []
    refused[0].addErrback(failures.append)
    assert failures[0].check(TooManyLookups)
    outcome(overlay, DeferredList(pending, consumeErrors=True))


def test_a_node_served_a_get_or_a_put_is_one_heard_from():
    overlay, nodes = overlayOf(10, seed=8)
    reader = nodes[0]
    linked = {n.nodeId: n for n in nodes[1:]
              if reader.peers.connection(n.nodeId) is not None}
    assert linked
    # Those it has links to forget it: only its requests can bring it back.
    for node in linked.values():
        node.dht.table.failed(reader.nodeId)
    got = outcome(overlay, reader.values.get("anything"))
    served = {nodeId for _, nodeId, answered in got.lookup.path if answered}
    asked = [linked[i] for i in served if i in linked]
    assert asked
    assert all(reader.nodeId in n.dht.table for n in asked)
