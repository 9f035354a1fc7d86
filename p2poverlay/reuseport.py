"""
Dialing from the listening port, as TCP hole punching needs.

A NAT that keeps one mapping for every destination maps a node's
listening port to the same public port whoever it dials from it; so when
two nodes behind such NATs dial each other at once, each from its own
listening port to the other's public one, each NAT has a mapping for the
other's SYN, and TCP's simultaneous open makes one connection of the two
attempts.  Both the listening socket and the dialing one need
C{SO_REUSEPORT} (and C{SO_REUSEADDR}) for the dialing one to bind there.
"""

from __future__ import annotations

import socket
from typing import Any, Tuple

from twisted.internet import tcp
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ClientFactory


def allowPortReuse(port: Any) -> Any:
    """Let sockets that ask for it bind the listening C{port}'s address
    too (a port without a socket, in memory, is left as it is)."""
    sock = getattr(port, "socket", None)
    if sock is not None and hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return port


class _ReusingClient(tcp.Client):
    def createInternetSocket(self) -> socket.socket:
        sock = super().createInternetSocket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        return sock


class _ReusingConnector(tcp.Connector):
    def _makeTransport(self) -> tcp.Client:
        return _ReusingClient(self.host, self.port, self.bindAddress, self,
                              self.reactor)


class _FirstProtocol(ClientFactory):
    """Fires with the protocol C{factory} builds for the connection, or
    fails with why there was none."""

    def __init__(self, factory: Any) -> None:
        self.factory = factory
        self.deferred: Deferred[Any] = Deferred()

    def buildProtocol(self, addr: Any) -> Any:
        protocol = self.factory.buildProtocol(addr)
        if protocol is None:
            self.deferred.errback(ConnectionError("refused by its factory"))
        else:
            self.deferred.callback(protocol)
        return protocol

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        if not self.deferred.called:
            self.deferred.errback(reason)


def dialFrom(reactor: Any, local: Tuple[str, int], host: str, port: int,
             factory: Any, timeout: float) -> "Deferred[Any]":
    """
    Dial C{host:port} from the address C{local} (a listening one), with
    the protocol C{factory} builds; fires with that protocol once
    connected.
    """
    first = _FirstProtocol(factory)
    _ReusingConnector(host, port, first, timeout, local, reactor).connect()
    return first.deferred
