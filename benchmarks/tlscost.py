"""
What TLS costs, each figure against a baseline measured in the same run:

- direct messages between two nodes over TLS, against the same two nodes
  in plaintext;
- the CPU of the TLS handshake, per side: a node link set up over TLS
  less the same link in plaintext, against a bare pyOpenSSL TLS 1.3
  connection less a bare TCP connection (each with a line each way), with
  the same contexts (L{NodeTLS}: Ed25519 certificates); and, to tell
  where the difference goes, a plaintext node link with a TLS handshake
  done in memory amid it against the link and that handshake apart;
- memory per connection end: node links over TLS against bare Twisted TLS
  connections with the same contexts, each kind counted in a fresh
  interpreter (``python -m benchmarks.tlscost --memory KIND N``).
"""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import subprocess
import sys
import time
from typing import Awaitable, Callable, Dict, List, Tuple

from twisted.internet import reactor
from twisted.internet.defer import (
    Deferred, DeferredList, ensureDeferred, succeed,
)
from twisted.internet.endpoints import (
    TCP4ClientEndpoint, connectProtocol, wrapClientTLS,
)
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.tls import TLSMemoryBIOFactory
from OpenSSL import SSL
from zope.interface import implementer

from benchmarks.direct import Counter, WINDOW, pipelined
from benchmarks.machine import raiseFileLimit, rssBytes
from benchmarks.nodes import UNLIMITED, sleep, startNode, stopNodes, waitUntil
from benchmarks.report import Figure, Results
from p2poverlay.identity import NodeKey
from p2poverlay.message import DIRECT
from p2poverlay.reasons import CloseKind, CloseReason
from p2poverlay.tls import NodeTLS

# The CPU measurements go in short chunks, the kinds taking turns (in a
# rotating order): a burst of other work on the machine then lands in a few
# chunks of every kind, and the medians leave it out.
CHUNK_LINKS = 15
MEMORY_KINDS = ("node-tls", "node-plain", "bare-tls", "bare-tcp")
# Direct links a node may hold in the memory measurement (one per peer).
MANY = dict(maxDirectLinks=1000, maxInbound=1000, maxOutbound=1000)


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


# -- the four kinds of link, each made and closed ------------------------

async def nodeLink(client, server, amid: Callable[[], None] = lambda: None
                   ) -> None:
    """One direct link from C{client} to C{server}, made and closed (with
    C{amid()} called in between)."""
    peer = await client.connect("127.0.0.1", server.listenPort, role=DIRECT)
    amid()
    connection = client.peers.connection(peer.node_id)
    connection.close(CloseReason(CloseKind.IDLE))
    await connection.whenClosed()


def handshakeInMemory(client: NodeTLS, server: NodeTLS) -> None:
    """A TLS 1.3 handshake between C{client} and C{server} and a line each
    way, through memory only: no socket, no reactor, no Twisted."""
    ends = client.clientConnectionForTLS(None), \
        server.serverConnectionForTLS(None)
    ends[1].set_accept_state()
    for flight in range(4):
        sender, receiver = ends[flight % 2], ends[1 - flight % 2]
        try:
            sender.do_handshake()
        except SSL.WantReadError:
            pass
        receiver.bio_write(sender.bio_read(65536))
    for sender, receiver in (ends, ends[::-1]):
        sender.send(b"{}\n")
        receiver.bio_write(sender.bio_read(65536))
        receiver.recv(65536)


@implementer(IHandshakeListener)
class _Bare(Protocol):
    """Sends one line once TLS is through (or at once without TLS), and
    fires C{heard} when it hears one."""

    def __init__(self, tls: bool = True) -> None:
        self.tls = tls
        self.heard: Deferred = Deferred()

    def connectionMade(self) -> None:
        if not self.tls:
            self.transport.write(b"{}\n")

    def handshakeCompleted(self) -> None:
        self.transport.write(b"{}\n")

    def dataReceived(self, data: bytes) -> None:
        if not self.heard.called:
            self.heard.callback(None)


def bareListener(tls: NodeTLS | None, built: List[_Bare] | None = None):
    """A listening port of L{_Bare}s, over TLS with C{tls} or plain TCP;
    each protocol it builds is added to C{built}."""
    def build() -> _Bare:
        protocol = _Bare(tls is not None)
        if built is not None:
            built.append(protocol)
        return protocol

    factory: Factory = Factory.forProtocol(build)
    if tls is not None:
        factory = TLSMemoryBIOFactory(tls, False, factory)
    return reactor.listenTCP(0, factory, interface="127.0.0.1")


async def bareConnect(port: int, tls: NodeTLS | None) -> _Bare:
    """A L{_Bare} connected to C{port}, once it has heard a line."""
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    side = await connectProtocol(
        endpoint if tls is None else wrapClientTLS(tls, endpoint),
        _Bare(tls is not None))
    await side.heard
    return side


