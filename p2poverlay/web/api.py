"""
The JSON API of a node: what it is, its peers and every node it knows,
recent messages, sending, broadcasting and metrics.  Each record is shown
as L{p2poverlay.views} makes it.  See docs/web.rst for each resource.
"""

from __future__ import annotations

from typing import List

from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from p2poverlay.errors import (
    MessageTooLarge, OverlayError, SendQueueFull, UnknownPeer,
)
from p2poverlay.metrics import prometheusText
from p2poverlay.records import PeerInfo
from p2poverlay.views import (
    broadcastView, knownView, metricsView, nodeView, peersView, peerView,
)
from p2poverlay.web.dhtapi import GetResource, LookupResource, PutResource
from p2poverlay.web.feed import Feed
from p2poverlay.web.jsonapi import (
    BadRequest, JSONResource, bodyLimit, errorResponse, jsonResponse, readJSONObject,
    requireText,
)

# Seconds a client is asked to wait when the send queue is full.
RETRY_AFTER = b"1"


class NodeResource(JSONResource):
    """``GET /api/node``"""

    isLeaf = True

    def __init__(self, node) -> None:
        super().__init__()
        self.node = node

    def render_GET(self, request: Request) -> bytes:
        return jsonResponse(request, nodeView(self.node))


class PeersResource(JSONResource):
    """
    ``GET /api/peers``: what the console's C{peers} lists, the connected
    peers and those lost.
    """

    isLeaf = True

    def __init__(self, node) -> None:
        super().__init__()
        self.node = node

    def render_GET(self, request: Request) -> bytes:
        return jsonResponse(request, {"peers": peersView(self.node)})


class KnownResource(JSONResource):
    """
    ``GET /api/known``: what the console's C{known} lists, every node
    known.
    """

    isLeaf = True

    def __init__(self, node) -> None:
        super().__init__()
        self.node = node

    def render_GET(self, request: Request) -> bytes:
        return jsonResponse(request, {"known": knownView(self.node)})


class MessagesResource(JSONResource):
    """``GET /api/messages``: the feed's ring buffer, oldest first."""

    isLeaf = True

    def __init__(self, feed: Feed) -> None:
        super().__init__()
        self.feed = feed

    def render_GET(self, request: Request) -> bytes:
        return jsonResponse(request, {"messages": self.feed.messages()})


class MetricsJSONResource(JSONResource):
    """``GET /api/metrics``"""

    isLeaf = True

    def __init__(self, node) -> None:
        super().__init__()
        self.node = node

    def render_GET(self, request: Request) -> bytes:
        return jsonResponse(request, metricsView(self.node))


class BroadcastResource(JSONResource):
    """``POST /api/broadcast`` with ``{"body": ...}``."""

    isLeaf = True

    def __init__(self, node, feed: Feed) -> None:
        super().__init__()
        self.node = node
        self.feed = feed

    def render_POST(self, request: Request) -> bytes:
        limit = bodyLimit(self.node.config.maxLineLength)
        body = requireText(readJSONObject(request, limit), "body")
        try:
            messageId, neighbours = self.node.broadcast(body)
        except MessageTooLarge as e:
            raise BadRequest(413, str(e)) from None
        self.feed.broadcastSent(messageId, body, neighbours)
        return jsonResponse(request, broadcastView(messageId, neighbours))


class SendResource(JSONResource):
    """
    ``POST /api/send`` with ``{"peer": ..., "body": ...}``: answers once the
    peer confirms delivery, or with the reason it failed; 503 with
    C{Retry-After} while the node's send queue is full.
    """

    isLeaf = True

    def __init__(self, node, feed: Feed) -> None:
        super().__init__()
        self.node = node
        self.feed = feed

    def render_POST(self, request: Request):
        value = readJSONObject(request,
                               bodyLimit(self.node.config.maxLineLength))
        peer = requireText(value, "peer")
        body = requireText(value, "body")
        gone: List[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def delivered(info: PeerInfo) -> None:
            self.feed.directSent(info, body)
            answer(jsonResponse(request, {"delivered": True,
                                          "peer": peerView(info)}))

        def failed(reason: Failure) -> None:
            if reason.check(SendQueueFull):
                # The node is busy, not broken: the client may try again.
                request.setHeader(b"retry-after", RETRY_AFTER)
                status = 503
            elif reason.check(UnknownPeer):
                status = 404
            elif reason.check(MessageTooLarge):
                status = 413
            elif reason.check(OverlayError):
                status = 502
            else:
                JSONResource.log.failure("sending failed", reason)
                answer(errorResponse(request, 500,
                                     "internal error (see the log)"))
                return
            answer(errorResponse(request, status, reason.getErrorMessage()))

        def answer(data: bytes) -> None:
            if not gone:
                request.write(data)
                request.finish()

        self.node.send(peer, body).addCallbacks(delivered, failed)
        return NOT_DONE_YET


class PrometheusResource(JSONResource):
    """``GET /metrics``: the Prometheus text exposition format."""

    isLeaf = True

    def __init__(self, node) -> None:
        super().__init__()
        self.node = node

    def render_GET(self, request: Request) -> bytes:
        node = self.node
        info = {"node_id": node.nodeId, "name": node.name,
                "address": nodeView(node)["address"] or ""}
        text = prometheusText(metricsView(node), info)
        request.setHeader(b"content-type",
                          b"text/plain; version=0.0.4; charset=utf-8")
        return text.encode("utf-8")


class APIResource(JSONResource):
    """``/api/``: the JSON API."""

    def __init__(self, node, feed: Feed, events: Resource) -> None:
        super().__init__()
        self.putChild(b"node", NodeResource(node))
        self.putChild(b"peers", PeersResource(node))
        self.putChild(b"known", KnownResource(node))
        self.putChild(b"messages", MessagesResource(feed))
        self.putChild(b"metrics", MetricsJSONResource(node))
        self.putChild(b"send", SendResource(node, feed))
        self.putChild(b"broadcast", BroadcastResource(node, feed))
        self.putChild(b"events", events)
        self.putChild(b"lookup", LookupResource(node))
        self.putChild(b"put", PutResource(node))
        self.putChild(b"get", GetResource(node))

    def getChild(self, path: bytes, request: Request) -> Resource:
        return self if path == b"" else super().getChild(path, request)

    def render_GET(self, request: Request) -> bytes:
        return jsonResponse(request, {"resources": sorted(
            f"/api/{name.decode()}" for name in self.children)})
