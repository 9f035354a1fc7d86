"""Shared test helpers: nodes on loopback, polling, recording observers."""

from __future__ import annotations

import gc
import json
from contextlib import contextmanager
from typing import Callable, Iterator, List, Optional

import pytest
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.endpoints import (
    TCP4ClientEndpoint, connectProtocol, wrapClientTLS,
)
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.logger import LogLevel, formatEvent, globalLogPublisher

from p2poverlay import Node, NodeConfig, NodeObserver, ReceivedMessage
from p2poverlay.identity import NodeKey
from p2poverlay.netlab import whyUnavailable
from p2poverlay.records import PeerInfo
from p2poverlay.store import NodeStore
from p2poverlay.tls import NodeTLS

# Generous bound for anything that should happen "promptly" on loopback.
PROMPT = 5.0
WARN_OR_WORSE = (LogLevel.warn, LogLevel.error, LogLevel.critical)


@inlineCallbacks
def waitFor(predicate: Callable[[], bool], timeout: float = 10.0,
            what: str = "condition", interval: float = 0.01):
    """Poll C{predicate} until it is true; fail after C{timeout} seconds."""
    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        yield deferLater(reactor, interval, lambda: None)


class Recorder(NodeObserver):
    """Records everything a node reports."""

    def __init__(self) -> None:
        self.messages: List[ReceivedMessage] = []
        self.connected: List[PeerInfo] = []
        self.disconnected: List[tuple] = []

    def messageReceived(self, message: ReceivedMessage) -> None:
        self.messages.append(message)

    def peerConnected(self, peer: PeerInfo) -> None:
        self.connected.append(peer)

    def peerDisconnected(self, peer: PeerInfo, reason: str) -> None:
        self.disconnected.append((peer, reason))

    def bodies(self, kind: Optional[str] = None) -> List[str]:
        return [m.body for m in self.messages if kind in (None, m.kind)]


class Overlay:
    """Starts nodes on 127.0.0.1 with ephemeral ports and stops them all."""

    def __init__(self) -> None:
        self.nodes: List[Node] = []
        self.recorders = {}

    @inlineCallbacks
    def start(self, join: Optional[Node] = None, nodeId: Optional[str] = None,
              store: Optional[NodeStore] = None, **config) -> Deferred:
        """
        Start a node with C{config} (listening on an ephemeral loopback port
        unless told otherwise), optionally with a given node id or data
        directory, and have it join C{join}.
        """
        config.setdefault("listen", "tcp:0:interface=127.0.0.1")
        # Raw test peers speak plaintext; tests of TLS ask for it.
        config.setdefault("plaintext", True)
        node = Node(NodeConfig(**config), nodeId=nodeId, store=store)
        recorder = Recorder()
        node.addObserver(recorder)
        self.recorders[node] = recorder
        self.nodes.append(node)
        node.startService()
        yield node.listening
        if join is not None:
            yield node.join("127.0.0.1", join.listenPort)
        return node

    def recorder(self, node: Node) -> Recorder:
        return self.recorders[node]

    def stop(self) -> Deferred:
        return DeferredList(
            [n.stopService() for n in self.nodes if n.running],
            consumeErrors=True)


def crash(node) -> Deferred:
    """
    Stop C{node} the way a killed process stops: no BYE, listening port
    gone, every connection cut, no more probes or redials.
    """
    return node.abort()


def address(node: Node) -> str:
    return f"127.0.0.1:{node.listenPort}"


class LogCapture:
    """A twisted.logger observer that keeps every event."""

    def __init__(self) -> None:
        self.events: List[dict] = []

    def __call__(self, event: dict) -> None:
        self.events.append(event)

    def warnings(self) -> List[dict]:
        """The events at warning level or worse."""
        return [e for e in self.events if e.get("log_level") in WARN_OR_WORSE]

    def warningTexts(self) -> List[str]:
        """The warnings, formatted."""
        return [formatEvent(e) for e in self.warnings()]

    def texts(self) -> List[str]:
        """Every event, formatted."""
        return [formatEvent(e) for e in self.events]

    def warningsFor(self, reason: str, names: List[str]) -> List[dict]:
        """
        Warnings whose C{reason} field is C{reason} and whose C{peer} field
        mentions one of C{names} (an address or a short node id).
        """
        return [e for e in self.warnings()
                if e.get("reason") == reason
                and any(n in str(e.get("peer", "")) for n in names)]

    def failures(self) -> List[dict]:
        """Events that carry a failure, i.e. a traceback."""
        return [e for e in self.events if "log_failure" in e]

    def describeFailures(self) -> str:
        return "\n".join(f"{formatEvent(e)}\n{e['log_failure'].getTraceback()}"
                         for e in self.failures())

    def assertNoTracebacks(self) -> None:
        # Failed Deferreds that nobody handled are logged when collected.
        gc.collect()
        assert self.failures() == [], self.describeFailures()


@contextmanager
def capturedLog(generation: int = 2) -> Iterator[LogCapture]:
    """Capture every log event published inside the block."""
    capture = LogCapture()
    globalLogPublisher.addObserver(capture)
    try:
        yield capture
    finally:
        # Unhandled errors of garbage Deferreds are logged when collected.
        gc.collect(generation)
        globalLogPublisher.removeObserver(capture)


class RawClient(Protocol):
    """
    Speaks the wire protocol by hand (or sends whatever it is told to);
    records what it receives and how its connection ended.
    """

    def __init__(self) -> None:
        self.received = b""
        self.lostReason = None
        self.localAddress: Optional[str] = None
        self.closedByUs = False

    def connectionMade(self) -> None:
        host = self.transport.getHost()
        self.localAddress = f"{host.host}:{host.port}"

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason) -> None:
        self.lostReason = reason

    @property
    def closed(self) -> bool:
        return self.lostReason is not None

    def lines(self) -> List[dict]:
        """The complete lines received, decoded as JSON."""
        return [json.loads(line) for line in self.received.split(b"\n")[:-1]]

    def types(self) -> List[str]:
        return [line["type"] for line in self.lines()]

    def send(self, *messages) -> None:
        self.transport.write(b"".join(m.encode() + b"\n" for m in messages))

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closedByUs = True
            self.transport.abortConnection()


def connectRaw(node: Node, source: str = "127.0.0.1",
               key: Optional[NodeKey] = None) -> Deferred:
    """
    A L{RawClient} connected to C{node} from the local address C{source};
    over TLS with C{key}, if given.
    """
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", node.listenPort,
                                  timeout=PROMPT, bindAddress=(source, 0))
    if key is not None:
        endpoint = wrapClientTLS(NodeTLS(key), endpoint)
    return connectProtocol(endpoint, RawClient())


# What info's reach line and the JSON views say of a node no peer beyond
# loopback has observed (every node in memory or on loopback).
UNOBSERVED = ("  reach:   unknown: no peer beyond loopback said where it "
              "sees this node")
UNOBSERVED_VIEW = {"state": "unknown", "address": None, "confirmed_by": 0,
                   "observers": 0, "candidate": None, "nat": "unknown"}


# Tests that make network namespaces (the lab fixture) run only where
# they can be made: as root, with ip and iptables (CI installs them).
LAB_UNAVAILABLE = whyUnavailable()
needsNamespaces = pytest.mark.skipif(
    LAB_UNAVAILABLE is not None,
    reason=f"NETWORK LAB NOT RUN: {LAB_UNAVAILABLE}")
