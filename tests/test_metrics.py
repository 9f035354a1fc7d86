"""
Metrics: what the connections count, disconnect reasons, and the
Prometheus text format.  The nodes run in a memory overlay, but for the
disconnect counts: those run over loopback TCP, where a client writes a
line that is not a message.
"""

from __future__ import annotations

import re

import pytest
import pytest_twisted
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol

from p2poverlay import metrics
from p2poverlay.metrics import (
    PEER_STATES, escapeLabelValue,
    prometheusText,
)
from p2poverlay.reasons import DISCONNECT_REASONS, CloseKind, CloseReason
from helpers import waitFor
from memoverlay import address, bodies, memoryOverlay, outcome, start


@pytest.mark.parametrize("reason, label", [
    (CloseReason(CloseKind.SHUTDOWN, "node shutting down", remote=True), "bye"),
    (CloseReason(CloseKind.PROTOCOL_ERROR, "protocol error: not valid JSON",
                 remote=True), "bye"),
    (CloseReason(CloseKind.LOST), "lost"),
    (CloseReason(CloseKind.PROTOCOL_ERROR, "expected HELLO, got DATA"),
     "protocol_error"),
    (CloseReason(CloseKind.BANNED, "protocol error: not valid JSON"), "banned"),
    (CloseReason(CloseKind.TOO_MANY, "inbound"), "full"),
    (CloseReason(CloseKind.FULL), "full"),
    (CloseReason(CloseKind.HANDSHAKE_TIMEOUT), "timeout"),
    (CloseReason(CloseKind.SILENT, "5.0 s"), "timeout"),
    (CloseReason(CloseKind.NOT_READING), "timeout"),
    (CloseReason(CloseKind.SHUTDOWN), "shutdown"),
    (CloseReason(CloseKind.DUPLICATE), "duplicate"),
    (CloseReason(CloseKind.SELF), "self"),
    (CloseReason(CloseKind.IDLE), "other"),
])
def test_disconnect_labels(reason, label):
    assert reason.label == label
    assert label in DISCONNECT_REASONS


@pytest.mark.parametrize("kind", list(CloseKind))
def test_every_close_kind_has_a_label(kind):
    assert CloseReason(kind).label in DISCONNECT_REASONS
    assert CloseReason(kind, remote=True).label == "bye"


def quiet(**config):
    """Settings under which nodes exchange nothing unasked (no PINGs)."""
    return dict(pingInterval=1000.0, peerTimeout=1000.0, **config)


def test_each_line_is_counted_once_in_each_direction():
    overlay = memoryOverlay(seed=1)
    a = start(overlay, **quiet(name="a"))
    b = start(overlay, join=a, **quiet(name="b"))
    outcome(overlay, a.send(address(overlay, b), "direct"))
    a.broadcast("to all")
    overlay.runUntil(lambda: bodies(overlay, b, "broadcast") == ["to all"],
                     10, "the broadcast at b")
    ma, mb = a.metrics, b.metrics
    overlay.runUntil(lambda: ma.messagesIn == mb.messagesOut
                     and mb.messagesIn == ma.messagesOut, 10, "quiet links")
    # b joined a (a's verdict: an empty PEERS); nothing else was said.
    assert dict(mb.messagesOut) == {"HELLO": 1, "ACK": 1}
    assert dict(ma.messagesOut) == {"HELLO": 1, "PEERS": 1, "DATA": 1,
                                    "BROADCAST": 1}
    # What one end wrote, byte for byte, is what the other read.
    assert ma.bytesOut == mb.bytesIn and mb.bytesOut == ma.bytesIn
    assert ma.bytesOut["BROADCAST"] == a.stats.broadcastPayloadBytes
    snapshot = ma.snapshot()
    assert snapshot["peers"] == 1
    assert snapshot["peers_by_state"]["connected"] == 1
    assert set(snapshot["peers_by_state"]) == set(PEER_STATES)
    assert all(re.fullmatch("[a-z_]+", key) for key in snapshot)
    assert mb.snapshot()["broadcasts_delivered"] == 1
    assert mb.snapshot()["direct_delivered"] == 1


@pytest_twisted.inlineCallbacks
def test_disconnects_by_reason(overlay):
    a = yield overlay.start(**quiet())
    b = yield overlay.start(join=a, **quiet())
    yield b.stopService()
    yield waitFor(lambda: len(a.peers) == 0, what="b gone from a")
    assert a.metrics.disconnects["bye"] == 1
    assert b.metrics.disconnects["shutdown"] == 1
    assert sum(a.metrics.disconnects.values()) == 1
    assert a.metrics.peersByState()["left"] == 1

    # A line that is not a message: a protocol error, counted as such.
    class Garbage(Protocol):
        def connectionMade(self):
            self.transport.write(b"this is not JSON\n")

    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", a.listenPort)
    client = yield connectProtocol(endpoint, Garbage())
    try:
        yield waitFor(lambda: a.metrics.disconnects["protocol_error"] == 1,
                      what="the protocol error counted")
    finally:
        client.transport.abortConnection()


def test_dropped_broadcasts_are_counted():
    overlay = memoryOverlay(seed=2)
    a = start(overlay, **quiet(maxSendBuffer=1))
    b = start(overlay, join=a, **quiet())
    connection = a.peers.connection(b.nodeId)
    connection.outbox.pauseProducing()  # as if b stopped reading
    try:
        a.broadcast("x" * 100)
    finally:
        connection.outbox.resumeProducing()
    assert a.metrics.snapshot()["broadcasts_dropped"] == 1
    assert "BROADCAST" not in a.metrics.messagesOut


# -- the Prometheus text format -----------------------------------------------

SAMPLE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*'
    r'(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*"'
    r'(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*")*\})?'
    r' -?[0-9]+(\.[0-9]+)?(e[+-]?[0-9]+)?$')
COMMENT = re.compile(r"^# (HELP [a-zA-Z_:][a-zA-Z0-9_:]* [^\n]*|"
                     r"TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge))$")


def test_label_escaping():
    assert escapeLabelValue('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


def test_prometheus_text_parses():
    overlay = memoryOverlay(seed=3)
    a = start(overlay, **quiet())
    b = start(overlay, join=a, **quiet())
    outcome(overlay, a.send(address(overlay, b), "hi"))
    tricky = 'quote " backslash \\ newline \n end'
    text = prometheusText(a.metrics.snapshot(),
                          {"node_id": a.nodeId, "name": tricky})
    assert text.endswith("\n")
    for line in text.splitlines():
        assert COMMENT.match(line) or SAMPLE.match(line), line
    families = {f.name: f for f in text_string_to_metric_families(text)}
    info = families["p2p_node_info"]
    assert info.samples[0].labels == {"node_id": a.nodeId, "name": tricky}
    # The parser names counters without their _total suffix.
    sent = families["p2p_messages_sent"]
    assert sent.type == "counter"
    values = {s.labels["type"]: s.value for s in sent.samples
              if s.name == "p2p_messages_sent_total"}
    assert values["DATA"] == 1 and values["HELLO"] == 1
    reasons = {s.labels["reason"] for s in families["p2p_disconnects"].samples
               if s.name == "p2p_disconnects_total"}
    assert reasons == set(DISCONNECT_REASONS)
    peers = {s.labels["state"]: s.value for s in families["p2p_peers"].samples}
    assert peers["connected"] == 1 and set(peers) == set(PEER_STATES)
    for name, kind, _, _, _ in metrics._FAMILIES:
        family = families[name[:-len("_total")] if kind == "counter" else name]
        assert family.type == kind
