"""
The live feed as server-sent events (``text/event-stream``).

Each event is ``event: NAME`` and one ``data:`` line of JSON.  A client
that reads too slowly is disconnected once it lags by L{MAX_QUEUED}
events, so that no stream can make the node's memory grow without bound.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Deque, Set

from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import LoopingCall
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from p2poverlay.web.feed import Event, Feed
from p2poverlay.web.jsonapi import JSONResource, errorResponse

# Events held for a client whose connection is not taking more.
MAX_QUEUED = 1000
# Most streams open at once.
MAX_STREAMS = 32
# Seconds between comments that keep idle connections (and proxies) alive.
KEEPALIVE_INTERVAL = 15.0


def encodeEvent(name: str, event: Event) -> bytes:
    # json.dumps escapes newlines, so the data is always one line.
    return f"event: {name}\ndata: {json.dumps(event)}\n\n".encode("ascii")


@implementer(IPushProducer)
class EventStream:
    """One client's stream: writes events to its request, honouring pauses."""

    def __init__(self, request: Request, feed: Feed,
                 streams: "Set[EventStream]") -> None:
        self.request = request
        self.feed = feed
        self.streams = streams
        self.paused = False
        self.closed = False
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
        elif len(self._queue) < MAX_QUEUED:
            self._queue.append(data)
        else:
            self.close()

    def close(self) -> None:
        """End the stream (the client may reconnect)."""
        if not self.closed:
            self._detach()
            self.request.unregisterProducer()
            self.request.finish()

    def _detach(self) -> None:
        self.closed = True
        self._queue.clear()
        self.feed.unsubscribe(self.publish)
        self.streams.discard(self)

    def _finished(self, _: object) -> None:
        self._detach()

    # IPushProducer

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        while self._queue and not self.paused and not self.closed:
            self.request.write(self._queue.popleft())

    def stopProducing(self) -> None:
        self._detach()


class EventsResource(JSONResource):
    """``GET /api/events``: the live feed."""

    isLeaf = True

    def __init__(self, feed: Feed, clock) -> None:
        super().__init__()
        self.feed = feed
        self.streams: Set[EventStream] = set()
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
        if len(self.streams) >= MAX_STREAMS:
            return errorResponse(request, 503,
                                 f"too many live streams (at most {MAX_STREAMS})")
        request.setHeader(b"content-type", b"text/event-stream")
        request.setHeader(b"cache-control", b"no-cache")
        # Ask the browser to retry soon after the stream is cut.
        request.write(b"retry: 2000\n: connected\n\n")
        EventStream(request, self.feed, self.streams)
        return NOT_DONE_YET
