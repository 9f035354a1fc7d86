"""
The attacker of the ``attack`` benchmark, run in a process of its own::

    python -m benchmarks.attacker PORT [--ihave N] [--peers N] [--idle N]

From distinct 127.0.0.x source addresses it connects to the node that
listens on 127.0.0.1:PORT and, after a ``HELLO``, floods it with ``IHAVE``
lines of random ids (``--ihave`` connections) and ``PEERS`` lines of
made-up nodes, each signed by a key of its own (``--peers`` connections),
as fast as the node reads them;
``--idle`` more connections send nothing or half a ``HELLO``.  A connection
the node closes is opened again (after a short pause) until ``--seconds``
have passed or ``--max-attempts`` connections were tried.  It prints
``ready`` once every flooder has been answered (or after 10 s), and on
SIGTERM or at the deadline one JSON line: what each kind of connection
sent and how many the node closed or refused.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from dataclasses import asdict, dataclass
from typing import Dict, List

from twisted.internet import reactor
from twisted.internet.endpoints import (
    TCP4ClientEndpoint, connectProtocol, wrapClientTLS,
)
from twisted.internet.interfaces import IPullProducer
from twisted.internet.protocol import Protocol
from zope.interface import implementer

from p2poverlay.identity import NodeKey
from p2poverlay.message import MAX_IDS, MAX_PEER_ENTRIES, Hello, PeerAddress, Peers
from p2poverlay.signing import Signer
from p2poverlay.tls import NodeTLS

IHAVE = "ihave"
PEERS = "peers"
IDLE = "idle"
# Made-up nodes listen on loopback addresses nothing uses, on a port
# nothing listens on: the victim's dials of them are refused at once and
# never leave the machine.
FAKE_PORT = 1
PEERS_ENTRIES = MAX_PEER_ENTRIES  # as many as a receiver reads
RECORD_POOL = 2000
LINES_PER_WRITE = 4
RECONNECT_DELAY = 0.2
READY_TIMEOUT = 10.0


def ihaveLine() -> bytes:
    """One IHAVE of C{MAX_IDS} random ids, encoded without building them one by one."""
    ids = os.urandom(16 * MAX_IDS).hex("-", 16).replace("-", '","')
    return b'{"type":"IHAVE","ids":["' + ids.encode() + b'"]}\n'


_records: List[PeerAddress] = []


def _signedRecords() -> List[PeerAddress]:
    """
    Made-up nodes at unused loopback addresses, each with a key of its own
    and a valid signed record: the victim checks every signature.  Made
    once (keys cost the attacker too), then sent over and over.
    """
    if not _records:
        noise = os.urandom(3 * RECORD_POOL)
        for i in range(RECORD_POOL):
            key = NodeKey.generate()
            _records.append(Signer(key).address(PeerAddress(
                key.nodeId, f"127.{100 + noise[3 * i] % 100}."
                f"{noise[3 * i + 1]}.{noise[3 * i + 2] % 254 + 1}",
                FAKE_PORT, "", 1)))
    return _records


def peersLine() -> bytes:
    """One PEERS of C{PEERS_ENTRIES} made-up nodes, signed."""
    return Peers(tuple(random.sample(_signedRecords(), PEERS_ENTRIES))
                 ).encode() + b"\n"


@dataclass
class Tally:
    """What the connections of one kind did."""

    attempts: int = 0
    connected: int = 0
    answered: int = 0  # flooders: the victim's HELLO arrived
    failed: int = 0  # the TCP connection was refused or timed out
    closedByVictim: int = 0
    messages: int = 0
    bytes: int = 0


class Attack:
    """Every connection slot, their tallies, the budget and the deadline."""

    def __init__(self, port: int, flooders: int, maxAttempts: int) -> None:
        """
        @param port: the victim's port on 127.0.0.1.
        @param flooders: how many flooders must be answered to be ready.
        @param maxAttempts: most connections tried in all.
        """
        self.port = port
        self.flooders = flooders
        self.maxAttempts = maxAttempts
        self.tallies: Dict[str, Tally] = {IHAVE: Tally(), PEERS: Tally(),
                                          IDLE: Tally()}
        self.stopping = False
        self.readyPrinted = False

    def attempts(self) -> int:
        return sum(t.attempts for t in self.tallies.values())

    def dial(self, kind: str, source: str, partial: bool = False) -> None:
        """Open one connection of C{kind} from C{source}, and again when it ends."""
        if self.stopping or self.attempts() >= self.maxAttempts:
            return
        tally = self.tallies[kind]
        tally.attempts += 1
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port,
                                      timeout=5, bindAddress=(source, 0))
        # Flooders, and idlers that send half a HELLO, get through TLS
        # with a key of their own (keys are free); silent idlers never
        # begin it.
        key = NodeKey.generate()
        if kind != IDLE or partial:
            endpoint = wrapClientTLS(NodeTLS(key), endpoint)
        protocol = (Idler(self, source, partial) if kind == IDLE
                    else Flooder(self, kind, source, key.nodeId))
        d = connectProtocol(endpoint, protocol)

        def failed(_) -> None:
            tally.failed += 1
            self.again(kind, source, partial)

        d.addErrback(failed)

    def again(self, kind: str, source: str, partial: bool) -> None:
        if not self.stopping:
            reactor.callLater(RECONNECT_DELAY, self.dial, kind, source,
                              partial)

    def answered(self) -> None:
        if not self.readyPrinted and self.tallies[IHAVE].answered \
                + self.tallies[PEERS].answered >= self.flooders:
            self.ready()

    def ready(self) -> None:
        if not self.readyPrinted:
            self.readyPrinted = True
            print("ready", flush=True)

    def report(self) -> None:
        self.stopping = True
        print(json.dumps({kind: asdict(t) for kind, t in self.tallies.items()}),
              flush=True)


@implementer(IPullProducer)
class Flooder(Protocol):
    """HELLO, then IHAVE or PEERS lines whenever the transport's buffer empties."""

    def __init__(self, attack: Attack, kind: str, source: str,
                 nodeId: str) -> None:
        self.nodeId = nodeId
        self.attack = attack
        self.kind = kind
        self.source = source
        self.tally = attack.tallies[kind]
        self.makeLine = ihaveLine if kind == IHAVE else peersLine
        self.greeted = False
        self.buffer = b""

    def connectionMade(self) -> None:
        self.tally.connected += 1
        hello = Hello(self.nodeId, 1, 0, f"{self.kind}-flooder")
        self.transport.write(hello.encode() + b"\n")
        self.transport.registerProducer(self, False)

    def dataReceived(self, data: bytes) -> None:
        # Read everything, so the victim never finds a peer that does not
        # read; look only for its HELLO.
        if not self.greeted:
            self.buffer += data
            if b'"type":"HELLO"' in self.buffer:
                self.greeted = True
                self.buffer = b""
                self.tally.answered += 1
                self.attack.answered()

    def resumeProducing(self) -> None:
        if self.attack.stopping:
            return
        lines = b"".join(self.makeLine() for _ in range(LINES_PER_WRITE))
        self.tally.messages += LINES_PER_WRITE
        self.tally.bytes += len(lines)
        self.transport.write(lines)

    def stopProducing(self) -> None:
        pass

    def connectionLost(self, reason=None) -> None:
        if not self.attack.stopping:
            self.tally.closedByVictim += 1
            self.attack.again(self.kind, self.source, False)


