"""
The web UI's JSON API, live feed, /metrics and static page, over real HTTP
on loopback against nodes in the test reactor.
"""

from __future__ import annotations

import json
import socket
from io import BytesIO
from typing import Dict, List, Optional, Tuple

import pytest
import pytest_twisted
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.error import ConnectionAborted
from twisted.internet.protocol import Protocol
from twisted.logger import globalLogPublisher
from twisted.web.client import Agent, FileBodyProducer, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers

from p2poverlay.errors import ListenError
from p2poverlay.message import PROTOCOL_VERSION
from p2poverlay.views import knownView, peersView
from p2poverlay.web import WebService
from p2poverlay.web.feed import Feed
from p2poverlay.web.stream import MAX_QUEUED, EventStream, Streams
from helpers import address, waitFor

LOOPBACK = "tcp:0:interface=127.0.0.1"


class Web:
    """Web services for test nodes; all stopped after the test."""

    def __init__(self) -> None:
        self.services: List[WebService] = []

    def start(self, node, token: Optional[str] = None,
              endpoint: str = LOOPBACK) -> WebService:
        service = WebService(node, endpoint, token=token)
        self.services.append(service)
        service.privilegedStartService()
        service.startService()
        return service

    def stop(self):
        return DeferredList([s.stopService() for s in self.services
                             if s.running], consumeErrors=True)


@pytest.fixture
def web():
    services = Web()
    yield services
    pytest_twisted.blockon(services.stop())


def baseURL(service: WebService) -> str:
    return f"http://127.0.0.1:{service.port.getHost().port}"


class BodyReader(Protocol):
    """Collects a response body; C{done} fires with it."""

    def __init__(self) -> None:
        self.data = b""
        self.done = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason) -> None:
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(self.data)
        else:
            self.done.errback(reason)


@inlineCallbacks
def http(method: str, url: str, body: Optional[bytes] = None,
         headers: Optional[Dict[str, str]] = None):
    """One request; the result is (status, headers, body bytes)."""
    producer = FileBodyProducer(BytesIO(body)) if body is not None else None
    response = yield Agent(reactor).request(
        method.encode("ascii"), url.encode("ascii"),
        Headers({k: [v] for k, v in (headers or {}).items()}), producer)
    reader = BodyReader()
    response.deliverBody(reader)
    data = yield reader.done
    return response.code, response.headers, data


@inlineCallbacks
def getJSON(service: WebService, path: str, **headers: str):
    status, responseHeaders, data = yield http(
        "GET", baseURL(service) + path, headers=headers)
    assert responseHeaders.getRawHeaders("content-type") == ["application/json"]
    return status, json.loads(data)


@inlineCallbacks
def postJSON(service: WebService, path: str, value,
             contentType: str = "application/json", **headers: str):
    body = value if isinstance(value, bytes) else json.dumps(value).encode()
    headers = dict(headers, **{"Content-Type": contentType})
    status, responseHeaders, data = yield http(
        "POST", baseURL(service) + path, body, headers)
    assert responseHeaders.getRawHeaders("content-type") == ["application/json"]
    return status, json.loads(data)


# -- node, peers, messages ------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_node_info(overlay, web):
    a = yield overlay.start(name="alice")
    service = web.start(a)
    status, info = yield getJSON(service, "/api/node")
    assert status == 200
    assert info["node_id"] == a.nodeId and info["name"] == "alice"
    assert info["address"] == address(a) and info["port"] == a.listenPort
    assert info["uptime"] >= 0 and info["peers"] == 0
    assert info["protocol_version"] == PROTOCOL_VERSION


