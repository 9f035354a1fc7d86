"""
Who may use the API: a bearer token, and on loopback a loopback Host.

With a token, every request must carry it, as ``Authorization: Bearer
TOKEN`` or (for a page load or an EventSource, which cannot set headers)
as a ``?token=TOKEN`` query.  A server bound to loopback also refuses
requests whose Host header is not a loopback name: a web page elsewhere
that rebinds its own name to 127.0.0.1 (DNS rebinding) cannot reach the
API through the browser.
"""

from __future__ import annotations

import hmac
from typing import Dict, List, Optional

from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import Request

from p2poverlay.addresses import isLoopback
from p2poverlay.web.jsonapi import JSONError


def isLoopbackHost(host: str) -> bool:
    """A loopback address, C{localhost}, or a name under C{.localhost}."""
    return isLoopback(host) or host.endswith(".localhost")


def hostName(hostHeader: str) -> str:
    """The host name of a Host header, without port or IPv6 brackets."""
    if hostHeader.startswith("["):
        return hostHeader[1:].partition("]")[0]
    return hostHeader.rpartition(":")[0] if ":" in hostHeader else hostHeader


class Guard(Resource):
    """Lets a request through to C{wrapped} only if it may use it."""

    def __init__(self, wrapped: Resource, token: Optional[str],
                 loopbackOnly: bool) -> None:
        super().__init__()
        self.wrapped = wrapped
        self.token = token.encode("utf-8") if token else None
        self.loopbackOnly = loopbackOnly

    def refusal(self, request: Request) -> Optional[JSONError]:
        """A resource that says why C{request} is refused, or None."""
        return self.check(request.requestHeaders, request.args or {})

    def check(self, headers: Headers,
              args: Dict[bytes, List[bytes]]) -> Optional[JSONError]:
        """
        Why a request with these headers and query arguments is refused,
        or None if it may go on.

        @param headers: the request's headers.
        @param args: its query arguments, as in L{Request.args}.
        """
        def header(name: bytes) -> Optional[bytes]:
            values = headers.getRawHeaders(name)
            return values[-1] if values else None

        if self.loopbackOnly:
            host = (header(b"host") or b"").decode("latin-1")
            host = host.strip().lower()
            if not isLoopbackHost(hostName(host)):
                return JSONError(403, "this API answers only to a loopback "
                                      "Host (localhost, 127.0.0.1, [::1])")
        if self.token is None:
            return None
        given = b""
        authorization = header(b"authorization") or b""
        scheme, _, credentials = authorization.partition(b" ")
        if scheme.lower() == b"bearer":
            given = credentials.strip()
        elif args.get(b"token"):
            given = args[b"token"][0]
        if given and hmac.compare_digest(given, self.token):
            return None
        return JSONError(
            401, "a valid token is required (Authorization: Bearer TOKEN "
                 "or ?token=TOKEN)" if not given else "wrong token",
            {b"www-authenticate": b'Bearer realm="p2poverlay"'})

    def getChildWithDefault(self, path: bytes, request: Request) -> Resource:
        refusal = self.refusal(request)
        if refusal is not None:
            return refusal
        return self.wrapped.getChildWithDefault(path, request)

    def render(self, request: Request):
        refusal = self.refusal(request)
        if refusal is not None:
            return refusal.render(request)
        return self.wrapped.render(request)
