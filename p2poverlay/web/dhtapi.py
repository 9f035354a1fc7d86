"""
The JSON API of routing by id: ``GET /api/lookup?id=NODE_ID``,
``POST /api/put`` with ``{"key": ..., "value": ...}`` and
``GET /api/get?key=KEY``; each answers once the DHT has, as
L{p2poverlay.dht.views} shows it (see docs/web.rst).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET, Request

from p2poverlay.dht.views import getView, lookupView, putView
from p2poverlay.errors import OverlayError
from p2poverlay.web.jsonapi import (
    BadRequest, JSONResource, bodyLimit, errorResponse, jsonResponse,
    readJSONObject, requireText,
)
from p2poverlay.wirevalues import isNodeId


def queryText(request: Request, name: str) -> str:
    """The one value of query argument C{name}, as text."""
    args: Dict[bytes, List[bytes]] = request.args or {}
    values = args.get(name.encode(), [])
    if len(values) != 1:
        raise BadRequest(400, f"give exactly one {name}=... argument")
    try:
        return values[0].decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(400, f"{name} is not UTF-8") from None


def answerLater(request: Request, d: Deferred,
                view: Callable[[Any], Any]) -> object:
    """Answer C{request} with C{view} of C{d}'s result, or its failure."""
    gone: List[bool] = []
    request.notifyFinish().addErrback(lambda _: gone.append(True))

    def answer(data: bytes) -> None:
        if not gone:
            request.write(data)
            request.finish()

    def failed(reason: Failure) -> None:
        if reason.check(OverlayError):
            answer(errorResponse(request, 502, reason.getErrorMessage()))
        else:
            JSONResource.log.failure("DHT request failed", reason)
            answer(errorResponse(request, 500, "internal error (see the log)"))

    d.addCallbacks(lambda result: answer(jsonResponse(request, view(result))),
                   failed)
    return NOT_DONE_YET


class LookupResource(JSONResource):
    """``GET /api/lookup?id=NODE_ID``: the lookup's path and result."""

    isLeaf = True

    def __init__(self, node) -> None:
        super().__init__()
        self.node = node

    def render_GET(self, request: Request):
        nodeId = queryText(request, "id")
        if not isNodeId(nodeId):
            raise BadRequest(400, "id must be a full node id (64 or 32 "
                                  "lowercase hex digits)")
        return answerLater(request, self.node.dht.findNode(nodeId),
                           lookupView)


class PutResource(JSONResource):
    """``POST /api/put`` with ``{"key": ..., "value": ...}``."""

    isLeaf = True

    def __init__(self, node) -> None:
        super().__init__()
        self.node = node

    def render_POST(self, request: Request):
        value = readJSONObject(request,
                               bodyLimit(self.node.config.maxLineLength))
        d = self.node.values.put(requireText(value, "key"),
                                 requireText(value, "value"))
        return answerLater(request, d, putView)


class GetResource(JSONResource):
    """``GET /api/get?key=KEY``: each writer's newest value under the key."""

    isLeaf = True

    def __init__(self, node) -> None:
        super().__init__()
        self.node = node

    def render_GET(self, request: Request):
        key = queryText(request, "key")
        if not key:
            raise BadRequest(400, "key is empty")
        return answerLater(request, self.node.values.get(key), getView)
