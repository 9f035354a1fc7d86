"""
Routing by id, measured: ``python -m benchmarks --only dht``.

In the simulator (real nodes in memory on a virtual clock, 5-150 ms one
way per link, as L{benchmarks.sim}), at each size N: lookups of random
live nodes by random nodes, each run twice on the same overlay, once
ending as soon as the target answers (ours) and once by the spec's rule
(the k nearest all answered, k = 20, alpha = 3): rounds, requests and
virtual time per lookup, against log2 N and against the spec's rule;
then a fifth of the nodes crash and, a refresh period later, the same
again; and a C{put} read back by C{get} on another node, counting the
replica holders it reached.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from typing import List, Tuple

from twisted.internet.defer import DeferredList

from benchmarks.report import Figure, Results
from p2poverlay import Node, NodeConfig
from p2poverlay.dht.lookup import FIND_TARGET, K_CLOSEST, LookupResult
from p2poverlay.dht.record import keyId
from p2poverlay.identity import NodeKey
from p2poverlay.memnet import MemoryOverlay, UniformDelay
from p2poverlay.signing import Signer

WAN = UniformDelay(0.005, 0.150)
DHT_CONFIG = dict(minPeers=4, maxPeers=8, exchangeInterval=10.0,
                  pingInterval=5.0, peerTimeout=15.0, dht=True,
                  dhtRefreshInterval=300.0)
JOIN_SPACING = 0.01


def percentile(values: List[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(math.ceil(share * len(ordered))) - 1)]


def form(size: int, seed: int) -> Tuple[MemoryOverlay, List[Node]]:
    overlay = MemoryOverlay(seed=seed, config=NodeConfig(**DHT_CONFIG),
                            delay=WAN)
    started = time.perf_counter()
    nodes = overlay.addNodes(size, every=JOIN_SPACING)
    # Every node's join: its own lookup, then (up to JOIN_BUCKETS_DELAY
    # later) its buckets'; then a while for the last answers.
    overlay.runUntil(lambda: all(n.dht.settled for n in nodes),
                     timeout=600, what="every node joined in the DHT")
    overlay.run(20)
    print(f"  {size} nodes formed and joined the DHT in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    return overlay, nodes


def lookUp(overlay: MemoryOverlay, pairs, endRule) -> List[LookupResult]:
    """Each pair's lookup, all at once; the failed ones as None."""
    batch = [a.dht.lookup(b.dht.table.ownId, b.nodeId, endRule=endRule)
             for a, b in pairs]
    done: List = []
    DeferredList(batch, consumeErrors=True).addCallback(done.append)
    overlay.runUntil(lambda: done, timeout=300, what="the lookups")
    return [result if ok else None for ok, result in done[0]]


def pairsOf(nodes: List[Node], count: int, seed: int):
    rng = random.Random(seed)
    alive = [n for n in nodes if n.running]
    return [rng.sample(alive, 2) for _ in range(count)]


