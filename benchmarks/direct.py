"""
Direct messages between two nodes over one loopback connection:
throughput (pipelined sends, in plaintext and over TLS) against a bare
LineReceiver pipe with no acknowledgements, and round-trip latency (send
and reply) against the bare LineReceiver pair of L{benchmarks.bare}.
"""

from __future__ import annotations

import time
from typing import Callable, List

from twisted.internet.defer import Deferred

from benchmarks.bare import BarePair
from benchmarks.nodes import UNLIMITED, startNode, stopNodes, waitUntil
from benchmarks.report import Figure, Results
from p2poverlay.events import NodeObserver

WINDOW = 256  # messages sent and not yet confirmed, at most


async def pipelined(send: Callable[[], Deferred], count: int,
                    received: Callable[[], int]) -> float:
    """
    Send C{count} messages keeping up to L{WINDOW} unconfirmed; return the
    seconds from the first send until the receiver had all of them.
    """
    done: Deferred = Deferred()
    state = {"sent": 0, "confirmed": 0}
    base = received()

    def sendOne() -> None:
        state["sent"] += 1
        send().addCallbacks(confirmed, done.errback)

    def confirmed(_) -> None:
        state["confirmed"] += 1
        if state["confirmed"] == count:
            done.callback(None)
        elif state["sent"] < count:
            sendOne()

    start = time.perf_counter()
    for _ in range(min(WINDOW, count)):
        sendOne()
    await done
    await waitUntil(lambda: received() - base >= count, 30, "receipts", 0.001)
    return time.perf_counter() - start


class Counter(NodeObserver):
    def __init__(self) -> None:
        self.count = 0

    def messageReceived(self, message) -> None:
        self.count += 1


class Replier(NodeObserver):
    """Answers every direct message with a direct message of the same body."""

    def __init__(self, node) -> None:
        self.node = node

    def messageReceived(self, message) -> None:
        self.node.send(message.sender_id, message.body).addErrback(
            lambda _: None)


class Waiter(NodeObserver):
    def __init__(self) -> None:
        self.waiting: Deferred = None

    def messageReceived(self, message) -> None:
        waiter, self.waiting = self.waiting, None
        if waiter is not None:
            waiter.callback(message)


def percentile(samples: List[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))
    return ordered[index]


async def streamed(pair: BarePair, body: str, count: int,
                   received: Callable[[], int]) -> float:
    """
    Stream C{count} DATA lines over the bare pair, no ACK at all; return
    the seconds from the first write until the receiver had all of them.
    """
    base = received()
    start = time.perf_counter()
    await pair.client.stream(body, count)
    await waitUntil(lambda: received() - base >= count, 30, "lines", 0.001)
    return time.perf_counter() - start


# Each figure is the best of this many runs, the node's and the bare
# pipe's taking turns: other work on the machine slows some runs down.
RUNS = 3
# What the node should reach: messages a second (100 B bodies) and a
# share of the bare pipe with no acknowledgements.
MIN_RATE = 50_000
MIN_RATIO = 0.4


async def throughput(results: Results, sizes, count: int) -> None:
    """
    Confirmed direct messages a second between two nodes, in plaintext
    and over TLS, each against a bare LineReceiver+JSON pipe streaming
    the same DATA lines with no acknowledgement at all.
    """
    links = {}
    for kind, plaintext in (("plaintext", True), ("TLS", False)):
        sender = await startNode(plaintext=plaintext, **UNLIMITED)
        receiver = await startNode(plaintext=plaintext, **UNLIMITED)
        counter = Counter()
        receiver.addObserver(counter)
        links[kind] = (sender, receiver, counter)
    pair = await BarePair(acknowledge=False).start()
    bareCount = {"n": 0}

    def bareReceived(message: dict) -> None:
        bareCount["n"] += 1

    pair.onData = bareReceived
    try:
        for sender, receiver, _ in links.values():
            await sender.join("127.0.0.1", receiver.listenPort)
        for size in sizes:
            body = "x" * size
            for kind, (sender, receiver, counter) in links.items():
                def send(sender=sender, target=receiver.nodeId, body=body):
                    return sender.send(target, body)

                def delivered(counter=counter) -> int:
                    return counter.count

                warmup = max(100, count // 10)
                await pipelined(send, warmup, delivered)
                await streamed(pair, body, warmup, lambda: bareCount["n"])
                nodeTime = bareTime = float("inf")
                for _ in range(RUNS):
                    nodeTime = min(nodeTime, await pipelined(
                        send, count, delivered))
                    bareTime = min(bareTime, await streamed(
                        pair, body, count, lambda: bareCount["n"]))
                results.add(Figure(
                    "direct", f"direct messages, {size} B body, {kind}",
                    count / nodeTime, "msg/s",
                    "bare LineReceiver+JSON, no ACK", count / bareTime,
                    minRatio=MIN_RATIO,
                    minValue=MIN_RATE if size <= 100 else None,
                    note=f"{count} confirmed messages, window {WINDOW}, "
                         f"best of {RUNS}, rate limit lifted"))
    finally:
        await pair.stop()
        await stopNodes([node for link in links.values()
                         for node in link[:2]])


async def latency(results: Results, rounds: int) -> None:
    a = await startNode(**UNLIMITED)
    b = await startNode(**UNLIMITED)
    b.addObserver(Replier(b))
    waiter = Waiter()
    a.addObserver(waiter)
    pair = await BarePair().start()
    try:
        await a.join("127.0.0.1", b.listenPort)
        target = b.nodeId
        nodeSamples, bareSamples = [], []
        for i in range(rounds + rounds // 10):
            waiter.waiting = Deferred()
            got = waiter.waiting
            start = time.perf_counter()
            a.send(target, "ping").addErrback(lambda _: None)
            await got
            nodeSample = time.perf_counter() - start
            start = time.perf_counter()
            await pair.client.ping(i)
            bareSample = time.perf_counter() - start
            if i >= rounds // 10:  # the first tenth warms up
                nodeSamples.append(nodeSample)
                bareSamples.append(bareSample)
        for name, fraction in (("p50", 0.5), ("p99", 0.99)):
            results.add(Figure(
                "latency", f"round trip, direct message and reply, {name}",
                percentile(nodeSamples, fraction) * 1e6, "us",
                "bare PING/PONG", percentile(bareSamples, fraction) * 1e6,
                maxRatio=1.5, note=f"{len(nodeSamples)} round trips"))
    finally:
        await pair.stop()
        await stopNodes([a, b])
