"""
A bare Twisted relay from one process's standard input to another's
standard output over TCP: the baseline of the console latency benchmark.

    python -m benchmarks.bare_relay [--tls] listen
    python -m benchmarks.bare_relay [--tls] send PORT

C{listen} accepts TCP connections on 127.0.0.1, prints
``listening on PORT`` and then every line that arrives; C{send} connects
to C{PORT} and writes every line of its standard input to the connection.
Both use Twisted's defaults (L{LineReceiver}, L{stdio.StandardIO}, no
socket options), as the node does.  With C{--tls} the connection runs
over Twisted's TLS with the node's own settings (L{NodeTLS}: TLS 1.3, a
self-signed Ed25519 certificate each side): the baseline of the nodes
over TLS.
"""

from __future__ import annotations

import argparse
import sys

from typing import Optional

from twisted.internet import endpoints, protocol, stdio, task
from twisted.internet.defer import Deferred
from twisted.protocols.basic import LineReceiver
from twisted.protocols.tls import TLSMemoryBIOFactory

from p2poverlay.identity import NodeKey
from p2poverlay.tls import NodeTLS


class Printer(LineReceiver):
    """Prints each line that arrives on standard output."""

    delimiter = b"\n"

    def __init__(self, out) -> None:
        self.out = out

    def lineReceived(self, line: bytes) -> None:
        self.out.write(line + b"\n")


class Forwarder(LineReceiver):
    """Writes each line of standard input to the TCP connection C{peer}."""

    delimiter = b"\n"

    def __init__(self, peer, done: Deferred) -> None:
        self.peer = peer
        self.done = done

    def lineReceived(self, line: bytes) -> None:
        self.peer.write(line + b"\n")

    def connectionLost(self, reason=None) -> None:
        self.peer.loseConnection()
        if not self.done.called:
            self.done.callback(None)


class _Nothing(protocol.Protocol):
    pass


async def listen(reactor, tls: Optional[NodeTLS] = None) -> None:
    out = stdio.StandardIO(_Nothing(), reactor=reactor)
    factory = protocol.Factory.forProtocol(lambda: Printer(out))
    if tls is not None:
        factory = TLSMemoryBIOFactory(tls, False, factory)
    port = await endpoints.TCP4ServerEndpoint(
        reactor, 0, interface="127.0.0.1").listen(factory)
    out.write(f"listening on {port.getHost().port}\n".encode())
    await Deferred()  # Until killed.


async def send(reactor, port: int, tls: Optional[NodeTLS] = None) -> None:
    endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    if tls is not None:
        endpoint = endpoints.wrapClientTLS(tls, endpoint)
    connection = await endpoint.connect(
        protocol.Factory.forProtocol(protocol.Protocol))
    done: Deferred = Deferred()
    stdio.StandardIO(Forwarder(connection.transport, done), reactor=reactor)
    await done


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bare_relay")
    parser.add_argument("--tls", action="store_true",
                        help="over TLS, with the node's TLS settings")
    sub = parser.add_subparsers(dest="role", required=True)
    sub.add_parser("listen", help="print every line that arrives over TCP")
    sender = sub.add_parser("send", help="send every line of standard "
                            "input to PORT")
    sender.add_argument("port", type=int)
    args = parser.parse_args(argv)
    tls = NodeTLS(NodeKey.generate()) if args.tls else None
    if args.role == "listen":
        task.react(lambda reactor: Deferred.fromCoroutine(
            listen(reactor, tls)))
    else:
        task.react(lambda reactor: Deferred.fromCoroutine(
            send(reactor, args.port, tls)))


if __name__ == "__main__":
    main(sys.argv[1:])
