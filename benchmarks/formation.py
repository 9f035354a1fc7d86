"""
An overlay of N nodes formed from a single seed (every node joins the
seed): time to form, degree distribution, diameter and memory per node.

Baselines: the same number of bare TCP connections with a one-line
exchange (formation time), a random graph with the same degree sequence
(diameter), the configured minPeers/maxPeers (degrees) and bare
listening ports and connections measured in a fresh process (memory).
"""

from __future__ import annotations

import gc
import json
import random
import subprocess
import sys
import time
from collections import Counter
from typing import Dict, List, Set

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineReceiver

from benchmarks.broadcast import connected, formed
from benchmarks.machine import raiseFileLimit, rssBytes
from benchmarks.nodes import (
    neighbourGraph, neighbourIds, sleep, startNode, stopNodes)
from benchmarks.report import Figure, Results
from p2poverlay.config import NodeConfig

WAVE = 50  # joins (or bare connections) started at once
# One process holds every node here, so every node's PINGs add up: 1,000
# nodes with 10 links each, a PING each way every 5 s, are 4,000 messages
# a second, most of what the one core does while the overlay forms.  A
# node in its own process does not feel its 2 a second.
LIVENESS = dict(pingInterval=30.0, peerTimeout=120.0)


def diameter(graph: Dict[str, Set[str]]) -> int:
    """Longest shortest path (BFS from every node) of the largest component."""
    best = 0
    for start in graph:
        depth, seen, frontier = 0, {start}, [start]
        while frontier:
            nxt = [o for v in frontier for o in graph[v] if o not in seen
                   and not seen.add(o)]
            if nxt:
                depth += 1
            frontier = nxt
        best = max(best, depth)
    return best


def randomGraph(degrees: List[int], rng: random.Random) -> Dict[int, Set[int]]:
    """A random simple graph with (about) this degree sequence."""
    stubs = [i for i, d in enumerate(degrees) for _ in range(d)]
    rng.shuffle(stubs)
    graph: Dict[int, Set[int]] = {i: set() for i in range(len(degrees))}
    for a, b in zip(stubs[::2], stubs[1::2]):
        if a != b:
            graph[a].add(b)
            graph[b].add(a)
    return graph


class Hello(LineReceiver):
    delimiter = b"\n"

    def connectionMade(self) -> None:
        self.sendLine(b'{"type":"HELLO"}')

    def lineReceived(self, line: bytes) -> None:
        json.loads(line)
        waiter = getattr(self.factory, "waiter", None)
        if waiter is not None and not waiter.called:
            waiter.callback(self)


async def bareConnections(ports, edges: int) -> tuple:
    """Open C{edges} Hello connections spread over C{ports}; time it."""
    clients = []
    start = time.perf_counter()
    for first in range(0, edges, WAVE):
        pending = []
        for i in range(first, min(edges, first + WAVE)):
            factory = Factory.forProtocol(Hello)
            factory.waiter = Deferred()
            port = ports[i % len(ports)].getHost().port
            TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(factory)
            pending.append(factory.waiter)
        done = await DeferredList(pending, consumeErrors=True)
        clients.extend(proto for ok, proto in done if ok)
    return time.perf_counter() - start, clients


async def bareListeners(n: int) -> list:
    factory = Factory.forProtocol(Hello)
    return [await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
        factory) for _ in range(n)]


async def bareMemory(n: int, edges: int) -> int:
    """RSS growth per node for N bare listeners and E bare connections."""
    gc.collect()
    before = rssBytes()
    ports = await bareListeners(n)
    _, clients = await bareConnections(ports, edges)
    await sleep(0.5)
    gc.collect()
    growth = rssBytes() - before
    for client in clients:
        client.transport.abortConnection()
    for port in ports:
        await maybeDeferred(port.stopListening)
    return growth // n


