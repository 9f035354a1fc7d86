"""
What signed broadcasts cost: signature checks a second on one core
against decoding the same lines, and broadcast throughput through a small
overlay of nodes with keys (every broadcast signed and checked at every
node) against the same overlay of nodes without keys (nothing signed), in
the same run.  Both overlays run in plaintext, so that only the
signatures differ.
"""

from __future__ import annotations

import time
from typing import List

from benchmarks.nodes import QUIET, UNLIMITED, sleep, stopNodes, waitUntil
from benchmarks.report import Figure, Results
from p2poverlay import Node, NodeConfig
from p2poverlay.events import NodeObserver
from p2poverlay.identity import NodeKey
from p2poverlay.message import Broadcast, P2PMessage, newMessageId, newNodeId
from p2poverlay.signing import Signer, Verifier

BODY = "s" * 100
BATCH = 50


def checksPerSecond(count: int) -> tuple:
    """Signature checks a second (one origin, its key known), and
    decodes a second of the same lines."""
    signer = Signer(NodeKey.generate())
    lines = [signer.broadcast(Broadcast(
        newMessageId(), signer.key.nodeId, 32, BODY, "origin",
        time=1_764_600_000_000 + n)).encode() for n in range(count)]
    messages = [P2PMessage.decode(line) for line in lines]
    verifier = Verifier(acceptUnsigned=False)
    start = time.process_time()
    for message in messages:
        if verifier.checkBroadcast(message) is not None:
            raise AssertionError("a genuine signature did not check")
    checking = time.process_time() - start
    start = time.process_time()
    for line in lines:
        P2PMessage.decode(line)
    decoding = time.process_time() - start
    return count / checking, count / decoding


class Counter(NodeObserver):
    def __init__(self) -> None:
        self.count = 0

    def messageReceived(self, message) -> None:
        if message.kind == "broadcast":
            self.count += 1


async def overlay(size: int, keyed: bool) -> List[Node]:
    nodes: List[Node] = []
    for _ in range(size):
        config = NodeConfig(listen="tcp:0:interface=127.0.0.1",
                            plaintext=True, **UNLIMITED, **QUIET)
        node = Node(config, nodeId=None if keyed else newNodeId())
        node.startService()
        await node.listening
        if nodes:
            await node.join("127.0.0.1", nodes[0].listenPort)
        nodes.append(node)
    await waitUntil(lambda: all(len(n.peers) >= min(3, size - 1)
                                for n in nodes), 30, "the overlay formed")
    return nodes


async def throughput(size: int, count: int, keyed: bool) -> float:
    """Broadcasts a second from one node until every other delivered."""
    nodes = await overlay(size, keyed)
    counters = []
    for node in nodes[1:]:
        counters.append(Counter())
        node.addObserver(counters[-1])
    try:
        await sleep(0.2)
        start = time.perf_counter()
        sent = 0
        while sent < count:
            for _ in range(min(BATCH, count - sent)):
                nodes[0].broadcast(BODY)
                sent += 1
            await waitUntil(lambda sent=sent: all(c.count >= sent
                                                  for c in counters),
                            60, "a batch delivered everywhere")
        return count / (time.perf_counter() - start)
    finally:
        await stopNodes(nodes)


async def run(results: Results, count: int, size: int = 6) -> None:
    checks, decodes = checksPerSecond(max(200, count // 4))
    results.add(Figure(
        "signing", "broadcast signature checks, one core", checks, "/s",
        "decoding the same lines", decodes, minValue=5000,
        note="Ed25519 (PyNaCl, libsodium), the origin's key known"))
    signed = await throughput(size, count // 4, keyed=True)
    unsigned = await throughput(size, count // 4, keyed=False)
    results.add(Figure(
        "signing", f"broadcasts through {size} nodes, signed", signed,
        "msg/s", "the same nodes without keys, unsigned", unsigned,
        minRatio=0.7,
        note=f"{count // 4} broadcasts in batches of {BATCH}, plaintext"))
