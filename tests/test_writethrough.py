"""
Writing through to the socket (L{p2poverlay.writethrough}): over real
loopback TCP and TLS, the first line of a turn leaves the transport's
buffer before the write returns, later lines of the same turn wait for
its end and go together, and nothing is lost or reordered, closing
included.  Other transports are written as they are.
"""

from __future__ import annotations

from typing import List

import pytest
import pytest_twisted
from twisted.internet import endpoints, protocol, reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import ConnectionAborted, ConnectionLost
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols.basic import LineReceiver
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol

from zope.interface import implementer

from p2poverlay.identity import NodeKey
from p2poverlay.outbox import Outbox
from p2poverlay.tls import NodeTLS
from p2poverlay.writethrough import WriteThrough
from helpers import waitFor


class Collector(LineReceiver):
    delimiter = b"\n"

    def __init__(self, lines: List[bytes], closed: Deferred) -> None:
        self.lines = lines
        self.closed = closed

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line)

    def connectionLost(self, reason=None) -> None:
        if not self.closed.called:
            self.closed.callback(None)


@implementer(IHandshakeListener)
class Writer(protocol.Protocol):
    """Makes an Outbox on its transport once connected (and, over TLS,
    once the handshake is through, so that the TLS layer is idle)."""

    def __init__(self, ready: Deferred) -> None:
        self.ready = ready

    def connectionMade(self) -> None:
        if not isinstance(self.transport, TLSMemoryBIOProtocol):
            self._ready()

    def handshakeCompleted(self) -> None:
        self._ready()

    def _ready(self) -> None:
        self.outbox = Outbox(self.transport, 1 << 20, reactor)
        self.ready.callback(self)


def tcpOf(transport):
    return transport.transport if isinstance(
        transport, TLSMemoryBIOProtocol) else transport


def nothingBuffered(tcp) -> bool:
    return len(tcp.dataBuffer) == tcp.offset and not tcp._tempDataBuffer


@inlineCallbacks
def openLink(tls: bool):
    """
    A Writer connected to a Collector over loopback (TLS if C{tls}),
    both idle: fires with (writer, lines, closed, port).
    """
    lines: List[bytes] = []
    closed: Deferred = Deferred()
    server = protocol.Factory.forProtocol(lambda: Collector(lines, closed))
    if tls:
        server = TLSMemoryBIOFactory(NodeTLS(NodeKey.generate()), False,
                                     server)
    port = yield endpoints.TCP4ServerEndpoint(
        reactor, 0, interface="127.0.0.1").listen(server)
    client = endpoints.TCP4ClientEndpoint(
        reactor, "127.0.0.1", port.getHost().port)
    if tls:
        client = endpoints.wrapClientTLS(NodeTLS(NodeKey.generate()), client)
    ready: Deferred = Deferred()
    yield client.connect(protocol.Factory.forProtocol(lambda: Writer(ready)))
    writer = yield ready
    # Let whatever the handshake left in the buffers go first.
    yield waitFor(lambda: nothingBuffered(tcpOf(writer.transport)),
                  what="an idle connection")
    return writer, lines, closed, port


@inlineCallbacks
def closeLink(writer, closed, port):
    # A registered producer would hold a TLS connection open.
    writer.transport.unregisterProducer()
    writer.transport.loseConnection()
    yield closed
    yield port.stopListening()


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
@pytest_twisted.inlineCallbacks
def test_the_first_line_of_a_turn_leaves_the_buffer_at_once(tls):
    writer, lines, closed, port = yield openLink(tls)
    tcp = tcpOf(writer.transport)
    writer.outbox.write(b"first")
    # In the kernel already: not waiting for the reactor to find the
    # socket writable.
    assert nothingBuffered(tcp)
    yield waitFor(lambda: lines == [b"first"], what="the line")
    yield closeLink(writer, closed, port)


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
@pytest_twisted.inlineCallbacks
def test_later_lines_of_a_turn_go_together_at_its_end_in_order(tls):
    writer, lines, closed, port = yield openLink(tls)
    tcp = tcpOf(writer.transport)
    writer.outbox.write(b"0")
    writes: List[bytes] = []
    original = tcp.write

    def write(data):
        writes.append(data)
        original(data)

    tcp.write = write
    for i in range(1, 200):
        writer.outbox.writeLines([b"%d" % i])
    # Held for the end of the turn: nothing more reached TCP yet.
    assert writes == []
    expected = [b"%d" % i for i in range(200)]
    yield waitFor(lambda: lines == expected, what="every line")
    # One write to TCP for the 199 held lines (encrypted first over TLS).
    assert len(writes) == 1
    yield closeLink(writer, closed, port)


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
@pytest_twisted.inlineCallbacks
def test_lines_held_when_the_connection_closes_still_go_first(tls):
    writer, lines, closed, port = yield openLink(tls)
    outbox = writer.outbox
    for i in range(50):
        outbox.write(b"%d" % i)
    # As PeerConnection closes: flush, a last line, then lose the transport.
    outbox.flush()
    outbox.write(b"bye")
    writer.transport.unregisterProducer()
    writer.transport.loseConnection()
    yield closed
    yield port.stopListening()
    assert lines == [b"%d" % i for i in range(50)] + [b"bye"]


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
@pytest_twisted.inlineCallbacks
def test_a_line_behind_buffered_data_waits_its_turn(tls):
    writer, lines, closed, port = yield openLink(tls)
    tcp = tcpOf(writer.transport)
    # Something already waits in TCP's buffer: no write through past it.
    if tls:  # Encrypted past BufferingTLSTransport's gathering.
        TLSMemoryBIOProtocol.write(writer.transport, b"queued\n")
    else:
        tcp.write(b"queued\n")
    assert not nothingBuffered(tcp)
    writer.outbox.write(b"after")
    assert not nothingBuffered(tcp)
    yield waitFor(lambda: lines == [b"queued", b"after"], what="both lines")
    yield closeLink(writer, closed, port)


def test_transports_other_than_twisteds_tcp_are_written_as_they_are():
    transport = StringTransport()
    assert WriteThrough.of(transport) is None
    outbox = Outbox(transport, 100, Clock())
    outbox.write(b"a")
    outbox.writeLines([b"b", b"c"])
    assert transport.value() == b"a\nb\nc\n"


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
@pytest_twisted.inlineCallbacks
def test_lines_held_when_the_connection_is_aborted_are_dropped_quietly(
        tls):
    writer, lines, closed, port = yield openLink(tls)
    lost = []
    writer.connectionLost = lost.append
    for i in range(20):
        writer.outbox.write(b"%d" % i)
    writer.transport.abortConnection()
    yield closed
    yield waitFor(lambda: lost, what="the writer's end to close")
    yield port.stopListening()
    # The first line had gone at once; the held ones went nowhere.
    assert lines in ([], [b"0"])
    assert lost[0].check(ConnectionAborted) or lost[0].check(ConnectionLost)
