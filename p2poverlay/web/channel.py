"""
HTTP that refuses a request body before reading it.

L{twisted.web.http} stores a request's whole body (in memory, or in a
temporary file past 100 kB) before any resource sees the request.  A
L{GuardedSite} decides as soon as a request's headers are in: a body
declared larger than its limit, or a request with a body that its
guard refuses (no token, a wrong one, a foreign Host), is answered at
once and its body is never stored.  A chunked body is counted as it
arrives and refused once it passes the limit.

After such an answer the connection is half-closed: what the client
still sends is read and dropped for at most L{LINGER} seconds, so that
it reads the answer rather than a reset, and then the connection is
cut.
"""

from __future__ import annotations

import json
from io import BytesIO
from typing import Any, Callable, Dict, List, Optional, cast
from urllib.parse import parse_qs, urlsplit

from twisted.internet.interfaces import ITCPTransport
from twisted.logger import Logger
from twisted.web.http import RESPONSES, HTTPChannel
from twisted.web.http_headers import Headers
from twisted.web.server import Request, Site

from p2poverlay.web.jsonapi import JSON_HEADERS, JSONError

# Seconds a refused client has to read its answer before it is cut off.
LINGER = 5.0

Admission = Callable[[Headers, Dict[bytes, List[bytes]]], Optional[JSONError]]


def queryArguments(uri: bytes) -> Dict[bytes, List[bytes]]:
    """The query arguments of a request URI, as in L{Request.args}."""
    return parse_qs(urlsplit(uri).query, keep_blank_values=True)


def refusalBytes(refusal: JSONError) -> bytes:
    """A whole HTTP/1.1 answer for C{refusal}, which closes the connection."""
    body = json.dumps({"error": refusal.message}).encode("ascii") + b"\n"
    reason = RESPONSES.get(refusal.status, b"Refused")
    headers = dict(JSON_HEADERS)
    headers.update(refusal.headers)
    headers[b"content-length"] = str(len(body)).encode("ascii")
    headers[b"connection"] = b"close"
    lines = [b"HTTP/1.1 %d %s" % (refusal.status, reason)]
    lines.extend(name + b": " + value for name, value in headers.items())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class BoundedRequest(Request):
    """
    A request that keeps its body in memory, counts it, and stops storing
    it past the limit.
    """

    received = 0

    def gotLength(self, length: Optional[int]) -> None:
        # The site refused any body declared over its limit, and cuts a
        # chunked one there: memory will do.
        self.content = BytesIO()  # type: ignore[assignment]

    def handleContentChunk(self, data: bytes) -> None:
        channel = cast(Optional[GuardedChannel], self.channel)
        if channel is None or channel.refused:
            return
        self.received += len(data)
        limit = channel.site.maxBodySize
        if self.received > limit:
            channel.refuse(JSONError(
                413, f"request body larger than {limit} bytes"))
            return
        Request.handleContentChunk(self, data)


class GuardedChannel(HTTPChannel):
    """
    An HTTP channel that lets its L{GuardedSite} refuse a request once
    its headers are in, before its body is read.

    @ivar refused: whether this connection answered a refusal; it then
        takes no more requests.
    """

    log = Logger()
    refused = False
    site: "GuardedSite"

    def allHeadersReceived(self) -> None:
        if self.length != 0:
            refusal = self.site.admit(self.requests[-1].requestHeaders,
                                      self._path, self.length)
            if refusal is not None:
                self.refuse(refusal)
                return
        HTTPChannel.allHeadersReceived(self)

    def refuse(self, refusal: JSONError) -> None:
        """
        Answer C{refusal} now, drop the rest of the request and close.

        @param refusal: the status and message to answer with.
        """
        if self.refused:
            return
        self.refused = True
        self.log.info("web request refused before its body: {status} "
                      "{message}", status=refusal.status,
                      message=refusal.message)
        self.setTimeout(LINGER)
        transport: Any = self.transport
        transport.write(refusalBytes(refusal))
        if ITCPTransport.providedBy(transport):
            transport.loseWriteConnection()
        else:
            transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if not self.refused:
            HTTPChannel.dataReceived(self, data)

    def rawDataReceived(self, data: bytes) -> None:
        if not self.refused:
            HTTPChannel.rawDataReceived(self, data)

    def allContentReceived(self) -> None:
        if not self.refused:
            HTTPChannel.allContentReceived(self)

    def timeoutConnection(self) -> None:
        if self.refused:
            cast(Any, self.transport).abortConnection()
        else:
            HTTPChannel.timeoutConnection(self)


class GuardedSite(Site):
    """
    A L{Site} whose requests are admitted, or refused, once their headers
    are in.

    @ivar maxBodySize: the largest request body accepted, in bytes.
    @ivar admission: called with a request's headers and query arguments
        if it has a body; returns a L{JSONError} to refuse it, or None.
    """

    protocol = GuardedChannel  # type: ignore[assignment]
    requestFactory = BoundedRequest

    def __init__(self, resource, maxBodySize: int,
                 admission: Optional[Admission] = None, **kwargs) -> None:
        super().__init__(resource, **kwargs)
        self.maxBodySize = maxBodySize
        self.admission = admission

    def admit(self, headers: Headers, uri: bytes,
              length: Optional[int]) -> Optional[JSONError]:
        """
        Why a request with a body should be refused before it is read, or
        None.

        @param headers: the request's headers.
        @param uri: its request URI.
        @param length: its declared Content-Length, or None if chunked.
        """
        if length is not None and length > self.maxBodySize:
            return JSONError(
                413, f"request body larger than {self.maxBodySize} bytes")
        if self.admission is not None:
            return self.admission(headers, queryArguments(uri))
        return None