def addLookupFigures(results: Results, size: int, ours, spec,
                     label: str = "", crashed: bool = False) -> None:
    """
    The figures of C{ours} (lookups ending when the target answers)
    against C{spec} (the same pairs, by the spec's rule); the issue's
    targets apply to those without crashes at 10,000 nodes.
    """
    bench = "dht"
    found = [r for r in ours if r is not None and r.found is not None]
    specFound = [r for r in spec if r is not None and r.found is not None]
    success = len(found) / len(ours)
    results.add(Figure(bench, f"lookups that find a live node{label}, "
                       f"N={size}", success * 100, "%", "every lookup", 100,
                       minValue=99 if crashed else 100))
    if not found:
        return
    rounds = [r.rounds for r in found]
    named = [r.namedIn or 0 for r in found]
    log2 = math.log2(size)
    results.add(Figure(bench, f"median rounds{label}, N={size}",
                       statistics.median(rounds), "rounds", "log2 N", log2,
                       maxValue=2 if size >= 10000 and not crashed else None))
    results.add(Figure(bench, f"p99 rounds{label}, N={size}",
                       percentile(rounds, 0.99), "rounds", "log2 N", log2,
                       maxValue=4 if size >= 10000 and not crashed else None))
    results.add(Figure(bench, f"median rounds until the target is named"
                       f"{label}, N={size}", statistics.median(named),
                       "rounds", "log2 N", log2))
    if specFound:
        results.add(Figure(
            bench, f"mean rounds{label}, N={size}", statistics.mean(rounds),
            "rounds", "spec's end rule (k nearest answered)",
            statistics.mean(r.rounds for r in spec if r is not None)))
    asked = [r.asked for r in found]
    results.add(Figure(
        bench, f"requests per lookup (mean){label}, N={size}",
        statistics.mean(asked), "requests", "spec's end rule",
        statistics.mean(r.asked for r in spec if r is not None),
        maxValue=20))
    results.add(Figure(
        bench, f"virtual time per lookup (median){label}, N={size}",
        statistics.median(r.elapsed for r in found) * 1000, "ms",
        "spec's end rule", statistics.median(
            r.elapsed for r in spec if r is not None) * 1000))


def replicas(overlay: MemoryOverlay, nodes: List[Node], results: Results,
             size: int) -> None:
    """A put on one node, read by a get on another: holders reached."""
    writer, reader = nodes[1], nodes[-2]
    # Nodes in memory have no key; the writer is given one to sign with.
    writer.values.signer = Signer(NodeKey.generate())
    done: List = []
    writer.values.put("benchmark", "value").addBoth(done.append)
    overlay.runUntil(lambda: done, timeout=120, what="the put")
    holders = [n for n in nodes if n.running and n.values.store.get(
        "benchmark")]
    target = keyId("benchmark")
    nearest = sorted((n for n in nodes if n.running),
                     key=lambda n: n.dht.table.ownId ^ target)[:20]
    done.clear()
    reader.values.get("benchmark").addBoth(done.append)
    overlay.runUntil(lambda: done, timeout=120, what="the get")
    got = done[0]
    results.add(Figure("dht", f"replica holders a get reaches, N={size}",
                       got.holders, "nodes", "nodes holding it",
                       len(holders), minRatio=0.9))
    results.add(Figure("dht", f"of the k nearest, holding the put, N={size}",
                       sum(1 for n in nearest if n in holders), "nodes",
                       "k", 20, minRatio=0.9))


def simulated(results: Results, size: int, count: int, seed: int = 1) -> None:
    print(f"  simulator, {size} nodes", flush=True)
    overlay, nodes = form(size, seed)
    pairs = pairsOf(nodes, count, seed + 1)
    ours = lookUp(overlay, pairs, FIND_TARGET)
    spec = lookUp(overlay, pairs, K_CLOSEST)
    addLookupFigures(results, size, ours, spec)
    replicas(overlay, nodes, results, size)
    crashed = random.Random(seed + 2).sample(nodes[1:], size // 5)
    overlay.crash(*crashed)
    overlay.run(DHT_CONFIG["dhtRefreshInterval"])
    pairs = pairsOf(nodes, count, seed + 3)
    addLookupFigures(results, size, lookUp(overlay, pairs, FIND_TARGET),
                     lookUp(overlay, pairs, K_CLOSEST),
                     label=" with 20 % crashed", crashed=True)


def run(results: Results, sizes: List[int], lookups: int,
        dhtOnly: List[int]) -> None:
    """
    At each of C{sizes}, C{lookups} lookups of each kind in the in-memory
    overlay; at each of C{dhtOnly}, the same among nodes that know each
    other only through the DHT (L{benchmarks.dhtnet}).
    """
    from benchmarks import dhtnet
    for size in sizes:
        simulated(results, size, lookups)
    for size in dhtOnly:
        dhtnet.measure(results, size, lookups)
