"""
MemoryNetwork: hosts, listening ports and dials in memory, with faults.

Each host sees the network through its own L{MemoryHost}, an
L{p2poverlay.network.INetwork}: a node given C{network.host("10.0.0.7")}
listens on that host's ports and dials from it.  Connections are
L{p2poverlay.memnet.transport.MemoryConnection}s.

Fault model:
 - a port nobody listens on refuses a dial (L{ConnectionRefusedError},
   one round trip after the dial);
 - a host that is down (L{MemoryNetwork.takeDown}) or unknown answers
   nothing: dials to it time out, and every segment to or from it is lost
   while it is down;
 - hosts on different sides of a partition (L{MemoryNetwork.partition})
   cannot reach each other: dials time out, and the connections between
   them go silent, their segments held (as TCP retransmits them) and
   delivered one delay after L{MemoryNetwork.heal}.
A dial resends its SYN after 1, 2, 4... seconds, as TCP does, so a dial
may still succeed if the way opens before its timeout.
"""

from __future__ import annotations

import errno
import itertools
import random
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import (
    CannotListenError, ConnectionRefusedError, TimeoutError,
)
from twisted.internet.interfaces import (
    IListeningPort, IReactorTime, IStreamClientEndpoint, IStreamServerEndpoint,
)
from zope.interface import implementer

from p2poverlay.memnet.clock import Deliveries
from p2poverlay.memnet.delays import WAN
from p2poverlay.memnet.transport import (
    CONNECT, RST, MemoryConnection, MemoryTransport, Pipe,
)
from p2poverlay.network import INetwork

# Where port 0 and dialing ends take their ports from.
LISTEN_PORTS = range(32768, 49152)
EPHEMERAL_PORTS = range(49152, 65536)
# Interfaces a host's listener may name besides the host's own address.
ANY_INTERFACE = ("", "0.0.0.0", "::")
# Seconds until the first resent SYN; it doubles after each.
SYN_RETRY = 1.0


class MemoryNetwork:
    """
    Hosts joined by memory links on C{clock}.

    @param seed: makes the link delays (and jitter) of a run; the same seed
        gives the same delays whatever the order hosts first talk in.
    @param delay: a delay model (L{p2poverlay.memnet.delays}) for the
        one-way delay of each pair of hosts, drawn once per pair.
    @param jitter: a delay model drawn for every segment and added to its
        link's delay (segments still arrive in order), or L{None}.
    @param sendBuffer: bytes written and unread by the peer past which a
        transport pauses its producer; L{None} for no limit.
    """

    UP, DOWN, CUT = "up", "down", "cut"

    def __init__(self, clock: IReactorTime, seed: object = 0, delay=WAN,
                 jitter=None, sendBuffer: Optional[int] = 65536) -> None:
        self.clock = clock
        self.seed = seed
        self.delay = delay
        self.jitter = jitter
        self.sendBuffer = sendBuffer
        self.deliveries = Deliveries(clock)
        self._hosts: Dict[str, MemoryHost] = {}
        self._down: set = set()
        self._sides: Dict[str, int] = {}
        self._stalled: Dict[Tuple[int, int], Pipe] = {}
        self._connections: Dict[int, MemoryConnection] = {}
        self._serials = itertools.count(1)

    # -- hosts -------------------------------------------------------------

    def host(self, address: str) -> "MemoryHost":
        """The network as seen from the host at C{address} (made if new)."""
        host = self._hosts.get(address)
        if host is None:
            host = self._hosts[address] = MemoryHost(self, address)
        return host

    def delayBetween(self, a: str, b: str) -> float:
        """The one-way delay between hosts C{a} and C{b}, in seconds."""
        if b < a:
            a, b = b, a
        # Drawn afresh each time (the same from the seed): a table of
        # every pair that ever talked would grow with the run.
        return self.delay.draw(random.Random(f"{self.seed}|delay|{a}|{b}"))

    def connections(self) -> List[MemoryConnection]:
        """The connections accepted and not yet closed at both ends."""
        return list(self._connections.values())

    # -- faults ------------------------------------------------------------

    def takeDown(self, address: str) -> None:
        """
        The host at C{address} stops answering: what it sends and what is
        sent to it is lost until L{bringUp}.
        """
        self._down.add(address)

    def bringUp(self, address: str) -> None:
        """The host at C{address} answers again."""
        self._down.discard(address)

    def isUp(self, address: str) -> bool:
        return address in self._hosts and address not in self._down

    def partition(self, *groups: Iterable[str]) -> None:
        """
        Split the network: hosts in different C{groups} cannot reach each
        other; hosts in no group reach everyone.  Replaces any partition
        before it.
        """
        self.heal()
        for side, group in enumerate(groups):
            for address in group:
                self._sides[address] = side

    def heal(self) -> None:
        """End the partition; held segments arrive one delay later."""
        self._sides.clear()
        stalled, self._stalled = self._stalled, {}
        for key in sorted(stalled):
            stalled[key].unstall()

    def linkState(self, a: str, b: str) -> str:
        """L{UP}, L{DOWN} (either host is down) or L{CUT} (partitioned)."""
        if a in self._down or b in self._down:
            return self.DOWN
        sides = self._sides
        if sides:
            sideA, sideB = sides.get(a), sides.get(b)
            if sideA is not None and sideB is not None and sideA != sideB:
                return self.CUT
        return self.UP

    # -- what connections report ------------------------------------------

    def stall(self, pipe: Pipe) -> None:
        """C{pipe} waits for the partition to heal."""
        self._stalled[(pipe.connection.serial, pipe.direction)] = pipe

    def closed(self, connection: MemoryConnection) -> None:
        if connection.client.disconnected and connection.server.disconnected:
            self._connections.pop(connection.serial, None)

    def accepted(self, connection: MemoryConnection) -> None:
        self._connections[connection.serial] = connection

    def newSerial(self) -> int:
        return next(self._serials)


