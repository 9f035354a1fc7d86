"""
Flow control of direct messages over real sockets: a flood of sends piped
into a real C{twistd -n p2p} console, a control connection that pipelines
thousands of them, and the web API's answer when the send queue is full.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from typing import List

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import DeferredList
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol

from p2poverlay.control import ControlService
from p2poverlay.controlclient import ControlClientProtocol
from p2poverlay.controlwire import unixDescription
from helpers import address, waitFor
from processes import childEnvironment, label, waitUntil
from test_web import Web, baseURL, http

RECEIVED = re.compile(r"^\[direct\] .* m(\d+)$")


@pytest.fixture
def web():
    services = Web()
    yield services
    pytest_twisted.blockon(services.stop())


def receivedIndexes(lines: List[str]) -> List[int]:
    return [int(m.group(1)) for m in map(RECEIVED.match, lines) if m]


def test_a_flood_piped_into_a_console_arrives_once_in_order(processes):
    """
    20,000 sends of 500 bytes piped into one console, with a receiver
    that reads 2,000 messages a second and a 64 KiB send buffer: every
    message arrives once and in order, none fails, and the console answers
    afterwards.
    """
    limits = ("--rate-limit", "2000", "--rate-burst", "2000",
              "--max-send-buffer", "65536")
    b = processes.node("B", *limits)
    a = processes.node("A", *limits)
    count = 20_000
    # 10 MB in all: more than the kernel's socket buffers take as well.
    padding = "x" * 500
    script = "".join(f"send {b.address} {padding} m{i}\n"
                     for i in range(count))

    def feed() -> None:
        a.proc.stdin.write(script.encode("ascii"))
        a.proc.stdin.flush()

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    waitUntil(lambda: len(a.matching(r"^(delivered to|error: )")) >= count,
              "every send to be answered", timeout=40, interval=0.5)
    writer.join(5)
    assert not writer.is_alive()
    assert a.matching(r"^error: ") == []
    assert len(a.matching(rf"^delivered to {label(b)}$")) == count
    waitUntil(lambda: len(b.matching(RECEIVED.pattern)) >= count,
              "every message to arrive", timeout=10, interval=0.5)
    assert receivedIndexes(b.lines) == list(range(count))
    # Still responsive: 'peers' is answered.
    lines = a.command("peers")
    assert any(line.startswith(b.address) for line in lines), lines
    transcript = a.transcript() + b.transcript()
    assert "Traceback" not in transcript
    assert "banned" not in transcript


def test_sends_piped_into_an_attached_client_are_all_delivered(
        processes, tmp_path):
    """
    5,000 sends piped into C{p2p-console} attached to a node: the client
    keeps a bounded number unanswered, and every one is delivered in order.
    """
    b = processes.node("B")
    a = processes.node("A", "--data-dir", "A")
    count = 5000
    script = "".join(f"send {b.address} m{i}\n" for i in range(count))
    result = subprocess.run(
        [sys.executable, "-m", "p2poverlay.console", "--data-dir", "A"],
        cwd=processes.cwd, input=script, capture_output=True, text=True,
        timeout=40, env=childEnvironment())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len([line for line in lines
                if line.startswith("delivered to ")]) == count, result.stdout
    assert not [line for line in lines if line.startswith("error: ")]
    waitUntil(lambda: len(b.matching(RECEIVED.pattern)) >= count,
              "every message to arrive", timeout=10, interval=0.5)
    assert receivedIndexes(b.lines) == list(range(count))
    assert a.matching(r"^error: ") == []


@pytest_twisted.inlineCallbacks
def test_a_control_connection_pipelining_sends_is_paced_not_failed(
        overlay, tmp_path):
    """
    5,000 sends written at once over a control socket to a node that takes
    only 100 waiting: the node reads them as the window lets it, so each
    one is delivered rather than refused.
    """
    b = yield overlay.start(name="b")
    a = yield overlay.start(name="a", sendWindow=16, sendQueueLimit=100)
    path = str(tmp_path / "c.sock")
    service = ControlService(a, unixDescription(path), reactor=reactor)
    service.privilegedStartService()
    service.startService()
    client = ControlClientProtocol()
    try:
        yield connectProtocol(UNIXClientEndpoint(reactor, path), client)
        yield client.hello
        count = 5000
        replies = yield DeferredList([
            client.request(f"send {address(b)} m{i}") for i in range(count)])
        failed = [r for ok, r in replies if not ok or not r["ok"]]
        assert failed == []
        assert overlay.recorder(b).bodies("direct") == [
            f"m{i}" for i in range(count)]
        assert a.sendBacklog == 0
    finally:
        client.transport.loseConnection()
        yield service.stopService()


class Silent(Protocol):
    """Accepts a connection and never answers: a dial to it hangs."""

    def connectionMade(self) -> None:
        self.factory.accepted.append(self)


class SilentFactory(Factory):
    protocol = Silent

    def __init__(self) -> None:
        self.accepted: List[Silent] = []


@pytest_twisted.inlineCallbacks
def test_web_send_answers_503_with_retry_after_when_the_queue_is_full(
        overlay, web):
    b = yield overlay.start(name="b")
    a = yield overlay.start(name="a", sendQueueLimit=2)
    factory = SilentFactory()
    silent = reactor.listenTCP(0, factory, interface="127.0.0.1")
    hanging = f"127.0.0.1:{silent.getHost().port}"
    try:
        # Two messages wait on a dial that does not finish: the queue is full.
        stuck = [a.send(hanging, "stuck") for _ in range(2)]
        for d in stuck:
            d.addErrback(lambda _: None)
        assert a.sendBacklog == 2
        service = web.start(a)
        body = json.dumps({"peer": address(b), "body": "x"}).encode()
        headers = {"Content-Type": "application/json"}
        status, responseHeaders, data = yield http(
            "POST", baseURL(service) + "/api/send", body, headers)
        assert status == 503
        assert responseHeaders.getRawHeaders("retry-after") == ["1"]
        assert json.loads(data) == {"error": (
            "2 messages already wait to be sent (the send queue limit): try "
            "again once some are delivered")}
    finally:
        yield silent.stopListening()
        # The hanging dial fails: room again, and the send goes through.
        for protocol in factory.accepted:
            protocol.transport.loseConnection()
    yield waitFor(lambda: a.sendBacklog == 0, timeout=15,
                  what="the stuck messages to fail")
    assert all(d.called for d in stuck)
    status, _, data = yield http(
        "POST", baseURL(service) + "/api/send", body, headers)
    assert status == 200, data
    assert overlay.recorder(b).bodies("direct") == ["x"]
