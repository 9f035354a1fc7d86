"""
The live feed against hostile clients: queues bounded in bytes, slow
clients dropped, and a stream for the owner even when all are taken.
"""

from __future__ import annotations

import socket
from typing import List

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol

from p2poverlay.web.feed import Feed
from p2poverlay.web.stream import (
    MAX_QUEUED_BYTES, MAX_STREAMS, MAX_TOTAL_QUEUED_BYTES, EventStream,
    Streams,
)
from helpers import waitFor
from test_web import FakeRequest, openStream, web  # noqa: F401


def test_queues_are_bounded_in_bytes_per_client_and_in_total():
    feed = Feed(lambda: 0.0)
    streams = Streams()
    requests = [FakeRequest() for _ in range(MAX_STREAMS)]
    for request in requests:
        EventStream(request, feed, streams).pauseProducing()
    body = "x" * 60000
    highest = 0
    for n in range(300):
        feed.broadcastSent(f"id{n}", body, 0)
        highest = max(highest, streams.queuedBytes)
        assert all(stream.queuedBytes <= MAX_QUEUED_BYTES
                   for stream in streams)
    assert highest <= MAX_TOTAL_QUEUED_BYTES
    # Every slow client was cut off, and what it held is freed.
    assert not streams and streams.queuedBytes == 0
    assert streams.dropped == MAX_STREAMS
    assert all(request.aborted for request in requests)
    assert feed.subscribers == 0


def test_a_client_that_keeps_up_is_kept_while_slow_ones_go():
    feed = Feed(lambda: 0.0)
    streams = Streams()
    slow = [EventStream(FakeRequest(), feed, streams) for _ in range(12)]
    for stream in slow:
        stream.pauseProducing()
    fast = FakeRequest()
    EventStream(fast, feed, streams)
    for n in range(100):
        feed.broadcastSent(f"id{n}", "y" * 60000, 0)
    assert list(streams) == [fast.producer]
    assert len(fast.written) == 100 and not fast.finished


def test_a_new_stream_evicts_the_slowest_then_the_oldest():
    feed = Feed(lambda: 0.0)
    streams = Streams(maxStreams=3)
    requests = [FakeRequest() for _ in range(3)]
    first, second, third = [EventStream(r, feed, streams) for r in requests]
    second.pauseProducing()
    feed.broadcastSent("id", "z", 0)
    streams.makeRoom()
    assert list(streams) == [first, third] and requests[1].aborted
    EventStream(FakeRequest(), feed, streams)
    streams.makeRoom()
    assert list(streams)[0] is third and requests[0].finished


class SlowReader(Protocol):
    """Sends a GET for the live feed, then reads (almost) nothing."""

    def __init__(self, path: bytes) -> None:
        self.path = path
        self.lost: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        handle = self.transport.getHandle()
        handle.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.transport.write(b"GET " + self.path + b" HTTP/1.1\r\n"
                             b"Host: 127.0.0.1\r\n\r\n")
        self.transport.pauseProducing()

    def connectionLost(self, reason) -> None:
        self.lost.callback(None)


@pytest_twisted.inlineCallbacks
def test_slow_clients_over_sockets_are_bounded_and_dropped(overlay, web):  # noqa: F811
    a = yield overlay.start()
    service = web.start(a, token="sesame")
    streams = service.events.streams
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1",
                                  service.port.getHost().port)
    readers: List[SlowReader] = []
    for _ in range(12):
        reader = SlowReader(b"/api/events?token=sesame")
        readers.append(reader)
        yield connectProtocol(endpoint, reader)
    yield waitFor(lambda: len(streams) == 12, what="12 streams")
    for stream in streams:
        # Keep the kernel from buffering megabytes for each slow client.
        stream.request.transport.getHandle().setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    body = "b" * 60000
    highest = 0
    for n in range(300):
        service.feed.broadcastSent(f"id{n}", body, 0)
        highest = max(highest, streams.queuedBytes)
        if not streams:
            break
    assert highest <= MAX_TOTAL_QUEUED_BYTES
    assert not streams and streams.queuedBytes == 0
    assert streams.dropped == 12
    # Their connections were cut: once they read again, they see it.
    for reader in readers:
        reader.transport.resumeProducing()
    yield waitFor(lambda: all(reader.lost.called for reader in readers),
                  what="the slow clients cut off")


@pytest_twisted.inlineCallbacks
def test_the_owner_gets_a_stream_when_all_are_taken(overlay, web):  # noqa: F811
    a = yield overlay.start()
    service = web.start(a, token="sesame")
    streams = service.events.streams
    idle = []
    for _ in range(MAX_STREAMS):
        idle.append((yield openStream(service, "?token=sesame")))
    yield waitFor(lambda: len(streams) == MAX_STREAMS, what="every stream")
    oldest = list(streams)[0]
    owner = yield openStream(service, "", Authorization="Bearer sesame")
    assert len(streams) == MAX_STREAMS and oldest not in list(streams)
    service.feed.broadcastSent("id", "for the owner", 0)
    yield waitFor(lambda: owner.events(), what="the owner's event")
    assert owner.events()[0][1]["body"] == "for the owner"
    for reader in idle + [owner]:
        reader.close()