@implementer(INetwork)
class MemoryHost:
    """One host of a L{MemoryNetwork}: where its nodes listen and dial from."""

    def __init__(self, network: MemoryNetwork, address: str) -> None:
        self.network = network
        self.address = address
        self._ports: Dict[int, "MemoryPort"] = {}
        # Counted round their ranges (a cycle would keep every port).
        self._listenPorts = itertools.count()
        self._ephemeral = itertools.count()

    def serverEndpoint(self, description: str) -> IStreamServerEndpoint:
        port, interface = parseServerDescription(description)
        return MemoryServerEndpoint(self, port, interface)

    def clientEndpoint(self, host: str, port: int,
                       timeout: float) -> IStreamClientEndpoint:
        return MemoryClientEndpoint(self, host, port, timeout)

    def listener(self, port: int) -> Optional["MemoryPort"]:
        """The port listening on C{port} of this host, if any."""
        return self._ports.get(port)

    def listen(self, port: int, interface: str, factory) -> "MemoryPort":
        """
        @raise CannotListenError: if C{port} is taken, or C{interface} is
            not this host's.
        """
        if interface not in ANY_INTERFACE and interface != self.address:
            raise CannotListenError(interface, port, OSError(
                errno.EADDRNOTAVAIL, "Cannot assign requested address"))
        if port == 0:
            port = self._freePort(self._listenPorts, LISTEN_PORTS)
        elif port in self._ports:
            raise CannotListenError(interface, port, OSError(
                errno.EADDRINUSE, "Address already in use"))
        listening = self._ports[port] = MemoryPort(self, port, factory)
        factory.doStart()
        return listening

    def stoppedListening(self, port: "MemoryPort") -> None:
        if self._ports.get(port.port) is port:
            del self._ports[port.port]

    def ephemeralPort(self) -> int:
        """A port to dial from."""
        return _nth(EPHEMERAL_PORTS, next(self._ephemeral))

    def _freePort(self, ports: Iterator[int], allPorts: range) -> int:
        for _ in allPorts:
            port = _nth(allPorts, next(ports))
            if port not in self._ports:
                return port
        raise CannotListenError("", 0, OSError(
            errno.EADDRINUSE, "No free port"))

    def __repr__(self) -> str:
        return f"<MemoryHost {self.address}>"


def _nth(ports: range, count: int) -> int:
    return ports[count % len(ports)]


def parseServerDescription(description: str) -> Tuple[int, str]:
    """
    The port and interface of a TCP server endpoint description
    (``tcp:9000``, ``tcp:port=0:interface=10.0.0.1``).

    @raise ValueError: if it is not one.
    """
    kind, _, rest = description.partition(":")
    if kind.strip().lower() != "tcp":
        raise ValueError(f"a memory network listens on tcp only, not {kind!r}")
    port: Optional[int] = None
    interface = ""
    for argument in rest.split(":") if rest else []:
        key, equals, value = argument.partition("=")
        if not equals and port is None:
            port = int(argument)
        elif key == "port":
            port = int(value)
        elif key == "interface":
            interface = value
        elif key != "backlog":
            raise ValueError(f"unknown argument {argument!r}")
    if port is None:
        raise ValueError("no port given")
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} out of range")
    return port, interface


