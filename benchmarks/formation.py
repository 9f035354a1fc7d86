"""
An overlay of N nodes formed from a single seed (every node joins the
seed): time to form, degree distribution, diameter and memory per node,
and how late each worker's reactor ran its timers meanwhile (a loaded
worker answers late, and a DHT request may time out on the way).

The nodes run in worker processes (L{benchmarks.formworker}), at least
L{WORKERS} (one per core), the seed in the first: a real node has a
process of its own, and one process holding all of them would measure
one core.  More workers where one would need more open files than the
machine lets a process have (L{workersFor}): at the cap, dials fail and
a lookup's requests go unanswered, which is the packing, not the nodes.
Their joins go to the seed L{WAVE} at a time in all.

Baselines: the same number of bare TCP connections with a one-line
exchange (formation time), a random graph with the same degree sequence
(diameter), the configured minPeers/maxPeers (degrees) and bare
listening ports and connections measured in a fresh process (memory).
"""

from __future__ import annotations

import gc
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Set

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.protocol import Factory, ProcessProtocol
from twisted.protocols.basic import LineReceiver

from benchmarks.broadcast import connected
from benchmarks.machine import raiseFileLimit, rssBytes
from benchmarks.nodes import sleep
from benchmarks.report import Figure, Results
from p2poverlay.config import NodeConfig

ROOT = str(Path(__file__).resolve().parent.parent)
WAVE = 50  # joins (or bare connections) started at once
WORKERS = 2  # processes the nodes are spread over, at least
# Of the open files a worker may have, the share its nodes may need at most.
FILE_SHARE = 0.75
# Seconds between two looks at the overlay, and between two rounds of
# joining again for the nodes left alone.
POLL = 0.5
REJOIN_EVERY = 2.0
# With FORMATION_PROGRESS set, every look at the overlay is printed (its
# start time is kept here).
PROGRESS: List[float] = [time.perf_counter()] if os.environ.get(
    "FORMATION_PROGRESS") else []


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


class WorkerProcess(ProcessProtocol):
    """A L{benchmarks.formworker} child: one JSON command, one answer."""

    def __init__(self) -> None:
        self.buffer = b""
        self.waiting: List[Deferred] = []
        self.ended: Deferred = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            answer = json.loads(line)
            waiter = self.waiting.pop(0)
            if "error" in answer:
                waiter.errback(RuntimeError(f"worker: {answer['error']}"))
            else:
                waiter.callback(answer)

    def ask(self, **command) -> Deferred:
        """Send C{command}; fires with the worker's answer."""
        waiter: Deferred = Deferred()
        self.waiting.append(waiter)
        self.transport.write(json.dumps(command).encode() + b"\n")
        return waiter

    def processEnded(self, reason) -> None:
        waiting, self.waiting = self.waiting, []
        for waiter in waiting:
            waiter.errback(reason)
        self.ended.callback(None)


def spawnWorker() -> WorkerProcess:
    worker = WorkerProcess()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    reactor.spawnProcess(
        worker, sys.executable, [sys.executable, "-m", "benchmarks.formworker"],
        env=env, path=ROOT, childFDs={0: "w", 1: "r", 2: 2})
    return worker


async def overlayGraph(workers: List[WorkerProcess], rejoin: bool = False,
                       want: int = 0) -> tuple:
    """
    node id -> set of neighbour ids (both directions merged), over every
    worker; how many nodes joined again (with C{rejoin}); the CPU seconds
    each worker has used.  The graph is left out (None) while a node has
    fewer than C{want} neighbours: the workers need not send it.
    """
    answers = [await d for d in [w.ask(cmd="status", rejoin=rejoin, want=want,
                                       graph=False) for w in workers]]
    cpu = [a["cpu"] for a in answers]
    again = sum(a["rejoined"] for a in answers)
    if PROGRESS:
        print(f"    {time.perf_counter() - PROGRESS[0]:6.1f} s: "
              f"{sum(a['short'] for a in answers)} nodes short of {want}; "
              f"CPU " + ", ".join(f"{c:.0f}" for c in cpu), flush=True)
    if sum(a["short"] for a in answers):
        return None, again, cpu
    answers = [await d for d in [w.ask(cmd="status") for w in workers]]
    graph: Dict[str, Set[str]] = {}
    for answer in answers:
        for node in answer["graph"]:
            graph[node] = set()
    for answer in answers:
        for node, others in answer["graph"].items():
            for other in others:
                if other in graph:
                    graph[node].add(other)
                    graph[other].add(node)
    return graph, again, cpu


def descriptorsPerNode(config: NodeConfig) -> int:
    """Open files one node may hold: its listener, its neighbours and its
    direct links (DHT requests)."""
    return 1 + config.maxPeers + config.maxDirectLinks


