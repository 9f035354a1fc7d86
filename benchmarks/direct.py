"""
Direct messages between two nodes over one loopback connection:
throughput (pipelined sends) and round-trip latency (send and reply),
each against the bare LineReceiver pair of L{benchmarks.bare}.
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


async def throughput(results: Results, sizes, count: int) -> None:
    sender = await startNode(**UNLIMITED)
    receiver = await startNode(**UNLIMITED)
    counter = Counter()
    receiver.addObserver(counter)
    pair = await BarePair().start()
    bareCount = {"n": 0}

    def bareReceived(message: dict) -> None:
        bareCount["n"] += 1

    pair.onData = bareReceived
    try:
        await sender.join("127.0.0.1", receiver.listenPort)
        target = receiver.nodeId
        for size in sizes:
            body = "x" * size
            # One short warm-up each, then the measured run.
            for measured in (False, True):
                n = count if measured else max(100, count // 10)
                nodeTime = await pipelined(
                    lambda body=body: sender.send(target, body), n,
                    lambda: counter.count)
                bareTime = await pipelined(
                    lambda body=body: pair.client.sendData(body), n,
                    lambda: bareCount["n"])
            results.add(Figure(
                "direct", f"direct messages, {size} B body",
                n / nodeTime, "msg/s", "bare LineReceiver+JSON", n / bareTime,
                minRatio=0.5,
                note=f"{n} messages, window {WINDOW}, rate limit lifted"))
    finally:
        await pair.stop()
        await stopNodes([sender, receiver])


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
