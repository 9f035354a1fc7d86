"""
The live feed as server-sent events (``text/event-stream``).

Each event is ``event: NAME`` and one ``data:`` line of JSON.  What a
client's connection cannot take yet is queued, within bounds: a client
whose queue passes L{MAX_QUEUED} events or L{MAX_QUEUED_BYTES} bytes is
disconnected, and so is the client with the longest queue whenever all
queues together pass L{MAX_TOTAL_QUEUED_BYTES}.  At most L{MAX_STREAMS}
streams are open: a new one closes the one with the longest queue, or
of those the oldest, so that the node's owner can always open the feed.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Deque, Dict, Iterator, cast

from twisted.internet.interfaces import IPushProducer, ITCPTransport
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from p2poverlay.web.feed import Event, Feed
from p2poverlay.web.jsonapi import JSONResource

# Events held for a client whose connection is not taking more.
MAX_QUEUED = 1000
# Bytes held for one such client.
MAX_QUEUED_BYTES = 1 << 20
# Bytes held for all clients together.
MAX_TOTAL_QUEUED_BYTES = 8 << 20
# Most streams open at once.
MAX_STREAMS = 32
# Seconds between comments that keep idle connections (and proxies) alive.
KEEPALIVE_INTERVAL = 15.0


def encodeEvent(name: str, event: Event) -> bytes:
    # json.dumps escapes newlines, so the data is always one line.
    return f"event: {name}\ndata: {json.dumps(event)}\n\n".encode("ascii")


class Streams:
    """
    The open streams, oldest first, and the bytes queued for them.

    @ivar queuedBytes: bytes queued for all streams together.
    @ivar dropped: streams closed for lagging or to make room.
    """

    log = Logger()

    def __init__(self, maxStreams: int = MAX_STREAMS,
                 maxQueuedBytes: int = MAX_QUEUED_BYTES,
                 maxTotalQueuedBytes: int = MAX_TOTAL_QUEUED_BYTES) -> None:
        self.maxStreams = maxStreams
        self.maxQueuedBytes = maxQueuedBytes
        self.maxTotalQueuedBytes = maxTotalQueuedBytes
        self.queuedBytes = 0
        self.dropped = 0
        self._open: Dict["EventStream", None] = {}

    def __len__(self) -> int:
        return len(self._open)

    def __bool__(self) -> bool:
        return bool(self._open)

    def __iter__(self) -> Iterator["EventStream"]:
        return iter(list(self._open))

    def add(self, stream: "EventStream") -> None:
        self._open[stream] = None

    def discard(self, stream: "EventStream") -> None:
        self._open.pop(stream, None)

    def slowest(self) -> "EventStream":
        """The stream with the longest queue; of equals, the oldest."""
        return max(self._open, key=lambda stream: stream.queuedBytes)

    def makeRoom(self) -> None:
        """Close streams until one more may open."""
        while self._open and len(self._open) >= self.maxStreams:
            self.drop(self.slowest(), "to make room for a new one")

    def queued(self, change: int) -> None:
        """
        Count C{change} more bytes queued (fewer, if negative); past the
        total bound, close the slowest streams.
        """
        self.queuedBytes += change
        while self._open and self.queuedBytes > self.maxTotalQueuedBytes:
            self.drop(self.slowest(), "all live streams lag too far")

    def drop(self, stream: "EventStream", why: str) -> None:
        """
        Close C{stream}, counting it as dropped; cut its connection if it
        is not taking data, so that what is buffered for it is freed.
        """
        self.dropped += 1
        self.log.info("live stream closed: {why}", why=why)
        stream.close(abort=stream.paused)


@implementer(IPushProducer)
class EventStream:
    """
    One client's stream: writes events to its request, honouring pauses,
    and queues what it cannot write yet within the bounds of C{streams}.

    @ivar queuedBytes: bytes queued for this client.
    """

    def __init__(self, request: Request, feed: Feed,
                 streams: Streams) -> None:
        self.request = request
        self.feed = feed
        self.streams = streams
        self.paused = False
        self.closed = False
        self.queuedBytes = 0
        self._queue: Deque[bytes] = deque()
        request.registerProducer(self, True)
        feed.subscribe(self.publish)
        streams.add(self)
        request.notifyFinish().addBoth(self._finished)

    def publish(self, name: str, event: Event) -> None:
        self._write(encodeEvent(name, event))

    def keepAlive(self) -> None:
        self._write(b": keep-alive\n\n")

    def _write(self, data: bytes) -> None:
        if self.closed:
            return
        if not self.paused:
            self.request.write(data)
        elif (len(self._queue) >= MAX_QUEUED or self.queuedBytes + len(data)
              > self.streams.maxQueuedBytes):
            self.streams.drop(self, "its client reads too slowly")
        else:
            self._queue.append(data)
            self.queuedBytes += len(data)
            self.streams.queued(len(data))

    def close(self, abort: bool = False) -> None:
        """
        End the stream (the client may reconnect).

        @param abort: cut the connection rather than end the response.
        """
        if not self.closed:
            self._detach()
            self.request.unregisterProducer()
            if abort:
                cast(ITCPTransport, self.request.transport).abortConnection()
            else:
                self.request.finish()

    def _detach(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._queue.clear()
        self.streams.discard(self)
        self.streams.queued(-self.queuedBytes)
        self.queuedBytes = 0
        self.feed.unsubscribe(self.publish)

    def _finished(self, _: object) -> None:
        self._detach()

    # IPushProducer

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        while self._queue and not self.paused and not self.closed:
            data = self._queue.popleft()
            self.queuedBytes -= len(data)
            self.streams.queued(-len(data))
            self.request.write(data)

    def stopProducing(self) -> None:
        self._detach()


class EventsResource(JSONResource):
    """``GET /api/events``: the live feed."""

    isLeaf = True

    def __init__(self, feed: Feed, clock) -> None:
        super().__init__()
        self.feed = feed
        self.streams = Streams()
        self._keepAlive = LoopingCall(self._keepAliveAll)
        self._keepAlive.clock = clock

    def start(self) -> None:
        self._keepAlive.start(KEEPALIVE_INTERVAL, now=False)

    def stop(self) -> None:
        if self._keepAlive.running:
            self._keepAlive.stop()
        for stream in list(self.streams):
            stream.close()

    def _keepAliveAll(self) -> None:
        for stream in list(self.streams):
            stream.keepAlive()

    def render_HEAD(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/event-stream")
        return b""

    def render_GET(self, request: Request):
        self.streams.makeRoom()
        request.setHeader(b"content-type", b"text/event-stream")
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"x-content-type-options", b"nosniff")
        # Ask the browser to retry soon after the stream is cut.
        request.write(b"retry: 2000\n: connected\n\n")
        EventStream(request, self.feed, self.streams)
        return NOT_DONE_YET
