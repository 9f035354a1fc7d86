"""
The JSON API of a node: what it is, its peers, recent messages, sending,
broadcasting and metrics.  See docs/web.rst for each resource.
"""

from __future__ import annotations

from typing import Dict, List

from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from p2poverlay.records import CONNECTED
from p2poverlay.errors import OverlayError, UnknownPeer
from p2poverlay.message import PROTOCOL_VERSION
from p2poverlay.metrics import prometheusText
from p2poverlay.addresses import formatAddress
from p2poverlay.records import PeerInfo
from p2poverlay.web.feed import Feed, peerJSON
from p2poverlay.web.jsonapi import (
    JSONResource, errorResponse, jsonResponse, readJSONObject, requireText,
)


def nodeJSON(node) -> Dict[str, object]:
    host = node.port.getHost() if node.port is not None else None
    return {
        "id": node.nodeId,
        "name": node.name,
        "address": formatAddress(host.host, host.port) if host else None,
        "port": node.listenPort,
        "uptime": node.metrics.uptime,
        "protocolVersion": PROTOCOL_VERSION,
        "peers": len(node.peers),
    }


def peersJSON(node) -> List[Dict[str, object]]:
    """
    Every node this node knows: the address book, with the live
    connection's details for those connected.
    """
    connected = {info.node_id: info for info in node.peers.snapshot()}
    peers = []
    for entry in node.addressBook.all():
        info = connected.pop(entry.node_id, None)
        peers.append({
            "id": entry.node_id,
            "name": info.name if info else entry.name,
            "host": entry.host,
            "port": entry.port,
            "address": formatAddress(entry.host, entry.port),
            "state": CONNECTED if info else entry.state,
            "since": info.since if info else entry.since,
            "lastSeen": entry.last_seen or None,
            "nextAttempt": entry.next_attempt,
            "direction": info.direction if info else None,
            "role": info.role if info else None,
        })
    for info in connected.values():
        # Connected, but not (or no longer) in the bounded address book.
        peers.append(dict(peerJSON(info), state=CONNECTED, lastSeen=None,
                          nextAttempt=None))
    return peers


class NodeResource(JSONResource):
    """``GET /api/node``"""

    isLeaf = True

    def __init__(self, node) -> None:
        super().__init__()
        self.node = node

    def render_GET(self, request: Request) -> bytes:
        return jsonResponse(request, nodeJSON(self.node))


class PeersResource(JSONResource):
    """``GET /api/peers``"""

    isLeaf = True

    def __init__(self, node) -> None:
        super().__init__()
        self.node = node

    def render_GET(self, request: Request) -> bytes:
        return jsonResponse(request, {"peers": peersJSON(self.node)})


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
        return jsonResponse(request, self.node.metrics.snapshot())


class BroadcastResource(JSONResource):
    """``POST /api/broadcast`` with ``{"body": ...}``."""

    isLeaf = True

    def __init__(self, node, feed: Feed) -> None:
        super().__init__()
        self.node = node
        self.feed = feed

    def render_POST(self, request: Request) -> bytes:
        body = requireText(
            readJSONObject(request, self.node.config.maxLineLength), "body")
        messageId, neighbours = self.node.broadcast(body)
        self.feed.broadcastSent(messageId, body, neighbours)
        return jsonResponse(request, {"id": messageId,
                                      "neighbours": neighbours})


class SendResource(JSONResource):
    """
    ``POST /api/send`` with ``{"peer": ..., "body": ...}``: answers once the
    peer confirms delivery, or with the reason it failed.
    """

    isLeaf = True

    def __init__(self, node, feed: Feed) -> None:
        super().__init__()
        self.node = node
        self.feed = feed

    def render_POST(self, request: Request):
        value = readJSONObject(request, self.node.config.maxLineLength)
        peer = requireText(value, "peer")
        body = requireText(value, "body")
        gone: List[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def delivered(info: PeerInfo) -> None:
            self.feed.directSent(info, body)
            answer(jsonResponse(request, {"delivered": True,
                                          "peer": peerJSON(info)}))

        def failed(reason: Failure) -> None:
            if reason.check(UnknownPeer):
                status = 404
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
                "address": nodeJSON(node)["address"] or ""}
        text = prometheusText(node.metrics.snapshot(), info)
        request.setHeader(b"content-type",
                          b"text/plain; version=0.0.4; charset=utf-8")
        return text.encode("utf-8")


class APIResource(JSONResource):
    """``/api/``: the JSON API."""

    def __init__(self, node, feed: Feed, events: Resource) -> None:
        super().__init__()
        self.putChild(b"node", NodeResource(node))
        self.putChild(b"peers", PeersResource(node))
        self.putChild(b"messages", MessagesResource(feed))
        self.putChild(b"metrics", MetricsJSONResource(node))
        self.putChild(b"send", SendResource(node, feed))
        self.putChild(b"broadcast", BroadcastResource(node, feed))
        self.putChild(b"events", events)

    def getChild(self, path: bytes, request: Request) -> Resource:
        return self if path == b"" else super().getChild(path, request)

    def render_GET(self, request: Request) -> bytes:
        return jsonResponse(request, {"resources": sorted(
            f"/api/{name.decode()}" for name in self.children)})
