"""
Small probes run inside a machine's namespace: a TCP listener printing
each peer's address, a TCP connect with a timeout, and ping.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from p2poverlay.netlab.namespaces import Namespaces
from p2poverlay.netlab.process import ConsoleProcess
from p2poverlay.netlab.topology import Machine

# Prints "listening", then "peer HOST PORT" for every connection, which it
# closes at once.
_LISTENER = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], int(sys.argv[2])))
server.listen(16)
print("listening", flush=True)
while True:
    conn, peer = server.accept()
    print("peer", *peer, flush=True)
    conn.close()
"""

# Prints "connected LOCALPORT" or "failed WHY"; exit status 0 if connected.
_CONNECT = """
import socket, sys
host, port, source, timeout = sys.argv[1:5]
s = socket.socket()
s.settimeout(float(timeout))
if int(source):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", int(source)))
try:
    s.connect((host, int(port)))
except OSError as e:
    print("failed", e or type(e).__name__, flush=True)
    sys.exit(1)
print("connected", s.getsockname()[1], flush=True)
# Let a server that closes at once close first (no TIME_WAIT here, so the
# port can be dialed from again); a node keeps the connection open.
s.settimeout(0.5)
try:
    s.recv(1)
except OSError:
    pass
s.close()
"""

PEER = re.compile(r"^peer (?P<host>\S+) (?P<port>\d+)$")
_PING_LOSS = re.compile(r"(\d+) packets transmitted, (\d+) received")
_PING_RTT = re.compile(r"= (?P<min>[\d.]+)/[\d.]+/[\d.]+/[\d.]+ ms")


class Listener(ConsoleProcess):
    """A TCP listener in a machine's namespace (see L{listen})."""

    def nextPeer(self) -> tuple:
        """Wait for the next connection; return its (host, port)."""
        match = self.expect(PEER)
        return match.group("host"), int(match.group("port"))


def listen(namespaces: Namespaces, machine: Machine, port: int,
           cwd: Path) -> Listener:
    """
    Start a listener on C{machine}'s address and C{port} that prints the
    address of every peer, and wait until it listens.
    """
    listener = Listener(
        f"listen-{machine.name}-{port}",
        namespaces.execArgv(machine.ns, sys.executable, "-c", _LISTENER,
                            machine.address, str(port)),
        cwd, console=False)
    listener.expect(r"^listening$")
    return listener


@dataclass
class ConnectResult:
    """What a L{connect} probe saw: C{localPort} if it connected."""
    connected: bool
    localPort: Optional[int]
    detail: str


def connect(namespaces: Namespaces, machine: Machine, host: str, port: int,
            sourcePort: int = 0, timeout: float = 2.0) -> ConnectResult:
    """
    Open a TCP connection from C{machine}'s namespace to C{host}:C{port}.

    @param sourcePort: the local port to dial from (0: any).
    @param timeout: seconds before the attempt counts as failed.
    """
    result = namespaces.exec(
        machine.ns, sys.executable, "-c", _CONNECT, host, str(port),
        str(sourcePort), str(timeout), check=False, timeout=timeout + 10)
    words = result.stdout.split()
    if result.returncode == 0 and words[:1] == ["connected"]:
        return ConnectResult(True, int(words[1]), result.stdout.strip())
    return ConnectResult(False, None,
                         (result.stdout + result.stderr).strip())


def _ping(namespaces: Namespaces, machine: Machine, host: str, count: int,
          interval: float) -> str:
    """What C{ping -q} prints for C{count} pings of C{host} from
    C{machine}'s namespace, C{interval} seconds apart."""
    result = namespaces.exec(
        machine.ns, "ping", "-n", "-q", "-c", str(count), "-i",
        str(interval), "-W", "1", "-w", str(int(count * interval) + 5),
        host, check=False, timeout=count * interval + 15)
    return result.stdout + result.stderr


def pingLoss(namespaces: Namespaces, machine: Machine, host: str,
             count: int = 50, interval: float = 0.01) -> float:
    """
    Ping C{host} C{count} times from C{machine}'s namespace; return the
    share of pings that got no answer.
    """
    printed = _ping(namespaces, machine, host, count, interval)
    match = _PING_LOSS.search(printed)
    if match is None:
        raise AssertionError(f"ping gave no summary:\n{printed}")
    sent, received = int(match.group(1)), int(match.group(2))
    return 1 - received / sent


def pingRoundTrip(namespaces: Namespaces, machine: Machine, host: str,
                  count: int = 5) -> float:
    """
    Ping C{host} C{count} times from C{machine}'s namespace; return the
    shortest round trip, in seconds.
    """
    printed = _ping(namespaces, machine, host, count, 0.2)
    match = _PING_RTT.search(printed)
    if match is None:
        raise AssertionError(f"ping {host} got no answer:\n{printed}")
    return float(match.group("min")) / 1000
