"""
Broadcast cost in one overlay of N nodes in this process, over loopback
TCP: Plumtree ("tree") against flooding ("flood") over the same graph.
The overlay is built once (in flood mode, so that every link starts
eager); it is measured flooding, then every node switches to the tree.  The first
broadcasts in each mode shape the tree and are not counted.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from typing import Dict, List

from twisted.internet.defer import DeferredList

from benchmarks.nodes import (
    neighbourGraph, setBroadcastMode, sleep, startNode, stopNodes, waitUntil)
from benchmarks.report import Figure, Results
from p2poverlay.events import NodeObserver
from p2poverlay import Node

BODY = "b" * 100
WAVE = 25  # nodes joining at the same time
# Payload transmissions per delivery, at most: the simulator's target
# (benchmarks.sim) holds over real sockets too.
TARGET_PAYLOADS = 1.05


class Arrivals(NodeObserver):
    """When each broadcast reached each node (shared by all nodes)."""

    def __init__(self) -> None:
        self.times: Dict[str, List[float]] = defaultdict(list)

    def messageReceived(self, message) -> None:
        if message.kind == "broadcast":
            self.times[message.message_id].append(time.perf_counter())


def connected(graph: dict) -> bool:
    if not graph:
        return True
    start = next(iter(graph))
    seen, frontier = {start}, [start]
    while frontier:
        nxt = []
        for node in frontier:
            for other in graph[node]:
                if other not in seen:
                    seen.add(other)
                    nxt.append(other)
        frontier = nxt
    return len(seen) == len(graph)


def formed(nodes: List[Node]) -> bool:
    """Connected, and every node has its minimum of neighbours."""
    graph = neighbourGraph(nodes)
    want = min(nodes[0].config.minPeers, len(nodes) - 1)
    return connected(graph) and all(len(v) >= want for v in graph.values())


async def buildOverlay(n: int, rng: random.Random, timeout: float,
                       **settings) -> List[Node]:
    """N nodes; each joins a random node started before it."""
    start = time.perf_counter()
    nodes = [await startNode(**settings)]
    for first in range(1, n, WAVE):
        wave = [await startNode(**settings)
                for _ in range(first, min(n, first + WAVE))]
        joins = [node.join("127.0.0.1", rng.choice(nodes).listenPort)
                 for node in wave]
        await DeferredList(joins, consumeErrors=True)
        nodes.extend(wave)
        if len(nodes) % 200 < WAVE:
            print(f"  {len(nodes)} nodes joined ({time.perf_counter() - start:.0f} s)",
                  flush=True)
    try:
        await waitUntil(lambda: formed(nodes), timeout,
                        f"{n} nodes to connect", 0.5)
    except TimeoutError:
        # Measure the overlay as it is, as long as it is one piece.
        if not connected(neighbourGraph(nodes)):
            raise
        print(f"  note: after {timeout:g} s some nodes still have fewer than "
              f"minPeers neighbours; measuring the connected overlay as it "
              f"is", flush=True)
    await sleep(1.0)  # let late dials and duplicate resolution settle
    return nodes


def totals(nodes: List[Node]) -> tuple:
    payloads = payloadBytes = controlBytes = 0
    for node in nodes:
        s = node.stats
        payloads += s.broadcastPayloadsSent
        payloadBytes += s.broadcastPayloadBytes
        controlBytes += s.broadcastControlBytes
    return payloads, payloadBytes + controlBytes


async def quiet(nodes: List[Node], settle: float = 0.3,
                timeout: float = 30.0) -> None:
    """Wait until no broadcast traffic moved for C{settle} seconds."""
    last, since = totals(nodes), time.perf_counter()
    deadline = since + timeout
    while time.perf_counter() - since < settle:
        if time.perf_counter() > deadline:
            return
        await sleep(0.05)
        now = totals(nodes)
        if now != last:
            last, since = now, time.perf_counter()


async def runMode(nodes: List[Node], mode: str, arrivals: Arrivals,
                  rng: random.Random, warmup: int, measured: int) -> dict:
    for node in nodes:
        setBroadcastMode(node, mode)
    n = len(nodes)
    samples = []
    for index in range(warmup + measured):
        origin = rng.choice(nodes)
        await quiet(nodes)
        before = totals(nodes)
        start = time.perf_counter()
        messageId, _ = origin.broadcast(BODY)
        try:
            await waitUntil(lambda messageId=messageId:
                            len(arrivals.times[messageId]) >= n - 1,
                            30.0, "broadcast delivery", 0.001)
        except TimeoutError:
            pass
        got = arrivals.times[messageId]
        last = (max(got) - start) if got else float("nan")
        await quiet(nodes)
        after = totals(nodes)
        if index >= warmup:
            samples.append(dict(
                delivered=len(got), timeToLast=last,
                payloads=after[0] - before[0], bytes=after[1] - before[1]))
    deliveries = sum(s["delivered"] for s in samples)
    return dict(
        mode=mode, n=n,
        deliveryPercent=100.0 * deliveries / (len(samples) * (n - 1)),
        payloadsPerDelivery=sum(s["payloads"] for s in samples) / max(1, deliveries),
        bytesPerDelivery=sum(s["bytes"] for s in samples) / max(1, deliveries),
        timeToLast=sum(s["timeToLast"] for s in samples) / len(samples),
    )


async def run(results: Results, sizes: List[int], warmup: int,
              measured: int, seed: int = 1) -> None:
    series = []
    for n in sizes:
        rng = random.Random(seed + n)
        arrivals = Arrivals()
        nodes: List[Node] = []
        tree = flood = None
        try:
            # Routing by id plays no part in a broadcast, and in one
            # process its joins (each node's own lookup and one for each
            # of its buckets, every request a link) would cost more open
            # files and CPU than the overlay itself.
            nodes = await buildOverlay(n, rng, timeout=30 + n * 0.05,
                                       broadcastMode="flood", dht=False)
            for node in nodes:
                node.addObserver(arrivals)
            graph = neighbourGraph(nodes)
            degrees = [len(v) for v in graph.values()]
            print(f"  overlay of {n}: degree min {min(degrees)} mean "
                  f"{sum(degrees) / n:.1f} max {max(degrees)}", flush=True)
            # Flood first: every link is still eager; then the tree is
            # pruned out of the same graph by the warm-up broadcasts.
            flood = await runMode(nodes, "flood", arrivals, rng, warmup,
                                  measured)
            tree = await runMode(nodes, "tree", arrivals, rng, warmup, measured)
        except Exception as e:
            print(f"!! broadcast N={n} failed: {e}", flush=True)
            results.fact("broadcast", f"failed N={n}", str(e))
        finally:
            await stopNodes(nodes)
        if tree is None or flood is None:
            continue
        series.extend([tree, flood])
        note = f"N={n}, {measured} broadcasts after {warmup} warm-up"
        results.add(Figure(
            "broadcast", f"broadcast N={n}: delivery", tree["deliveryPercent"],
            "%", "flood", flood["deliveryPercent"], minValue=100.0, note=note))
        results.add(Figure(
            "broadcast", f"broadcast N={n}: payload transmissions per delivery",
            tree["payloadsPerDelivery"], "tx", "flood",
            flood["payloadsPerDelivery"], maxValue=TARGET_PAYLOADS,
            note="tree"))
        results.add(Figure(
            "broadcast", f"broadcast N={n}: bytes per delivery (payload+control)",
            tree["bytesPerDelivery"], "B", "flood", flood["bytesPerDelivery"],
            note="tree"))
        results.add(Figure(
            "broadcast", f"broadcast N={n}: time until the last node has it",
            tree["timeToLast"] * 1e3, "ms", "flood", flood["timeToLast"] * 1e3,
            note="tree"))
    results.fact("broadcast", "series", series)