class Idler(Protocol):
    """A connection that says nothing, or half a HELLO."""

    def __init__(self, attack: Attack, source: str, partial: bool) -> None:
        self.attack = attack
        self.source = source
        self.partial = partial
        self.tally = attack.tallies[IDLE]

    def connectionMade(self) -> None:
        self.tally.connected += 1
        if self.partial:
            line = b'{"type":"HELLO","node_id":"'
            self.tally.bytes += len(line)
            self.transport.write(line)

    def connectionLost(self, reason=None) -> None:
        if not self.attack.stopping:
            self.tally.closedByVictim += 1
            self.attack.again(IDLE, self.source, self.partial)


def sources(first: int, count: int) -> List[str]:
    """C{count} distinct loopback addresses from 127.0.C{first // 250}.x on."""
    return [f"127.0.{(first + i) // 250}.{(first + i) % 250 + 2}"
            for i in range(count)]


def parseArgs(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.attacker",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int, help="the victim's port on 127.0.0.1")
    parser.add_argument("--ihave", type=int, default=4,
                        help="IHAVE flooders, each from its own address")
    parser.add_argument("--peers", type=int, default=2,
                        help="PEERS flooders, each from its own address")
    parser.add_argument("--idle", type=int, default=32,
                        help="idle connections")
    parser.add_argument("--idle-hosts", type=int, default=8,
                        help="distinct addresses the idle connections share")
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="stop after this long")
    parser.add_argument("--max-attempts", type=int, default=10_000,
                        help="most connections tried in all")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parseArgs(argv)
    attack = Attack(args.port, args.ihave + args.peers, args.max_attempts)
    floodFrom = sources(10, attack.flooders)
    for i, source in enumerate(floodFrom):
        attack.dial(IHAVE if i < args.ihave else PEERS, source)
    idleFrom = sources(10 + attack.flooders, max(1, args.idle_hosts))
    for i in range(args.idle):
        attack.dial(IDLE, idleFrom[i % len(idleFrom)], partial=i % 2 == 1)
    if not attack.flooders:
        attack.ready()
    reactor.callLater(READY_TIMEOUT, attack.ready)
    reactor.addSystemEventTrigger("before", "shutdown", attack.report)
    reactor.callLater(args.seconds, reactor.stop)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
