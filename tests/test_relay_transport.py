"""
CircuitTransport: a stream over one circuit, with a window of credit per
direction, on a fake link and a fake clock.
"""

import base64

from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock

from p2poverlay.relay.transport import GRANT, WINDOW, CircuitTransport
from p2poverlay.relay.wire import (
    MAX_CHUNK, CircuitClose, CircuitCredit, CircuitData,
)
from relaylinks import FakeLink

CID = "d" * 32


class Reader(Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.lost = None

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason) -> None:
        self.lost = reason


class Producer:
    def __init__(self) -> None:
        self.paused = self.stopped = False
        self.pauses = 0

    def pauseProducing(self) -> None:
        self.paused = True
        self.pauses += 1

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        self.stopped = True


def circuit():
    clock, link, closed = Clock(), FakeLink("1" * 64), []
    transport = CircuitTransport(link, CID, clock, lambda: closed.append(1))
    reader = Reader()
    transport.makeConnection(reader)
    return clock, link, transport, reader, closed


def payload(messages) -> bytes:
    return b"".join(base64.b64decode(m.data) for m in messages)


def test_writes_go_in_chunks_up_to_the_window_and_the_rest_waits():
    _, link, transport, _, _ = circuit()
    producer = Producer()
    transport.registerProducer(producer, True)
    data = bytes(range(256)) * (WINDOW // 256 + 100)
    transport.write(data)
    sent = link.take(CircuitData)
    assert all(len(base64.b64decode(m.data)) <= MAX_CHUNK for m in sent)
    assert payload(sent) == data[:WINDOW]
    assert producer.paused
    transport.circuitCredit(CircuitCredit(CID, 100))
    assert payload(link.take(CircuitData)) == data[WINDOW:WINDOW + 100]
    assert producer.paused
    transport.circuitCredit(CircuitCredit(CID, WINDOW - 100))
    assert payload(link.take(CircuitData)) == data[WINDOW + 100:]
    assert not producer.paused and producer.pauses == 1


def test_credit_goes_back_as_the_protocol_takes_bytes_in():
    _, link, transport, reader, _ = circuit()
    piece = base64.b64encode(b"y" * MAX_CHUNK).decode()
    for _ in range(GRANT // MAX_CHUNK):
        transport.circuitData(CircuitData(CID, piece))
    assert reader.received == b"y" * GRANT
    assert link.take(CircuitCredit) == [CircuitCredit(CID, GRANT)]


def test_a_paused_reader_takes_nothing_and_grants_nothing():
    _, link, transport, reader, _ = circuit()
    transport.pauseProducing()
    piece = base64.b64encode(b"z" * MAX_CHUNK).decode()
    for _ in range(GRANT // MAX_CHUNK):
        transport.circuitData(CircuitData(CID, piece))
    assert reader.received == b"" and link.take(CircuitCredit) == []
    transport.resumeProducing()
    assert reader.received == b"z" * GRANT
    assert link.take(CircuitCredit) == [CircuitCredit(CID, GRANT)]


def test_data_beyond_the_window_is_the_links_protocol_error():
    _, link, transport, reader, _ = circuit()
    piece = base64.b64encode(b"w" * MAX_CHUNK).decode()
    transport.pauseProducing()
    for _ in range(WINDOW // MAX_CHUNK):
        transport.circuitData(CircuitData(CID, piece))
    assert link.errors == []
    transport.circuitData(CircuitData(CID, "AA=="))
    assert link.errors == [f"more data than credit on circuit {CID}"]


def test_credit_beyond_the_window_is_the_links_protocol_error():
    _, link, transport, _, _ = circuit()
    transport.circuitCredit(CircuitCredit(CID, 1))
    assert link.errors == [f"credit beyond the window on circuit {CID}"]


def test_losing_the_connection_waits_for_what_credit_holds_back():
    clock, link, transport, reader, closed = circuit()
    transport.write(b"q" * (WINDOW + 10))
    transport.loseConnection()
    link.take(CircuitData)
    assert link.take(CircuitClose) == [] and closed == []
    transport.circuitCredit(CircuitCredit(CID, 10))
    assert payload(link.take(CircuitData)) == b"q" * 10
    assert link.take(CircuitClose) == [CircuitClose(CID, "closed")]
    assert closed == [1] and reader.lost is None
    clock.advance(0)
    assert reader.lost.check(ConnectionDone)


def test_aborting_drops_what_waits_and_says_so():
    clock, link, transport, reader, _ = circuit()
    transport.write(b"q" * (WINDOW + 10))
    link.take(CircuitData)
    transport.abortConnection()
    clock.advance(0)
    assert link.take() == [CircuitClose(CID, "aborted")]
    assert reader.lost is not None and not reader.lost.check(ConnectionDone)
    transport.write(b"more")
    assert link.take() == []


def test_the_far_end_closing_is_the_end_of_the_stream():
    clock, link, transport, reader, closed = circuit()
    transport.circuitClosed(CircuitClose(CID, "closed"))
    clock.advance(0)
    assert reader.lost.check(ConnectionDone) and closed == [1]
    assert link.take() == []


def test_the_relay_closing_it_or_the_link_going_is_a_lost_connection():
    for close in (lambda t: t.circuitClosed(CircuitClose(CID, "byte limit")),
                  lambda t: t.linkLost()):
        clock, link, transport, reader, _ = circuit()
        close(transport)
        clock.advance(0)
        assert reader.lost.check(ConnectionLost)
        assert link.take() == []


def test_the_peer_end_is_the_relays_address():
    _, link, transport, _, _ = circuit()
    assert (transport.getPeer().host, transport.getPeer().port) == \
        ("10.0.0.2", 9000)
    assert not hasattr(transport, "getPeerCertificate")
