"""
Routing by id over real sockets: nodes in this process on 127.0.0.1,
over TLS, each with a few neighbours, its own DHT lookup run (its bucket
lookups come JOIN_BUCKETS_DELAY later, after these); then lookups of
random nodes by random nodes (over the DHT even where a link to the
target is open), one at a time, every other one ending when the target
answers (ours) and the others by the spec's end rule: each rule looks up
pairs of its own, drawn alike, as a pair looked up twice would start warm
the second time.
Wall time, rounds and requests per lookup, ours against the spec's rule.
"""

from __future__ import annotations

import random
import statistics
import time
from typing import List

from benchmarks.nodes import startNode, stopNodes, waitUntil
from benchmarks.report import Figure, Results
from p2poverlay.dht.lookup import FIND_TARGET, K_CLOSEST, LookupResult

BENCH = "dht"


async def run(results: Results, nodes: int, lookups: int,
              seed: int = 1) -> None:
    print(f"  {nodes} nodes over TLS on 127.0.0.1", flush=True)
    rng = random.Random(seed)
    started: List = []
    try:
        first = await startNode(minPeers=2, maxPeers=4)
        started.append(first)
        for _ in range(nodes - 1):
            node = await startNode(minPeers=2, maxPeers=4)
            started.append(node)
            await node.join("127.0.0.1", rng.choice(started[:-1]).listenPort)
        took = await waitUntil(
            lambda: all(n.dht.joined and n.dht.lookups == 0
                        for n in started), 300, "every node's own lookup")
        print(f"  joined in {took:.1f} s", flush=True)
        await measure(results, started, lookups, rng)
    finally:
        await stopNodes(started)


async def lookUp(node, target, endRule) -> tuple:
    begun = time.perf_counter()
    result: LookupResult = await node.dht.lookup(
        target.dht.table.ownId, target.nodeId, endRule=endRule)
    return result, time.perf_counter() - begun


async def measure(results: Results, nodes, count: int,
                  rng: random.Random) -> None:
    ours, spec = [], []
    for index in range(2 * count):
        asker, target = rng.sample(nodes, 2)
        if index % 2 == 0:
            ours.append(await lookUp(asker, target, FIND_TARGET))
        else:
            spec.append(await lookUp(asker, target, K_CLOSEST))
    size = len(nodes)
    found = [(r, t) for r, t in ours if r.found is not None]
    results.add(Figure(BENCH,
                       f"lookups that find the node over TLS sockets, N={size}",
                       100 * len(found) / len(ours), "%", "every lookup",
                       100, minValue=100))
    results.add(Figure(
        BENCH, f"wall time per lookup (median) over TLS sockets, N={size}",
        statistics.median(t for _, t in ours) * 1000, "ms",
        "spec's end rule", statistics.median(t for _, t in spec) * 1000))
    results.add(Figure(
        BENCH, f"rounds per lookup (median) over TLS sockets, N={size}",
        statistics.median(r.rounds for r, _ in ours), "rounds",
        "spec's end rule", statistics.median(r.rounds for r, _ in spec)))
    results.add(Figure(
        BENCH, f"requests per lookup (mean) over TLS sockets, N={size}",
        statistics.mean(r.asked for r, _ in ours), "requests",
        "spec's end rule", statistics.mean(r.asked for r, _ in spec),
        maxValue=20))
