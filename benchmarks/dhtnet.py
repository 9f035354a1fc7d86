"""
Lookups among many nodes that know each other only through the DHT
(L{p2poverlay.dht.memory.DHTNetwork}: the real Kademlia of every node,
requests carried with 5-150 ms one-way delays on a virtual clock), at
sizes the full in-memory overlay takes hours to form: the same figures as
L{benchmarks.dht}, ours against the spec's end rule on the same pairs,
then again a refresh period after a fifth of the nodes crashed.  Each rule
looks up pairs of its own, drawn alike (L{bothWays}).
"""

from __future__ import annotations

import random
import statistics
import time
from typing import List, Optional, Tuple

from twisted.internet.defer import DeferredList

from benchmarks.dht import addLookupFigures, pairsOf
from benchmarks.report import Results
from p2poverlay.dht.lookup import FIND_TARGET, K_CLOSEST, EndRule, LookupResult
from p2poverlay.dht.memory import DHTNetwork, SimulatedNode
from p2poverlay.config import NodeConfig

REFRESH = 300.0


def lookUp(network: DHTNetwork, jobs: List[Tuple[SimulatedNode,
                                                  SimulatedNode, EndRule]]
           ) -> List[Optional[LookupResult]]:
    """Each C{(asker, target, endRule)} lookup, all at once; the failed
    ones as None."""
    batch = [network.lookup(a, b, rule) for a, b, rule in jobs]
    done: List = []
    DeferredList(batch, consumeErrors=True).addCallback(done.append)
    network.runUntil(lambda: done, timeout=600)
    return [result if ok else None for ok, result in done[0]]


def bothWays(network: DHTNetwork, pairs) -> Tuple[list, list]:
    """
    Ours on the even pairs and the spec's rule on the odd ones, all at
    once: a lookup teaches its asker the nodes that answered, the target
    among them, so a pair looked up a second time would start warm.
    """
    rules = [FIND_TARGET if i % 2 == 0 else K_CLOSEST
             for i in range(len(pairs))]
    results = lookUp(network, [(a, b, rule)
                               for (a, b), rule in zip(pairs, rules)])
    return results[0::2], results[1::2]


def joinCost(results: Results, network: DHTNetwork, seconds: float) -> None:
    """What joining cost: real time, and each node's requests and table."""
    nodes = network.nodes
    size = len(nodes)
    cost = {"real seconds": round(seconds, 1),
            "requests per node": round(statistics.mean(
                n.dht.requests.sent for n in nodes), 1),
            "contacts per node": round(statistics.mean(
                len(n.dht.table) for n in nodes), 1),
            "buckets per node": round(statistics.mean(
                len(n.dht.table.buckets) for n in nodes), 1)}
    results.fact("dht", f"DHT-only join, N={size}", cost)
    print(f"  {size} nodes joined the DHT in {seconds:.0f} s: "
          f"{cost['requests per node']:g} requests a node, then "
          f"{cost['contacts per node']:g} contacts in "
          f"{cost['buckets per node']:g} buckets", flush=True)


def measure(results: Results, size: int, count: int, seed: int = 1,
            b: Optional[int] = None) -> DHTNetwork:
    """
    The figures of C{size} nodes; C{b} (Kademlia's, by default the
    node's) shapes their tables.
    """
    print(f"  DHT only, {size} nodes", flush=True)
    started = time.perf_counter()
    config = NodeConfig(dht=True, dhtRefreshInterval=REFRESH)
    if b is not None:
        config.dhtB = b
    network = DHTNetwork(config, seed=seed)
    network.addNodes(size)
    joinCost(results, network, time.perf_counter() - started)
    label = " (DHT only)"
    ours, spec = bothWays(network, pairsOf(network.nodes, 2 * count, seed + 1))
    addLookupFigures(results, size, ours, spec, label=label)
    for node in random.Random(seed + 2).sample(network.nodes, size // 5):
        network.crash(node)
    network.run(REFRESH)
    ours, spec = bothWays(network, pairsOf(network.nodes, 2 * count, seed + 3))
    addLookupFigures(results, size, ours, spec,
                     label=f"{label} with 20 % crashed", crashed=True)
    return network