def workersFor(n: int, config: NodeConfig, fileLimit: int,
               least: int = WORKERS) -> int:
    """Enough worker processes that none needs more than L{FILE_SHARE}
    of C{fileLimit} open files for its nodes, and at least C{least}."""
    perWorker = max(1, int(fileLimit * FILE_SHARE)
                    // descriptorsPerNode(config))
    return max(least, -(-n // perWorker))


def isFormed(graph: Dict[str, Set[str]], want: int) -> bool:
    """Connected, and every node has C{want} neighbours."""
    return connected(graph) and all(len(v) >= want for v in graph.values())


async def run(results: Results, n: int, timeout: float,
              plaintext: bool = False, workers: int = WORKERS) -> None:
    """Form an overlay of C{n} nodes (over TLS, or C{plaintext}) in at
    least C{workers} processes (more where L{workersFor} says so)."""
    config = NodeConfig()
    soft, hard = raiseFileLimit()
    workers = max(1, min(workersFor(n, config, soft, workers), n))
    shares = [n // workers + (1 if i < n % workers else 0)
              for i in range(workers)]
    worst = max(shares) * (config.maxPeers + 1) + 2 * WAVE + 64
    # Direct links (DHT requests) hold descriptors too: during the joins
    # nearly every node holds its maxDirectLinks, and past the limit dials
    # fail and accepts wait.
    direct = max(shares) * descriptorsPerNode(config) + 2 * WAVE + 64
    print(f"  {n} nodes in {workers} worker processes ({shares}); "
          f"RLIMIT_NOFILE {soft}/{hard}, {worst} descriptors a worker "
          f"if every node had maxPeers={config.maxPeers}, {direct} with "
          f"maxDirectLinks={config.maxDirectLinks} as well", flush=True)
    results.fact("overlay", "fileLimit", [soft, hard])
    want = min(config.minPeers, n - 1)
    procs = [spawnWorker() for _ in shares]
    retried = 0
    try:
        started = [await proc.ask(cmd="start", count=share,
                                  plaintext=plaintext)
                   for proc, share in zip(procs, shares)]
        seedPort = started[0]["ports"][0]
        _, _, cpuBefore = await overlayGraph(procs)
        start = time.perf_counter()
        PROGRESS[:] = [start] if PROGRESS else []
        # The seed's share of joins is the others': WAVE at once in all.
        joins = DeferredList(
            [proc.ask(cmd="join", port=seedPort,
                      wave=max(1, WAVE // workers), skip=int(i == 0))
             for i, proc in enumerate(procs)], fireOnOneErrback=True,
            consumeErrors=True)
        deadline = start + timeout
        joined = False
        lastRejoin = time.perf_counter()
        while True:
            await sleep(POLL)
            if not joined and joins.called:
                await joins
                joined = True
                lastRejoin = time.perf_counter()
            # A node the seed turned away before it learned of anyone
            # else stays alone: like a user, it joins again.
            rejoin = joined and time.perf_counter() - lastRejoin \
                >= REJOIN_EVERY
            graph, again, cpu = await overlayGraph(procs, rejoin, want)
            if rejoin:
                lastRejoin = time.perf_counter()
                retried += again
            now = time.perf_counter()
            if joined and graph is not None and isFormed(graph, want):
                break
            if now > deadline:
                graph, _, cpu = await overlayGraph(procs)
                if connected(graph):
                    break  # Connected, but some nodes lack minPeers.
                degrees = Counter(len(v) for v in graph.values())
                raise TimeoutError(
                    f"no overlay of {n} nodes after {timeout:g} s; degrees "
                    f"{sorted(degrees.items())}")
        reachedMin = isFormed(graph, want)
        cpuUsed = [after - before for before, after in zip(cpuBefore, cpu)]
        formTime = now - start
        if not reachedMin:
            print(f"  note: after {timeout:g} s some nodes still have fewer "
                  f"than minPeers neighbours; the overlay is connected",
                  flush=True)
        await sleep(1.0)
        memory = [(await proc.ask(cmd="memory"))["perNode"] for proc in procs]
        memoryPerNode = sum(m * c for m, c in zip(memory, shares)) / n
        counts = [await proc.ask(cmd="counts") for proc in procs]
        graph, _, _ = await overlayGraph(procs)
        degrees = [len(v) for v in graph.values()]
        overDegree = sum(1 for d in degrees if d > config.maxPeers)
        isConnected = connected(graph)
        measuredDiameter = diameter(graph)
    finally:
        for proc in procs:
            proc.ask(cmd="stop").addErrback(lambda _: None)
        for proc in procs:
            await proc.ended
    messages: Counter = Counter()
    closed: Counter = Counter()
    dhtCounts: Counter = Counter()
    for count in counts:
        messages.update(count["messagesIn"])
        closed.update(count["closed"])
        dhtCounts.update(count["dht"])
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
    print("  CPU seconds each worker used while the overlay formed: "
          + ", ".join(f"{c:.1f}" for c in cpuUsed), flush=True)
    print(f"  HELLOs read: {messages['HELLO']}, PEERS read: "
          f"{messages['PEERS']}; connections closed: "
          + ", ".join(f"{k} {v}" for k, v in closed.most_common()),
          flush=True)
    print("  reactor lag of each worker from the first join (p50, p99, max "
          "ms): " + "; ".join(
              "{p50:.0f}, {p99:.0f}, {max:.0f}".format(**count["lag"])
              for count in counts), flush=True)
    print("  DHT, summed over the nodes: " + ", ".join(
        f"{k[4:]} {v}" for k, v in sorted(dhtCounts.items())), flush=True)
    label = f"{n} nodes, {'plaintext' if plaintext else 'TLS'}"
    results.fact("overlay", label, dict(
        histogram=histogram, n=n, connected=isConnected, workers=workers,
        cpuSeconds=cpuUsed, reactorLag=[count["lag"] for count in counts],
        messagesIn=dict(messages), closed=dict(closed)))
    results.add(Figure(
        "overlay", f"overlay of {label}: time to form from one seed",
        formTime, "s", f"{edges} bare TCP connections", bareTime,
        maxValue=30.0 if n >= 1000 else None,
        note=f"{workers} processes; {retried} joins repeated" + (
            "" if reachedMin else "; minPeers not reached in time")))
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