def measureBareMemory(n: int, edges: int) -> int:
    """L{bareMemory} in a fresh interpreter, so this one's heap is no help."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--bare-memory", str(n),
         str(edges)], capture_output=True, text=True, timeout=600, check=True)
    return int(out.stdout.strip().splitlines()[-1])


async def run(results: Results, n: int, timeout: float,
              plaintext: bool = False) -> None:
    """Form an overlay of C{n} nodes (over TLS, or C{plaintext})."""
    config = NodeConfig()
    soft, hard = raiseFileLimit()
    worst = n * (config.maxPeers + 1) + 2 * WAVE + 64
    print(f"  RLIMIT_NOFILE soft limit raised to the hard limit ({soft}/{hard});"
          f" {n} nodes need about n*(mean degree + 1) descriptors, "
          f"{worst} if every node had maxPeers={config.maxPeers}", flush=True)
    if worst > soft:
        print(f"  note: the worst case exceeds the limit; this run relies on "
              f"the mean degree staying below "
              f"{(soft - 2 * WAVE - 64) // n - 1}", flush=True)
    results.fact("overlay", "fileLimit", [soft, hard])
    gc.collect()
    rssBefore = rssBytes()
    seed = await startNode(plaintext=plaintext, **LIVENESS)
    nodes = [seed] + [await startNode(plaintext=plaintext, **LIVENESS)
                      for _ in range(n - 1)]
    start = time.perf_counter()
    retried = 0
    try:
        for first in range(1, n, WAVE):
            await DeferredList(
                [node.join("127.0.0.1", seed.listenPort)
                 for node in nodes[first:first + WAVE]], consumeErrors=True)
        # A node the seed turned away before it learned of anyone else
        # stays alone: like a user, it joins again.
        deadline = time.perf_counter() + timeout
        connectedAt = None
        while not formed(nodes):
            if connectedAt is None and connected(neighbourGraph(nodes)):
                connectedAt = time.perf_counter()
            if time.perf_counter() > deadline:
                if connectedAt is not None:
                    break  # Connected, but some nodes lack minPeers.
                degrees = Counter(len(v) for v in neighbourGraph(nodes).values())
                raise TimeoutError(
                    f"no overlay of {n} nodes after {timeout:g} s; degrees "
                    f"{sorted(degrees.items())}")
            await sleep(2.0)
            alone = [node for node in nodes[1:] if not len(node.peers)]
            retried += len(alone)
            await DeferredList([node.join("127.0.0.1", seed.listenPort)
                                for node in alone], consumeErrors=True)
        reachedMin = formed(nodes)
        if not reachedMin:
            print(f"  note: after {timeout:g} s some nodes still have fewer "
                  f"than minPeers neighbours; the time given is until the "
                  f"overlay was connected", flush=True)
            formTime = connectedAt - start
        else:
            formTime = time.perf_counter() - start
        await sleep(1.0)
        gc.collect()
        memoryPerNode = (rssBytes() - rssBefore) / n
        graph = neighbourGraph(nodes)
        degrees = [len(v) for v in graph.values()]
        overDegree = sum(1 for node in nodes
                         if len(neighbourIds(node)) > node.config.maxPeers)
        isConnected = connected(graph)
        measuredDiameter = diameter(graph)
    finally:
        await stopNodes(nodes)
    edges = sum(degrees) // 2
    mean = sum(degrees) / n
    randomDiameter = diameter(randomGraph(degrees, random.Random(n)))
    ports = await bareListeners(n)
    bareTime, clients = await bareConnections(ports, edges)
    for client in clients:
        client.transport.abortConnection()
    for port in ports:
        await maybeDeferred(port.stopListening)
    bareMem = measureBareMemory(n, edges)

    histogram = sorted(Counter(degrees).items())
    print("  degree histogram: " + ", ".join(
        f"{d}:{c}" for d, c in histogram), flush=True)
    print(f"  connected: {isConnected}; nodes left alone that joined again: "
          f"{retried}; nodes with "
          f"more than maxPeers neighbours: {overDegree}", flush=True)
    label = f"{n} nodes, {'plaintext' if plaintext else 'TLS'}"
    results.fact("overlay", label, dict(histogram=histogram, n=n,
                                        connected=isConnected))
    results.add(Figure(
        "overlay", f"overlay of {label}: time to form from one seed",
        formTime, "s", f"{edges} bare TCP connections", bareTime,
        maxValue=30.0 if n >= 1000 else None,
        note=f"{retried} joins repeated" + (
            "" if reachedMin else "; until connected, minPeers not reached")))
    results.add(Figure(
        "overlay", f"overlay of {label}: connected", 100.0 if isConnected
        else 0.0, "%", "required", 100.0, minValue=100.0))
    results.add(Figure(
        "overlay", f"overlay of {label}: max degree", max(degrees), "peers",
        "maxPeers", config.maxPeers, maxRatio=1.0))
    results.add(Figure(
        "overlay", f"overlay of {label}: min degree", min(degrees), "peers",
        "minPeers", min(config.minPeers, n - 1), minRatio=1.0))
    results.add(Figure(
        "overlay", f"overlay of {label}: mean degree", mean, "peers",
        "maxPeers", config.maxPeers))
    results.add(Figure(
        "overlay", f"overlay of {label}: diameter", measuredDiameter, "hops",
        "random graph, same degrees", randomDiameter))
    results.add(Figure(
        "overlay", f"overlay of {label}: memory per node", memoryPerNode / 1024,
        "KiB", "bare listener + connections", bareMem / 1024,
        maxValue=100.0 if plaintext else None, note="RSS growth / nodes"))
