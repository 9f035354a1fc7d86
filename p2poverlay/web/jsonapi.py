"""
JSON over HTTP: answers, errors and request bodies.

Every answer of the API is JSON; an error is ``{"error": "one line"}`` with
a 4xx or 5xx status.  A request body must be a JSON object sent with
``Content-Type: application/json``, which a cross-site HTML form cannot
send.  A body may be at most L{bodyLimit} bytes.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Request


# Room in a request body for the JSON around its text: the braces, the
# field names and the peer's id.
JSON_OVERHEAD = 1024

# Headers of every JSON answer: never cached, never sniffed as anything
# but JSON.
JSON_HEADERS = {
    b"content-type": b"application/json",
    b"cache-control": b"no-store",
    b"x-content-type-options": b"nosniff",
}


def bodyLimit(maxLineLength: int) -> int:
    """
    The largest request body accepted, in bytes: a node's longest line
    plus L{JSON_OVERHEAD}.
    """
    return maxLineLength + JSON_OVERHEAD


class BadRequest(Exception):
    """A request the API refuses; C{status} and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def jsonResponse(request: Request, value: Any, status: int = 200) -> bytes:
    request.setResponseCode(status)
    for name, headerValue in JSON_HEADERS.items():
        request.setHeader(name, headerValue)
    return json.dumps(value).encode("ascii") + b"\n"


def errorResponse(request: Request, status: int, message: str) -> bytes:
    return jsonResponse(request, {"error": message}, status)


def readJSONObject(request: Request, maxSize: int) -> Dict[str, Any]:
    """
    The request's body, a JSON object.

    @raise BadRequest: 415 without a JSON content type, 413 for a body
        over C{maxSize} bytes, 400 for anything that is not a JSON object.
    """
    contentType = (request.getHeader(b"content-type") or b"").split(b";")[0]
    if contentType.strip().lower() != b"application/json":
        raise BadRequest(415, "send the body as Content-Type: application/json")
    data = request.content.read(maxSize + 1) if request.content else b""
    if len(data) > maxSize:
        raise BadRequest(413, f"request body larger than {maxSize} bytes")
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest(400, "request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise BadRequest(400, "request body must be a JSON object")
    return value


def requireText(value: Dict[str, Any], field: str) -> str:
    """A non-empty string field of a request object, or L{BadRequest}."""
    text = value.get(field)
    if field not in value:
        raise BadRequest(400, f"missing field {field!r}")
    if not isinstance(text, str):
        raise BadRequest(400, f"field {field!r} must be a string")
    if not text:
        raise BadRequest(400, f"field {field!r} is empty")
    return text


class JSONResource(Resource):
    """
    A resource whose errors are JSON: an unsupported method is a JSON 405,
    an unknown child a JSON 404, a L{BadRequest} raised by a C{render_*}
    method its status and message, and any other exception a logged 500.
    """

    log = Logger()

    def render(self, request: Request):
        method = request.method.decode("ascii", "replace")
        handler = getattr(self, f"render_{method}", None)
        if handler is None and method == "HEAD":
            handler = getattr(self, "render_GET", None)
        if handler is None:
            allowed = sorted(name[len("render_"):] for name in dir(self)
                             if name.startswith("render_") and name != "render_HEAD")
            request.setHeader(b"allow", ", ".join(allowed).encode("ascii"))
            return errorResponse(request, 405,
                                 f"method {method} not allowed here; "
                                 f"use {' or '.join(allowed)}")
        try:
            return handler(request)
        except BadRequest as e:
            return errorResponse(request, e.status, e.message)
        except Exception:
            self.log.failure("web API request {path} failed",
                             path=request.path)
            return errorResponse(request, 500, "internal error (see the log)")

    def getChild(self, path: bytes, request: Request) -> Resource:
        return NotFound()


class NotFound(Resource):
    isLeaf = True

    def render(self, request: Request) -> bytes:
        return errorResponse(
            request, 404,
            f"no such resource: {request.path.decode('ascii', 'replace')}")


class JSONError(Resource):
    """Answers every request with one JSON error."""

    isLeaf = True

    def __init__(self, status: int, message: str,
                 headers: Optional[Dict[bytes, bytes]] = None) -> None:
        super().__init__()
        self.status = status
        self.message = message
        self.headers = headers or {}

    def render(self, request: Request) -> bytes:
        for name, value in self.headers.items():
            request.setHeader(name, value)
        return errorResponse(request, self.status, self.message)