async def bareLink(port: int, tls: NodeTLS | None) -> None:
    """One bare connection with a line each way, made and closed."""
    side = await bareConnect(port, tls)
    closed: Deferred = Deferred()
    side.connectionLost = lambda reason: closed.callback(None)
    side.transport.loseConnection()
    await closed


async def setupCPU(rounds: int) -> Dict[str, float]:
    """
    CPU seconds per link made and closed (both ends in this process), for
    node links over TLS and in plaintext and for bare connections over
    TLS and TCP; the median over interleaved chunks of each.  Also
    ("node-plain+memory") a plaintext node link with a handshake in memory
    (L{handshakeInMemory}) amid it, and that handshake alone ("memory").
    """
    nodes = [await startNode(autoConnect=False, plaintext=plaintext)
             for plaintext in (False, False, True, True)]
    serverTLS = NodeTLS(NodeKey.generate())
    clientTLS = NodeTLS(NodeKey.generate())  # one client key, as a node has
    tlsPort = bareListener(serverTLS)
    tcpPort = bareListener(None)
    kinds: Dict[str, Callable[[], Awaitable[None]]] = {
        "node-tls": lambda: nodeLink(nodes[0], nodes[1]),
        "node-plain": lambda: nodeLink(nodes[2], nodes[3]),
        "bare-tls": lambda: bareLink(tlsPort.getHost().port, clientTLS),
        "bare-tcp": lambda: bareLink(tcpPort.getHost().port, None),
        "memory": lambda: succeed(handshakeInMemory(clientTLS, serverTLS)),
        "node-plain+memory": lambda: nodeLink(
            nodes[2], nodes[3], lambda: handshakeInMemory(clientTLS,
                                                          serverTLS)),
    }
    chunks = max(1, rounds // CHUNK_LINKS)
    perChunk = max(1, rounds // chunks)
    order = list(kinds)
    seconds: Dict[str, List[float]] = {kind: [] for kind in kinds}
    try:
        for chunk in range(chunks + 1):  # the first warms up
            turn = chunk % len(order)
            for kind in order[turn:] + order[:turn]:
                link = kinds[kind]
                start = time.process_time()
                for _ in range(perChunk):
                    await link()
                if chunk:
                    seconds[kind].append(
                        (time.process_time() - start) / perChunk)
        return {kind: statistics.median(s) for kind, s in seconds.items()}
    finally:
        await tlsPort.stopListening()
        await tcpPort.stopListening()
        await stopNodes(nodes)


# -- memory per connection -------------------------------------------------

def pairs(n: int) -> Tuple[int, int, List[Tuple[int, int]]]:
    """C{n} (client, server) pairs over about sqrt(n) of each, all apart."""
    servers = max(1, math.isqrt(n))
    clients = -(-n // servers)
    links = [(c, s) for c in range(clients) for s in range(servers)][:n]
    return clients, servers, links


async def nodeMemory(n: int, plaintext: bool) -> int:
    """RSS growth for C{n} direct node links (both ends in this process)."""
    clients, servers, links = pairs(n)
    nodes = [await startNode(autoConnect=False, plaintext=plaintext, **MANY)
             for _ in range(clients + servers)]
    dialers, listeners = nodes[:clients], nodes[clients:]
    try:
        # One link per node made and closed first: what a node's first
        # link allocates once is not per connection.
        for c in range(clients):
            await nodeLink(dialers[c], listeners[c % servers])
        gc.collect()
        before = rssBytes()
        for first in range(0, n, 50):
            await DeferredList(
                [dialers[c].connect("127.0.0.1", listeners[s].listenPort,
                                    role=DIRECT)
                 for c, s in links[first:first + 50]], fireOnOneErrback=True)
        await waitUntil(lambda: sum(len(s.connections) for s in listeners)
                        == n, 60, f"{n} node links")
        await sleep(0.3)
        gc.collect()
        return rssBytes() - before
    finally:
        await stopNodes(nodes)


async def bareMemory(n: int, tls: bool) -> int:
    """RSS growth for C{n} bare connections (both ends in this process),
    over TLS with the contexts nodes would have, or plain TCP."""
    clients, servers, links = pairs(n)
    serverTLS = [NodeTLS(NodeKey.generate()) if tls else None
                 for _ in range(servers)]
    clientTLS = [NodeTLS(NodeKey.generate()) if tls else None
                 for _ in range(clients)]
    accepted: List[_Bare] = []
    ports = [bareListener(t, accepted) for t in serverTLS]
    numbers = [p.getHost().port for p in ports]
    try:
        for c in range(clients):
            await bareLink(numbers[c % servers], clientTLS[c])
        accepted.clear()
        gc.collect()
        before = rssBytes()
        sides: List[_Bare] = []
        for first in range(0, n, 50):
            done = await DeferredList(
                [ensureDeferred(bareConnect(numbers[s], clientTLS[c]))
                 for c, s in links[first:first + 50]], fireOnOneErrback=True)
            sides += [side for _, side in done]
        await DeferredList([a.heard for a in accepted])
        await sleep(0.3)
        gc.collect()
        growth = rssBytes() - before
        for side in sides:
            side.transport.abortConnection()
        return growth
    finally:
        for port in ports:
            await port.stopListening()


async def measureMemory(kind: str, n: int) -> int:
    """RSS growth per connection end for C{n} links of C{kind}."""
    raiseFileLimit()
    if kind.startswith("node-"):
        growth = await nodeMemory(n, kind == "node-plain")
    else:
        growth = await bareMemory(n, kind == "bare-tls")
    return growth // (2 * n)


def memoryPerEnd(n: int) -> Dict[str, int]:
    """L{measureMemory} of every kind, each in a fresh interpreter (so no
    kind reuses the heap another freed), side by side."""
    children = {kind: subprocess.Popen(
        [sys.executable, "-m", "benchmarks.tlscost", "--memory", kind,
         str(n)], stdout=subprocess.PIPE, text=True)
        for kind in MEMORY_KINDS}
    got = {}
    for kind, child in children.items():
        out, _ = child.communicate(timeout=300)
        if child.returncode:
            raise RuntimeError(f"memory of {kind} links: exit status "
                               f"{child.returncode}")
        got[kind] = int(out.split()[-1])
    return got


# -- the figures -------------------------------------------------------------

# Links in the memory measurement: enough that the heap's ups and downs
# average out, few enough for file descriptors and time.
MEMORY_LINKS = 300


async def run(results: Results, count: int, rounds: int) -> None:
    """The figures, with C{count} direct messages and C{rounds} links of
    each kind for the CPU (four times as many, at most L{MEMORY_LINKS},
    for memory)."""
    body = "x" * 100
    overTLS = await directOver(False, count, body)
    plain = await directOver(True, count, body)
    results.add(Figure(
        "tls", "direct messages over TLS, 100 B body", overTLS, "msg/s",
        "the same in plaintext", plain, minRatio=0.7,
        note=f"{count} messages, window {WINDOW}, rate limit lifted"))
    cpu = await setupCPU(rounds)
    ms = {kind: seconds * 1000 for kind, seconds in cpu.items()}
    chunks = max(1, rounds // CHUNK_LINKS)
    note = (f"{rounds} links of each kind, made and closed, in {chunks} "
            f"interleaved chunk{'s' * (chunks != 1)} (medians); both ends "
            f"in one process")
    results.add(Figure(
        "tls", "TLS handshake CPU per side (node link over TLS less in "
        "plaintext, halved)", (ms["node-tls"] - ms["node-plain"]) / 2, "ms",
        "bare pyOpenSSL TLS 1.3 connection less bare TCP, halved",
        (ms["bare-tls"] - ms["bare-tcp"]) / 2, maxRatio=1.3,
        note=note + "; the same Ed25519 certificates and contexts"))
    results.add(Figure(
        "tls", "CPU to set up a verified link (both ends)", ms["node-tls"],
        "ms", "the same link in plaintext", ms["node-plain"],
        note="the whole link: TLS, HELLO, admission, registry, BYE"))
    results.add(Figure(
        "tls", "CPU of a plaintext node link with a TLS handshake in memory "
        "amid it", ms["node-plain+memory"], "ms",
        "the link and the handshake apart", ms["node-plain"] + ms["memory"],
        note="no target: what a handshake's work does to the node's own "
             "work around it (caches), not TLS work of the node"))
    results.fact("tls", "setupCPUms", ms)
    memoryLinks = min(MEMORY_LINKS, 4 * rounds)
    memory = memoryPerEnd(memoryLinks)
    kib = {kind: value / 1024 for kind, value in memory.items()}
    note = (f"RSS growth for {memoryLinks} links, both ends in one fresh "
            f"process, divided by {2 * memoryLinks} ends")
    results.add(Figure(
        "tls", "memory per node link end over TLS", kib["node-tls"], "KiB",
        "bare Twisted TLS connection end, same contexts", kib["bare-tls"],
        maxRatio=1.3, note=note))
    results.add(Figure(
        "tls", "memory per node link end in plaintext", kib["node-plain"],
        "KiB", "bare Twisted TCP connection end", kib["bare-tcp"],
        note="for reference"))
    results.fact("tls", "memoryPerEndBytes", memory)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tlscost")
    parser.add_argument("--memory", nargs=2, metavar=("KIND", "N"),
                        required=True,
                        help=f"print the RSS bytes per connection end of "
                             f"N links of KIND ({', '.join(MEMORY_KINDS)})")
    args = parser.parse_args(argv)
    kind, n = args.memory[0], int(args.memory[1])
    if kind not in MEMORY_KINDS or n < 1:
        parser.error(f"KIND is one of {', '.join(MEMORY_KINDS)}; N at least 1")
    from twisted.internet import task

    async def measure(reactor) -> None:
        print(await measureMemory(kind, n), flush=True)

    task.react(lambda r: ensureDeferred(measure(r)))


if __name__ == "__main__":
    main()
