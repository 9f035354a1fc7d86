"""
One worker process of the overlay benchmark (L{benchmarks.formation}): it
runs its share of the nodes and answers its parent's commands, one JSON
line each way over its standard input and output.

Commands (each answered with one line, in order):

- C{{"cmd": "start", "count": K, "plaintext": P}}: start K nodes;
  the answer gives their listening ports;
- C{{"cmd": "join", "port": S, "wave": W, "skip": I}}: every node but
  the first I joins the seed at 127.0.0.1:S, W at a time;
- C{{"cmd": "status", "rejoin": R, "want": M, "graph": G}}: how many
  nodes have fewer than M neighbours, the CPU time the worker has used
  and (with G, the default) every node's neighbour ids; with R, the nodes
  left alone join the seed again (how many is in the answer);
- C{{"cmd": "memory"}}: RSS growth since before the first node, per node;
- C{{"cmd": "counts"}}: messages read by type and connections closed by
  reason, summed over the nodes, and how late the worker's reactor ran
  a timer (its lag: L{LagProbe});
- C{{"cmd": "stop"}}: stop every node, answer, exit.
"""

from __future__ import annotations

import cProfile
import gc
import json
import os
import sys
import time
from collections import Counter
from typing import List, Optional

from twisted.internet import reactor, stdio
from twisted.internet.defer import DeferredList, ensureDeferred
from twisted.internet.task import LoopingCall
from twisted.protocols.basic import LineReceiver

from benchmarks.machine import raiseFileLimit, rssBytes
from benchmarks.nodes import neighbourIds, startNode, stopNodes
from p2poverlay import Node
from p2poverlay.collector import tuneCollector

# One process holds many nodes, so every node's PINGs add up: see
# L{benchmarks.formation}.
LIVENESS = dict(pingInterval=30.0, peerTimeout=120.0)


class LagProbe:
    """
    How late the reactor runs a timer due every L{EVERY} seconds: how
    long one turn of it took, all the work ready at once (a loaded
    worker's answers wait that long, and a request's timeout runs
    meanwhile).
    """

    EVERY = 0.1

    def __init__(self) -> None:
        self.lags: List[float] = []
        self._last = time.monotonic()
        self._call = LoopingCall(self._tick)

    def start(self) -> None:
        self._last = time.monotonic()
        self._call.start(self.EVERY, now=False)

    def _tick(self) -> None:
        now = time.monotonic()
        self.lags.append(max(0.0, now - self._last - self.EVERY))
        self._last = now

    def summary(self) -> dict:
        """Median, 99th percentile and most, in milliseconds."""
        lags = sorted(self.lags) or [0.0]
        return {"p50": 1000 * lags[len(lags) // 2],
                "p99": 1000 * lags[len(lags) * 99 // 100],
                "max": 1000 * lags[-1]}


class Worker(LineReceiver):
    """Runs the commands of the parent, one at a time, in order."""

    delimiter = b"\n"
    MAX_LENGTH = 1 << 26

    def __init__(self) -> None:
        self.nodes: List[Node] = []
        self.lag = LagProbe()
        self.rssBefore = 0
        self.seedPort: Optional[int] = None
        self.queue: List[dict] = []
        self.busy = False

    def lineReceived(self, line: bytes) -> None:
        self.queue.append(json.loads(line))
        self._next()

    def _next(self) -> None:
        if self.busy or not self.queue:
            return
        self.busy = True
        command = self.queue.pop(0)
        d = ensureDeferred(self.run(command))
        d.addErrback(lambda f: {"error": f.getErrorMessage()})
        d.addCallback(self._answer)

    def _answer(self, answer: dict) -> None:
        self.sendLine(json.dumps(answer).encode())
        self.busy = False
        if answer.get("stopped"):
            reactor.stop()
        else:
            self._next()

    async def run(self, command: dict) -> dict:
        name = command["cmd"]
        if name == "start":
            gc.collect()
            self.rssBefore = rssBytes()
            for _ in range(command["count"]):
                self.nodes.append(await startNode(
                    plaintext=command["plaintext"], **LIVENESS))
            return {"ports": [n.listenPort for n in self.nodes],
                    "ids": [n.nodeId for n in self.nodes]}
        if name == "join":
            self.seedPort = command["port"]
            self.lag.start()
            joiners = self.nodes[command.get("skip", 0):]
            wave = command["wave"]
            for first in range(0, len(joiners), wave):
                await self._join(joiners[first:first + wave])
            return {"joined": len(joiners)}
        if name == "status":
            rejoined = 0
            if command.get("rejoin") and self.seedPort is not None:
                alone = [n for n in self.nodes if not len(n.peers)
                         and n.listenPort != self.seedPort]
                rejoined = len(alone)
                await self._join(alone)
            answer = {"rejoined": rejoined, "cpu": time.process_time(),
                      "short": sum(1 for n in self.nodes if len(
                          n.topology.neighbours()) < command.get("want", 0))}
            if command.get("graph", True):
                answer["graph"] = {n.nodeId: sorted(neighbourIds(n))
                                   for n in self.nodes}
            return answer
        if name == "memory":
            gc.collect()
            return {"perNode": (rssBytes() - self.rssBefore)
                    / max(1, len(self.nodes))}
        if name == "counts":
            messages: Counter = Counter()
            closed: Counter = Counter()
            for node in self.nodes:
                messages.update(node.metrics.messagesIn)
                closed.update({k: v for k, v in
                               node.metrics.disconnects.items() if v})
            dht: Counter = Counter()
            for node in self.nodes:
                dht.update(node.dht.counters())
            return {"messagesIn": dict(messages), "closed": dict(closed),
                    "lag": self.lag.summary(),
                    "dht": dict(dht)}
        if name == "stop":
            await stopNodes(self.nodes)
            return {"stopped": True}
        raise ValueError(f"unknown command {name!r}")

    async def _join(self, nodes: List[Node]) -> None:
        await DeferredList([n.join("127.0.0.1", self.seedPort)
                            for n in nodes], consumeErrors=True)


def main() -> None:
    """Serve the parent; with C{FORMWORKER_PROFILE} set, under cProfile,
    the stats saved to that path when the worker stops.  The collector is
    tuned as C{twistd p2p} tunes a node's process."""
    raiseFileLimit()
    tuneCollector()
    stdio.StandardIO(Worker())
    path = os.environ.get("FORMWORKER_PROFILE")
    if not path:
        reactor.run()
        return
    profiler = cProfile.Profile()
    profiler.runcall(reactor.run)
    profiler.dump_stats(f"{path}.{os.getpid()}")


if __name__ == "__main__":
    sys.exit(main())