@implementer(IStreamServerEndpoint)
class MemoryServerEndpoint:
    """Listens on one port of a L{MemoryHost}."""

    def __init__(self, host: MemoryHost, port: int, interface: str) -> None:
        self.host = host
        self.port = port
        self.interface = interface

    def listen(self, factory) -> "Deferred[IListeningPort]":
        try:
            port = self.host.listen(self.port, self.interface, factory)
            return succeed(port)
        except CannotListenError:
            return fail()


@implementer(IListeningPort)
class MemoryPort:
    """A listening port of a L{MemoryHost}."""

    def __init__(self, host: MemoryHost, port: int, factory) -> None:
        self.host = host
        self.port = port
        self.factory = factory
        self.listening = True

    def startListening(self) -> None:
        pass

    def stopListening(self) -> "Deferred[None]":
        """Refuse new connections; those accepted stay open."""
        if self.listening:
            self.listening = False
            self.host.stoppedListening(self)
            self.factory.doStop()
        return succeed(None)

    loseConnection = stopListening

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", self.host.address, self.port)

    def __repr__(self) -> str:
        return f"<MemoryPort {self.host.address}:{self.port}>"


@implementer(IStreamClientEndpoint)
class MemoryClientEndpoint:
    """Dials C{host:port} from a L{MemoryHost}."""

    def __init__(self, source: MemoryHost, host: str, port: int,
                 timeout: float) -> None:
        self.source = source
        self.host = host
        self.port = port
        self.timeout = timeout

    def connect(self, factory) -> Deferred:
        """
        Fires with the protocol C{factory} built once connected; fails with
        L{ConnectionRefusedError} or, after C{timeout}, L{TimeoutError}.
        """
        return _Dial(self, factory).result


class _Dial:
    """One connection attempt: SYNs until an answer or the timeout."""

    def __init__(self, endpoint: MemoryClientEndpoint, factory) -> None:
        source = endpoint.source
        network = self.network = source.network
        self.factory = factory
        self.result: Deferred = Deferred(self._cancel)
        self.done = False
        client = IPv4Address("TCP", source.address, source.ephemeralPort())
        server = IPv4Address("TCP", endpoint.host, endpoint.port)
        self.connection = MemoryConnection(network, network.newSerial(),
                                           client, server, network.sendBuffer)
        self.connection.client.onConnected = self._connected
        self._timeout = network.clock.callLater(
            endpoint.timeout, self._fail, TimeoutError(
                f"connecting to {endpoint.host}:{endpoint.port} from "
                f"{source.address}: no answer in {endpoint.timeout:g} s"))
        self._sendSyn(0.0, SYN_RETRY)

    def _sendSyn(self, after: float, retry: float) -> None:
        connection = self.connection
        when = self.network.clock.seconds() + after
        connection.schedule(when + connection.delay,
                            lambda: self._synArrived(retry))

    def _synArrived(self, retry: float) -> None:
        if self.done:
            return
        connection = self.connection
        client, server = connection.client.host, connection.server.host
        network = self.network
        if network.linkState(client.host, server.host) != network.UP \
                or not network.isUp(server.host):
            # Lost: the dialer sends it again, up to its timeout.
            self._sendSyn(retry - connection.delay, retry * 2)
            return
        port = network.host(server.host).listener(server.port)
        protocol = port.factory.buildProtocol(client) if port else None
        if protocol is None:
            connection.schedule(
                network.clock.seconds() + connection.delay,
                lambda: self._fail(ConnectionRefusedError(
                    f"{server.host}:{server.port}")))
            return
        network.accepted(connection)
        connection.server.outgoing.send(CONNECT)
        connection.server.makeConnection(protocol)

    def _connected(self, transport: MemoryTransport) -> None:
        if self.done:
            # The dialer gave up before the answer came: reset.
            transport.outgoing.send(RST)
            return
        protocol = self.factory.buildProtocol(
            self.connection.server.host)
        self._finish()
        # No other answer can come: the connection need not keep the dial.
        transport.onConnected = None
        if protocol is None:
            transport.abortConnection()
            self.result.errback(ConnectionRefusedError(
                "the factory built no protocol"))
            return
        transport.makeConnection(protocol)
        self.result.callback(protocol)

    def _fail(self, reason: Exception) -> None:
        if not self.done:
            self._giveUp()
            self.result.errback(reason)

    def _cancel(self, _: Deferred) -> None:
        self._giveUp()

    def _giveUp(self) -> None:
        self._finish()
        # This end never opened; an answer that comes late is reset.
        self.connection.client.disconnected = True

    def _finish(self) -> None:
        self.done = True
        if self._timeout.active():
            self._timeout.cancel()
