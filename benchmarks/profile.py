"""
Profile the node's own hot paths with cProfile, without the baselines:
``python -m benchmarks.profile [direct|broadcast] [--count N]``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
import time

from twisted.internet import task
from twisted.internet.defer import ensureDeferred

from benchmarks import broadcast, direct
from benchmarks.nodes import UNLIMITED, startNode, stopNodes


async def profileDirect(profiler: cProfile.Profile, count: int) -> str:
    sender = await startNode(**UNLIMITED)
    receiver = await startNode(**UNLIMITED)
    counter = direct.Counter()
    receiver.addObserver(counter)
    try:
        await sender.join("127.0.0.1", receiver.listenPort)
        body = "x" * 100

        def send():
            return sender.send(receiver.nodeId, body)

        await direct.pipelined(send, count // 10, lambda: counter.count)
        profiler.enable()
        elapsed = await direct.pipelined(send, count, lambda: counter.count)
        profiler.disable()
        return f"{count / elapsed:,.0f} direct messages/s (100 B, profiled)"
    finally:
        await stopNodes([sender, receiver])


async def profileBroadcast(profiler: cProfile.Profile, count: int) -> str:
    rng = random.Random(7)
    nodes = await broadcast.buildOverlay(30, rng, timeout=60, **UNLIMITED)
    arrivals = broadcast.Arrivals()
    for node in nodes:
        node.addObserver(arrivals)
    try:
        profiler.enable()
        start = time.perf_counter()
        await broadcast.runMode(nodes, "flood", arrivals, rng, 0, count)
        elapsed = time.perf_counter() - start
        profiler.disable()
        return f"{count} broadcasts to 29 nodes in {elapsed:.2f} s (profiled)"
    finally:
        await stopNodes(nodes)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    parser.add_argument("path", choices=["direct", "broadcast"])
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--lines", type=int, default=15)
    args = parser.parse_args()
    profiler = cProfile.Profile()
    box = {}

    async def run():
        if args.path == "direct":
            box["summary"] = await profileDirect(profiler, args.count or 10000)
        else:
            box["summary"] = await profileBroadcast(profiler, args.count or 20)

    task.react(lambda reactor: ensureDeferred(run()).addCallback(
        lambda _: report(profiler, box["summary"], args.lines)))


def report(profiler: cProfile.Profile, summary: str, lines: int) -> None:
    print(summary)
    for order in ("cumulative", "tottime"):
        stream = io.StringIO()
        stats = pstats.Stats(profiler, stream=stream)
        stats.strip_dirs().sort_stats(order).print_stats(lines)
        print(stream.getvalue())


if __name__ == "__main__":
    main()