@pytest_twisted.inlineCallbacks
def test_peers_with_their_states(overlay, web):
    # A dials nobody itself: the node only heard of stays "known" (an
    # IP address is dialed at once, and port 1 refuses at once).
    a = yield overlay.start(name="a", autoConnect=False)
    b = yield overlay.start(join=a, name="b")
    c = yield overlay.start(join=a, name="c")
    yield waitFor(lambda: len(a.peers) == 2, what="a's two peers")
    a.addressBook.learn("f" * 32, "127.0.0.1", 1, "heard-of")
    service = web.start(a)
    yield c.stopService()
    yield waitFor(lambda: len(a.peers) == 1, what="c gone")
    status, body = yield getJSON(service, "/api/known")
    assert status == 200
    known = {p["node_id"]: p for p in body["known"]}
    assert known[b.nodeId]["state"] == "connected"
    assert known[b.nodeId]["address"] == address(b)
    assert known[b.nodeId]["name"] == "b"
    assert known[b.nodeId]["direction"] == "inbound"
    assert known[c.nodeId]["state"] == "left"
    assert known[c.nodeId]["direction"] is None
    assert known["f" * 32]["state"] == "known"
    assert known["f" * 32]["name"] == "heard-of"
    assert body == {"known": knownView(a)}
    # The peers: what the console's 'peers' lists, not those only heard of.
    status, body = yield getJSON(service, "/api/peers")
    assert status == 200
    assert [(p["node_id"], p["state"]) for p in body["peers"]] == [
        (b.nodeId, "connected"), (c.nodeId, "left")]
    assert body == {"peers": peersView(a)}


@pytest_twisted.inlineCallbacks
def test_messages_received_and_sent_are_listed(overlay, web):
    a = yield overlay.start(name="a")
    b = yield overlay.start(join=a, name="b")
    service = web.start(a)
    body = '<img src=x onerror="alert(1)"> & </script>'
    yield b.send(address(a), body)
    status, result = yield postJSON(service, "/api/broadcast", {"body": "all"})
    assert status == 200 and result["neighbours"] == 1
    status, listing = yield getJSON(service, "/api/messages")
    assert status == 200
    received, sent = listing["messages"]
    assert received["direction"] == "in" and received["kind"] == "direct"
    assert received["body"] == body
    assert received["sender_id"] == b.nodeId
    assert received["sender"]["address"] == address(b)
    assert sent["direction"] == "out" and sent["kind"] == "broadcast"
    assert sent["message_id"] == result["message_id"]
    assert sent["body"] == "all"
    assert received["seq"] < sent["seq"]
    assert received["via"]["node_id"] == b.nodeId
    assert "id" not in received and "id" not in sent


def test_feed_is_a_bounded_ring():
    feed = Feed(lambda: 0.0, size=3)
    for n in range(5):
        feed.broadcastSent(f"id{n}", f"body {n}", 0)
    assert [m["body"] for m in feed.messages()] == ["body 2", "body 3", "body 4"]
    assert [m["seq"] for m in feed.messages()] == [3, 4, 5]


# -- sending ------------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_send_answers_once_delivered(overlay, web):
    a = yield overlay.start(name="a")
    b = yield overlay.start(join=a, name="b")
    service = web.start(a)
    for peer in ("b", address(b), b.nodeId[:8]):
        status, result = yield postJSON(service, "/api/send",
                                        {"peer": peer, "body": f"to {peer}"})
        assert status == 200, result
        assert result["delivered"] is True
        assert result["peer"]["node_id"] == b.nodeId
    # Confirmed means the recipient already has it.
    assert overlay.recorder(b).bodies("direct") == [
        "to b", f"to {address(b)}", f"to {b.nodeId[:8]}"]


