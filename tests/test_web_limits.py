"""
The web UI against hostile clients: request bodies refused before they
are read.
"""

from __future__ import annotations

import json
from typing import List, Optional

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol

from p2poverlay.web.channel import BoundedRequest
from p2poverlay.web.jsonapi import bodyLimit
from test_web import postJSON, web  # noqa: F401

GIB = 1 << 30


class RawClient(Protocol):
    """Sends C{data} and collects all it gets until the server closes."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.received = b""
        self.done: Deferred[bytes] = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.data)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason) -> None:
        self.done.callback(self.received)


def rawRequest(service, data: bytes) -> "Deferred[bytes]":
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1",
                                  service.port.getHost().port)
    client = RawClient(data)
    return connectProtocol(endpoint, client).addCallback(
        lambda _: client.done)


def parse(answer: bytes):
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b": ")
        headers[name.lower()] = value
    return status, headers, json.loads(body)


def recordRequests(service) -> List[BoundedRequest]:
    """Every request the service's site makes from now on."""
    made: List[BoundedRequest] = []
    factory = service.site.requestFactory

    def record(*args, **kwargs):
        request = factory(*args, **kwargs)
        made.append(request)
        return request

    service.site.requestFactory = record
    return made


def post(path: str, length: Optional[int], body: bytes,
         host: bytes = b"127.0.0.1", extra: bytes = b"") -> bytes:
    framing = (b"Transfer-Encoding: chunked\r\n" if length is None
               else b"Content-Length: %d\r\n" % (length,))
    return (b"POST " + path.encode("ascii") + b" HTTP/1.1\r\nHost: " + host
            + b"\r\nContent-Type: application/json\r\n" + framing + extra
            + b"\r\n" + body)


@pytest_twisted.inlineCallbacks
def test_a_body_declared_too_large_is_refused_unread(overlay, web):  # noqa: F811
    a = yield overlay.start()
    service = web.start(a)
    made = recordRequests(service)
    answer = yield rawRequest(
        service, post("/api/broadcast", GIB, b"x" * 4096))
    status, headers, value = parse(answer)
    limit = bodyLimit(a.config.maxLineLength)
    assert status == 413
    assert value == {"error": f"request body larger than {limit} bytes"}
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"connection"] == b"close"
    # The body was never stored: no content buffer, no temporary file.
    assert len(made) == 1 and made[0].content is None
    assert made[0].received == 0


@pytest_twisted.inlineCallbacks
def test_unauthorised_bodies_are_refused_unread(overlay, web):  # noqa: F811
    a = yield overlay.start()
    service = web.start(a, token="sesame")
    made = recordRequests(service)
    declared = bodyLimit(a.config.maxLineLength)
    answers = []
    for extra in (b"", b"Authorization: Bearer wrong\r\n"):
        answers.append((yield rawRequest(
            service, post("/api/broadcast", declared, b"{" * 4096,
                          extra=extra))))
    answers.append((yield rawRequest(
        service, post("/api/broadcast?token=wrong", declared, b"{" * 4096))))
    answers.append((yield rawRequest(
        service, post("/api/broadcast", GIB, b"{" * 4096))))
    assert [parse(answer)[0] for answer in answers] == [401, 401, 401, 413]
    assert parse(answers[0])[1][b"www-authenticate"].startswith(b"Bearer")
    assert len(made) == 4
    assert all(request.content is None for request in made)


@pytest_twisted.inlineCallbacks
def test_foreign_host_bodies_are_refused_unread(overlay, web):  # noqa: F811
    a = yield overlay.start()
    service = web.start(a)
    made = recordRequests(service)
    answer = yield rawRequest(service, post(
        "/api/broadcast", 60000, b"{" * 4096, host=b"evil.example:80"))
    assert parse(answer)[0] == 403
    assert made[0].content is None


@pytest_twisted.inlineCallbacks
def test_a_chunked_body_is_cut_at_the_limit(overlay, web):  # noqa: F811
    a = yield overlay.start()
    service = web.start(a)
    made = recordRequests(service)
    limit = bodyLimit(a.config.maxLineLength)
    chunk = b"x" * 8192
    chunks = b"%x\r\n%s\r\n" % (len(chunk), chunk) * (4 * limit // len(chunk))
    answer = yield rawRequest(service, post("/api/broadcast", None, chunks))
    assert parse(answer)[0] == 413
    # Counting stopped at the first piece past the limit, which was not
    # stored.
    assert limit < made[0].received <= limit + len(chunk)
    content = made[0].content
    assert content is not None
    if not content.closed:
        assert len(content.getvalue()) <= limit


@pytest_twisted.inlineCallbacks
def test_bodies_within_the_limit_still_work(overlay, web):  # noqa: F811
    a = yield overlay.start()
    service = web.start(a, token="sesame")
    status, value = yield postJSON(service, "/api/broadcast", {"body": "hi"},
                                   Authorization="Bearer sesame")
    assert status == 200 and "message_id" in value
    chunked = (b'{"body": "chunked"}')
    answer = yield rawRequest(service, post(
        "/api/broadcast?token=sesame", None,
        b"%x\r\n%s\r\n0\r\n\r\n" % (len(chunked), chunked),
        extra=b"Connection: close\r\n"))
    assert parse(answer)[0] == 200
