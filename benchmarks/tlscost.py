"""
What TLS costs: direct messages between two nodes over TLS against the
same two nodes in plaintext, and the CPU of setting up a verified peer
connection (TLS 1.3 and the HELLO exchange, both ends in this process)
against a bare pyOpenSSL TLS 1.3 handshake with the same kind of keys and
certificates, in the same run.
"""

from __future__ import annotations

import time

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    TCP4ClientEndpoint, connectProtocol, wrapClientTLS,
)
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from benchmarks.direct import Counter, WINDOW, pipelined
from benchmarks.nodes import UNLIMITED, startNode, stopNodes
from benchmarks.report import Figure, Results
from p2poverlay.identity import NodeKey
from p2poverlay.message import DIRECT
from p2poverlay.reasons import CloseKind, CloseReason
from p2poverlay.tls import NodeTLS


async def directOver(plaintext: bool, count: int, body: str) -> float:
    """Messages a second from one node to another, TLS or plaintext."""
    sender = await startNode(plaintext=plaintext, **UNLIMITED)
    receiver = await startNode(plaintext=plaintext, **UNLIMITED)
    counter = Counter()
    receiver.addObserver(counter)
    try:
        await sender.join("127.0.0.1", receiver.listenPort)
        target = receiver.nodeId
        for n in (max(100, count // 10), count):  # a warm-up, then measured
            seconds = await pipelined(lambda: sender.send(target, body), n,
                                      lambda: counter.count)
        return count / seconds
    finally:
        await stopNodes([sender, receiver])


async def nodeSetupCPU(rounds: int) -> float:
    """CPU seconds per verified direct link made and closed (both ends)."""
    # Neither dials the other as a neighbour besides: one link a round.
    client = await startNode(autoConnect=False)
    server = await startNode(autoConnect=False)
    try:
        start = time.process_time()
        for _ in range(rounds):
            peer = await client.connect("127.0.0.1", server.listenPort,
                                        role=DIRECT)
            connection = client.peers.connection(peer.node_id)
            connection.close(CloseReason(CloseKind.IDLE))
            await connection.whenClosed()
        return (time.process_time() - start) / rounds
    finally:
        await stopNodes([client, server])


@implementer(IHandshakeListener)
class _Bare(Protocol):
    """Sends one line once TLS is through, and fires when it hears one."""

    def __init__(self) -> None:
        self.heard: Deferred = Deferred()

    def handshakeCompleted(self) -> None:
        self.transport.write(b"{}\n")

    def dataReceived(self, data: bytes) -> None:
        if not self.heard.called:
            self.heard.callback(None)


async def bareSetupCPU(rounds: int) -> float:
    """CPU seconds per bare TLS 1.3 connection with a line each way."""
    factory = TLSMemoryBIOFactory(NodeTLS(NodeKey.generate()), False,
                                  Factory.forProtocol(_Bare))
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    clientTLS = NodeTLS(NodeKey.generate())  # one client key, as a node has
    try:
        start = time.process_time()
        for _ in range(rounds):
            endpoint = wrapClientTLS(clientTLS, TCP4ClientEndpoint(
                reactor, "127.0.0.1", port.getHost().port))
            side = await connectProtocol(endpoint, _Bare())
            await side.heard
            side.transport.loseConnection()
        return (time.process_time() - start) / rounds
    finally:
        await port.stopListening()


async def run(results: Results, count: int, rounds: int) -> None:
    body = "x" * 100
    overTLS = await directOver(False, count, body)
    plain = await directOver(True, count, body)
    results.add(Figure(
        "tls", "direct messages over TLS, 100 B body", overTLS, "msg/s",
        "the same in plaintext", plain, minRatio=0.7,
        note=f"{count} messages, window {WINDOW}, rate limit lifted"))
    node = await nodeSetupCPU(rounds)
    bare = await bareSetupCPU(rounds)
    results.add(Figure(
        "tls", "CPU to set up a verified link (both ends)", node * 1000, "ms",
        "bare pyOpenSSL TLS 1.3 handshake and a line each way", bare * 1000,
        maxRatio=1.3,
        note=f"{rounds} links, each made and closed"))