@pytest_twisted.inlineCallbacks
def test_send_failures(overlay, web):
    a = yield overlay.start()
    service = web.start(a)
    status, result = yield postJSON(service, "/api/send",
                                    {"peer": "nobody", "body": "x"})
    assert status == 404
    assert "no peer matches 'nobody'" in result["error"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # bound, not listening: refused
        status, result = yield postJSON(
            service, "/api/send", {"peer": f"127.0.0.1:{closed}", "body": "x"})
    assert status == 502
    assert f"cannot reach 127.0.0.1:{closed}" in result["error"]
    assert "\n" not in result["error"]


@pytest_twisted.inlineCallbacks
def test_broadcast_reaches_every_node(overlay, web):
    a = yield overlay.start()
    b = yield overlay.start(join=a)
    c = yield overlay.start(join=b)
    yield waitFor(lambda: all(len(n.peers) == 2 for n in (a, b, c)),
                  what="full mesh")
    service = web.start(a)
    status, result = yield postJSON(service, "/api/broadcast",
                                    {"body": "hello, everyone"})
    assert status == 200 and result["neighbours"] == 2
    yield waitFor(lambda: all(overlay.recorder(n).bodies("broadcast")
                              == ["hello, everyone"] for n in (b, c)),
                  what="the broadcast everywhere")


@pytest_twisted.inlineCallbacks
def test_a_message_that_would_not_fit_a_line_is_413(overlay, web):
    a = yield overlay.start()
    b = yield overlay.start(join=a)
    service = web.start(a)
    # Within the request limit, but past the line limit once encoded.
    body = "x" * (a.config.maxLineLength - 50)
    for path, value in (("/api/broadcast", {"body": body}),
                        ("/api/send", {"peer": b.nodeId, "body": body})):
        status, result = yield postJSON(service, path, value)
        assert status == 413, result
        assert "more than the 65536-byte limit of a line" in result["error"]
    assert overlay.recorder(b).bodies() == []


@pytest.mark.parametrize("path, body, contentType, status, message", [
    ("/api/broadcast", b'{"body": "x"}', "text/plain", 415,
     "send the body as Content-Type: application/json"),
    ("/api/broadcast", b'{"body": "x"}', "application/x-www-form-urlencoded",
     415, "Content-Type: application/json"),
    ("/api/broadcast", b'{"body": ', "application/json", 400,
     "request body is not valid JSON"),
    ("/api/broadcast", b'\xff\xfe', "application/json", 400,
     "request body is not valid JSON"),
    ("/api/broadcast", b'["body"]', "application/json", 400,
     "request body must be a JSON object"),
    ("/api/broadcast", b'{}', "application/json", 400,
     "missing field 'body'"),
    ("/api/broadcast", b'{"body": 7}', "application/json", 400,
     "field 'body' must be a string"),
    ("/api/broadcast", b'{"body": ""}', "application/json", 400,
     "field 'body' is empty"),
    ("/api/send", b'{"body": "x"}', "application/json", 400,
     "missing field 'peer'"),
    ("/api/send", b'{"peer": "x", "body": null}', "application/json", 400,
     "field 'body' must be a string"),
    ("/api/send", b'{"peer": "x", "body": "' + b"x" * 70000 + b'"}',
     "application/json", 413, "request body larger than 66560 bytes"),
])
@pytest_twisted.inlineCallbacks
def test_bad_requests(overlay, web, path, body, contentType, status, message):
    a = yield overlay.start()
    b = yield overlay.start(join=a)
    service = web.start(a)
    got, result = yield postJSON(service, path, body, contentType)
    assert got == status
    assert message in result["error"]
    assert list(result) == ["error"] and "\n" not in result["error"]
    assert overlay.recorder(b).messages == []
    # The node keeps serving.
    got, _ = yield getJSON(service, "/api/node")
    assert got == 200


@pytest_twisted.inlineCallbacks
def test_unknown_resources_and_methods(overlay, web):
    a = yield overlay.start()
    service = web.start(a)
    status, result = yield getJSON(service, "/api/nothing")
    assert status == 404 and result == {"error": "no such resource: /api/nothing"}
    status, result = yield getJSON(service, "/api/send")
    assert status == 405
    assert result["error"] == "method GET not allowed here; use POST"
    status, result = yield postJSON(service, "/api/node", {})
    assert status == 405
    status, result = yield getJSON(service, "/api/")
    assert status == 200 and "/api/send" in result["resources"]
    assert "/api/known" in result["resources"]


# -- metrics ------------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_metrics_as_json_and_prometheus_text(overlay, web):
    a = yield overlay.start(name='say "hi" \\ <b>')
    b = yield overlay.start(join=a)
    yield a.send(address(b), "one")
    service = web.start(a)
    status, snapshot = yield getJSON(service, "/api/metrics")
    assert status == 200
    assert snapshot["messages_out"]["DATA"] == 1
    assert snapshot["messages_in"]["ACK"] == 1
    assert snapshot["peers_by_state"]["connected"] == 1
    assert snapshot["disconnects"]["bye"] == 0

    status, headers, data = yield http("GET", baseURL(service) + "/metrics")
    assert status == 200
    assert headers.getRawHeaders("content-type") == [
        "text/plain; version=0.0.4; charset=utf-8"]
    families = {f.name: f for f in
                text_string_to_metric_families(data.decode("utf-8"))}
    assert families["p2p_node_info"].samples[0].labels == {
        "node_id": a.nodeId, "name": 'say "hi" \\ <b>',
        "address": address(a)}
    sent = {s.labels["type"]: s.value
            for s in families["p2p_messages_sent"].samples
            if s.name == "p2p_messages_sent_total"}
    assert sent["DATA"] == 1
    assert families["p2p_connected_peers"].samples[0].value == 1


# -- the live feed ------------------------------------------------------------


class EventReader(Protocol):
    """Collects a text/event-stream body and parses its events."""

    def __init__(self) -> None:
        self.buffer = b""

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data

    def events(self) -> List[Tuple[str, dict]]:
        found = []
        for block in self.buffer.decode("utf-8").split("\n\n"):
            fields = dict(line.split(": ", 1) for line in block.splitlines()
                          if line and not line.startswith(":")
                          and ": " in line)
            if "event" in fields:
                found.append((fields["event"], json.loads(fields["data"])))
        return found

    def close(self) -> None:
        self.transport.stopProducing()


@inlineCallbacks
def openStream(service: WebService, query: str = "", **headers: str):
    response = yield Agent(reactor).request(
        b"GET", (baseURL(service) + "/api/events" + query).encode(),
        Headers({k: [v] for k, v in headers.items()}))
    assert response.code == 200
    assert response.headers.getRawHeaders("content-type") == [
        "text/event-stream"]
    reader = EventReader()
    response.deliverBody(reader)
    return reader


@pytest_twisted.inlineCallbacks
def test_live_feed_delivers_messages_and_peer_changes(overlay, web):
    a = yield overlay.start(name="a")
    service = web.start(a)
    reader = yield openStream(service)
    try:
        b = yield overlay.start(join=a, name="b")
        yield b.send(address(a), "<b>not bold</b>")
        b.broadcast("line one\nline two")
        yield b.stopService()
        yield waitFor(lambda: [name for name, _ in reader.events()]
                      == ["peer", "message", "message", "peer"],
                      what="four events on the stream")
        up, direct, broadcast, down = [e for _, e in reader.events()]
        assert up["change"] == "up" and up["peer"]["node_id"] == b.nodeId
        assert direct["kind"] == "direct"
        assert direct["body"] == "<b>not bold</b>"
        assert broadcast["kind"] == "broadcast"
        assert broadcast["body"] == "line one\nline two"
        assert down["change"] == "down" and down["reason"] == "node shutting down"
    finally:
        reader.close()
    yield waitFor(lambda: not service.events.streams, what="the stream closed")
    assert service.feed.subscribers == 0


@pytest_twisted.inlineCallbacks
def test_live_feed_ends_when_the_service_stops(overlay, web):
    a = yield overlay.start()
    service = web.start(a)
    reader = yield openStream(service)
    yield waitFor(lambda: service.events.streams, what="the stream")
    yield service.stopService()
    assert not service.events.streams
    assert list(a.observers) == [overlay.recorder(a)]
    reader.close()


class FakeRequest:
    """Just enough of a Request for an L{EventStream}."""

    def __init__(self) -> None:
        from twisted.internet.defer import Deferred
        self.written: List[bytes] = []
        self.finished = False
        self.producer = None
        self.aborted = False
        self.transport = self
        self._finish = Deferred()

    def abortConnection(self):
        self.aborted = True
        self._finish.errback(ConnectionAborted())

    def registerProducer(self, producer, streaming):
        self.producer = producer

    def unregisterProducer(self):
        self.producer = None

    def write(self, data):
        self.written.append(data)

    def finish(self):
        self.finished = True
        self._finish.callback(None)

    def notifyFinish(self):
        return self._finish


def test_slow_stream_is_bounded_then_dropped():
    feed = Feed(lambda: 0.0)
    streams = Streams()
    request = FakeRequest()
    stream = EventStream(request, feed, streams)
    feed.broadcastSent("id", "first", 0)
    assert len(request.written) == 1
    stream.pauseProducing()
    for n in range(MAX_QUEUED):
        feed.broadcastSent("id", f"queued {n}", 0)
    assert len(request.written) == 1 and not request.finished
    stream.resumeProducing()
    assert len(request.written) == 1 + MAX_QUEUED
    stream.pauseProducing()
    for n in range(MAX_QUEUED + 1):
        feed.broadcastSent("id", f"too many {n}", 0)
    assert request.aborted and not request.finished
    assert not streams and feed.subscribers == 0
    assert streams.queuedBytes == 0 and streams.dropped == 1


@pytest_twisted.inlineCallbacks
def test_every_json_answer_is_nosniff(overlay, web):
    a = yield overlay.start()
    service = web.start(a, token="sesame")
    auth = {"Authorization": "Bearer sesame"}
    cases = [("GET", "/api/node", None, auth),
             ("GET", "/api/nothing", None, auth),
             ("DELETE", "/api/node", None, auth),
             ("GET", "/api/node", None, {}),
             ("POST", "/api/broadcast", b"[]",
              dict(auth, **{"Content-Type": "application/json"})),
             ("POST", "/api/broadcast", b"{}", {"Content-Type": "text/plain",
                                                **auth})]
    statuses = []
    for method, path, body, headers in cases:
        status, responseHeaders, _ = yield http(
            method, baseURL(service) + path, body, headers)
        statuses.append(status)
        assert responseHeaders.getRawHeaders("x-content-type-options") == [
            "nosniff"], (method, path)
        assert responseHeaders.getRawHeaders("content-type") == [
            "application/json"]
    assert statuses == [200, 404, 405, 401, 400, 415]


# -- who may use it -------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_token_is_required_when_set(overlay, web):
    a = yield overlay.start()
    service = web.start(a, token="s3cret")
    status, result = yield getJSON(service, "/api/node")
    assert status == 401 and "a valid token is required" in result["error"]
    status, result = yield getJSON(service, "/api/node",
                                   Authorization="Bearer wrong")
    assert status == 401 and result["error"] == "wrong token"
    status, result = yield getJSON(service, "/api/node?token=wrong")
    assert status == 401
    status, result = yield getJSON(service, "/api/node",
                                   Authorization="Bearer s3cret")
    assert status == 200 and result["node_id"] == a.nodeId
    status, result = yield getJSON(service, "/api/node?token=s3cret")
    assert status == 200
    status, result = yield postJSON(service, "/api/broadcast", {"body": "x"})
    assert status == 401
    status, result = yield postJSON(service, "/api/broadcast", {"body": "x"},
                                    Authorization="Bearer s3cret")
    assert status == 200
    status, headers, _ = yield http("GET", baseURL(service) + "/metrics")
    assert status == 401
    assert headers.getRawHeaders("www-authenticate") == [
        'Bearer realm="p2poverlay"']
    status, _, _ = yield http("GET", baseURL(service) + "/metrics?token=s3cret")
    assert status == 200
    reader = yield openStream(service, "?token=s3cret")
    reader.close()
    # The page itself holds no data: it loads without the token.
    status, _, page = yield http("GET", baseURL(service) + "/")
    assert status == 200 and b"<title>" in page


@pytest_twisted.inlineCallbacks
def test_loopback_api_refuses_foreign_host_names(overlay, web):
    a = yield overlay.start()
    service = web.start(a)
    for host in ("evil.example", "evil.example:80", "10.0.0.1"):
        status, result = yield getJSON(service, "/api/node", Host=host)
        assert status == 403, host
        assert "loopback Host" in result["error"]
    for host in ("localhost", "127.0.0.1:8080", "[::1]:8080", "localhost:1"):
        status, _ = yield getJSON(service, "/api/node", Host=host)
        assert status == 200, host


class LogCapture:
    def __init__(self) -> None:
        self.events = []

    def __call__(self, event) -> None:
        self.events.append(event)

    def warnings(self) -> List[str]:
        from twisted.logger import LogLevel, formatEvent
        return [formatEvent(e) for e in self.events
                if e.get("log_level") == LogLevel.warn]


@pytest.fixture
def logged():
    capture = LogCapture()
    globalLogPublisher.addObserver(capture)
    yield capture
    globalLogPublisher.removeObserver(capture)


@pytest_twisted.inlineCallbacks
def test_warns_when_reachable_beyond_loopback_without_token(overlay, web, logged):
    a = yield overlay.start()
    web.start(a, endpoint="tcp:0:interface=127.0.0.1")
    web.start(a, endpoint="tcp:0", token="t")
    assert not [w for w in logged.warnings() if "web UI" in w]
    exposed = web.start(a, endpoint="tcp:0")
    warnings = [w for w in logged.warnings() if "web UI" in w]
    assert len(warnings) == 1
    assert f":{exposed.port.getHost().port} is reachable beyond this machine" \
        in warnings[0]
    assert "--web-token" in warnings[0]
    # Not bound to loopback: any Host may be used (the token guards it).
    status, _ = yield getJSON(exposed, "/api/node", Host="node.example")
    assert status == 200


@pytest_twisted.inlineCallbacks
def test_cannot_listen(overlay):
    a = yield overlay.start()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        service = WebService(a, f"tcp:{port}:interface=127.0.0.1")
        with pytest.raises(ListenError) as error:
            service.privilegedStartService()
    assert str(error.value) == (
        f"cannot listen for the web UI on tcp:{port}:interface=127.0.0.1: "
        f"Address already in use")
    service = WebService(a, "nonsense:1")
    with pytest.raises(ListenError) as error:
        service.privilegedStartService()
    assert str(error.value).startswith("bad web endpoint 'nonsense:1'")


# -- the page -------------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_static_page_and_its_headers(overlay, web):
    a = yield overlay.start()
    service = web.start(a)
    for path, contentType, marker in [
            ("/", "text/html", b'<script src="app.js">'),
            ("/index.html", "text/html", b"<svg id=\"overlay\""),
            ("/app.js", "text/javascript", b"textContent"),
            ("/style.css", "text/css", b"#feed")]:
        status, headers, data = yield http("GET", baseURL(service) + path)
        assert status == 200, path
        assert headers.getRawHeaders("content-type")[0].startswith(contentType)
        assert marker in data
        csp = headers.getRawHeaders("content-security-policy")[0]
        assert "default-src 'self'" in csp
        assert headers.getRawHeaders("x-content-type-options") == ["nosniff"]
    status, _, _ = yield http("GET", baseURL(service) + "/nothing.html")
    assert status == 404


def test_page_never_parses_data_as_html():
    from p2poverlay.web.service import STATIC
    import os
    with open(os.path.join(STATIC, "app.js"), encoding="utf-8") as f:
        script = f.read()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML",
                 "document.write", "eval("):
        assert sink not in script


def test_access_log_hides_the_token():
    from twisted.web.test.requesthelper import DummyRequest
    from p2poverlay.web.service import redactedLogFormatter
    request = DummyRequest([b"api", b"events"])
    request.uri = b"/api/events?a=1&token=s3cret&b=2"
    request.method = b"GET"
    request.clientproto = b"HTTP/1.1"
    request.code = 200
    request.sentLength = 0
    line = redactedLogFormatter("[25/Nov/2026:08:00:00 +0000]", request)
    assert "s3cret" not in line
    assert "/api/events?a=1&token=REDACTED&b=2" in line
