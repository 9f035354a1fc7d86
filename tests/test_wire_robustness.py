"""
Robustness of the wire protocol: bad input closes only the offending
connection, with a BYE and a logged reason and no traceback, while the node
keeps serving its other peers.

The integration tests run in the reactor over real loopback TCP: a target
node with two well-behaved peers (A and B, which only know the target),
and raw misbehaving clients that are plain Twisted protocols.  The last
test feeds arbitrary bytes to a L{PeerConnection} over a StringTransport.
"""

import json
import random
import resource

import pytest
import pytest_twisted
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.defer import DeferredList, inlineCallbacks
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import formatEvent
from twisted.python.failure import Failure

from p2poverlay.message import Data, Hello, newMessageId, newNodeId
from p2poverlay import Node, NodeConfig
from p2poverlay.reasons import CloseKind
from p2poverlay.protocol import CLOSE_GRACE, PeerConnection
from test_protocol import expectedBye
from helpers import PROMPT, capturedLog, connectRaw, waitFor

MAX_LINE = 1024
HANDSHAKE_TIMEOUT = 0.5


# -- the overlay under abuse ----------------------------------------------------

@inlineCallbacks
def startTrio(overlay, **targetConfig):
    """
    The target node (small line limit, short handshake timeout) and two
    well-behaved peers A and B that are connected to it and only to it.
    """
    target = yield overlay.start(name="target", maxLineLength=MAX_LINE,
                                 handshakeTimeout=HANDSHAKE_TIMEOUT,
                                 autoConnect=False, **targetConfig)
    a = yield overlay.start(join=target, name="a", autoConnect=False)
    b = yield overlay.start(join=target, name="b", autoConnect=False)
    yield waitFor(lambda: len(target.peers) == 2 and len(target.connections) == 2,
                  timeout=PROMPT, what="A and B connected to the target")
    assert len(a.peers) == len(b.peers) == 1
    return target, a, b


def goodConnections(target, a, b):
    return {n.nodeId: target.peers.connection(n.nodeId) for n in (a, b)}


@inlineCallbacks
def assertOthersStillServed(overlay, target, a, b, before):
    """
    A and B keep the very connections they had before the abuse, and a
    direct message A -> target and a broadcast from B (relayed by the
    target to A) still arrive.
    """
    assert goodConnections(target, a, b) == before
    assert all(not c.closing for c in before.values())
    good = {a.nodeId, b.nodeId}
    assert [p for p, _ in overlay.recorder(target).disconnected
            if p.node_id in good] == []
    assert overlay.recorder(a).disconnected == []
    assert overlay.recorder(b).disconnected == []

    tag = newMessageId()[:8]
    sent = a.send(target.nodeId, f"direct {tag}")
    sent.addTimeout(PROMPT, reactor)
    peer = yield sent
    assert peer.node_id == target.nodeId
    assert f"direct {tag}" in overlay.recorder(target).bodies("direct")

    _, neighbours = b.broadcast(f"broadcast {tag}")
    assert neighbours == 1
    yield waitFor(
        lambda: all(f"broadcast {tag}" in overlay.recorder(n).bodies("broadcast")
                    for n in (target, a)),
        timeout=PROMPT, what="B's broadcast to reach the target and A")


def assertByeThenClosed(client, targetNode, reasonPrefix):
    """
    The client got a single BYE last; before it, the node's HELLO if the
    client had sent a valid one (the node answers HELLO, never opens).
    """
    assert client.closed and not client.closedByUs
    lines = client.lines()
    assert lines, "nothing received from the node"
    hellos = [line for line in lines if line["type"] == "HELLO"]
    assert hellos in ([], [lines[0]]), lines
    assert all(h["node_id"] == targetNode.nodeId for h in hellos)
    byes = [line for line in lines if line["type"] == "BYE"]
    assert len(byes) == 1, lines
    assert lines[-1] is byes[0], lines
    assert byes[0]["reason"].startswith(reasonPrefix), byes[0]
    return byes[0]["reason"]


# -- what the bad clients send --------------------------------------------------

RAW_ID = newNodeId()
HELLO = Hello(RAW_ID, 1, 0, "raw").encode() + b"\n"
OTHER_ID = newNodeId()


def helloWith(**fields):
    obj = {"type": "HELLO", "node_id": RAW_ID, "version": 1, "port": 0}
    obj.update(fields)
    obj = {k: v for k, v in obj.items() if v is not _OMIT}
    return json.dumps(obj).encode() + b"\n"


_OMIT = object()
_rng = random.Random(20240607)
# Starts with bytes that are never valid UTF-8, includes NULs.
RANDOM_GARBAGE = b"\x00\xff\xc0" + _rng.randbytes(600) + b"\x00\n"

# (id, payload, expected reason after "protocol error: ")
BAD_INPUTS = [
    ("malformed-json", b'{"type": "HELLO", "node_id": \n', "not valid JSON"),
    ("not-json-at-all", b"HELO there\r\n", "not valid JSON"),
    ("empty-line", b"\n", "not valid JSON"),
    ("non-object-list", b"[1,2]\n", "message is not a JSON object"),
    ("non-object-string", b'"x"\n', "message is not a JSON object"),
    ("non-object-number", b"3\n", "message is not a JSON object"),
    ("non-object-null", b"null\n", "message is not a JSON object"),
    ("missing-type", b'{"node_id":"%s"}\n' % RAW_ID.encode(),
     "missing or non-string 'type'"),
    ("non-string-type", b'{"type":7}\n', "missing or non-string 'type'"),
    ("unknown-type", b'{"type":"GOSSIP","body":"x"}\n',
     "unknown message type 'GOSSIP'"),
    ("hello-without-fields", b'{"type":"HELLO"}\n',
     "HELLO lacks field 'node_id'"),
    ("hello-without-version", helloWith(version=_OMIT),
     "HELLO lacks field 'version'"),
    ("hello-without-port", helloWith(port=_OMIT), "HELLO lacks field 'port'"),
    ("hello-port-as-string", helloWith(port="9000"),
     "HELLO field 'port' must be an integer"),
    ("hello-version-as-bool", helloWith(version=True),
     "HELLO field 'version' must be an integer"),
    ("hello-version-as-float", helloWith(version=1.0),
     "HELLO field 'version' must be an integer"),
    ("hello-name-as-number", helloWith(name=5),
     "HELLO field 'name' must be a string"),
    ("hello-bad-node-id", helloWith(node_id="NOT-AN-ID"),
     "node_id must be 64 (or 32) lowercase hex digits"),
    ("hello-port-out-of-range", helloWith(port=70000), "port out of range: 70000"),
    ("hello-version-zero", helloWith(version=0), "bad protocol version 0"),
    ("oversize-without-newline", b"x" * 5000,
     f"line longer than {MAX_LINE} bytes"),
    ("oversize-with-newline",
     b'{"type":"HELLO","name":"' + b"y" * 5000 + b'"}\n',
     f"line longer than {MAX_LINE} bytes"),
    ("invalid-utf8", b"\xff\xfe\xfd garbage \xc3\x28\n", "not valid UTF-8"),
    ("nul-bytes", b"\x00\x00\x00\x00\n", "not valid JSON"),
    ("nul-inside-json-string", b'{"type":"HELLO\x00"}\n', "not valid JSON"),
    ("random-binary", RANDOM_GARBAGE, "not valid UTF-8"),
    ("deeply-nested-json", b"[" * (MAX_LINE - 4) + b"\n", "not valid JSON"),
    ("data-before-hello",
     Data(newMessageId(), "sneaky").encode() + b"\n", "expected HELLO, got DATA"),
    ("ping-before-hello", b'{"type":"PING","nonce":1}\n',
     "expected HELLO, got PING"),
    ("hello-then-garbage", HELLO + b"\x01garbage{\x00\n", "not valid JSON"),
    ("hello-then-invalid-utf8", HELLO + b"\xff\xff\n", "not valid UTF-8"),
    ("hello-twice", HELLO + HELLO, "HELLO sent twice"),
    ("hello-then-oversize", HELLO + b"z" * 5000,
     f"line longer than {MAX_LINE} bytes"),
    ("hello-then-bad-peers", HELLO + b'{"type":"PEERS","peers":{"node_id":"%s"}}\n'
     % OTHER_ID.encode(), "PEERS field 'peers' must be a list"),
    ("hello-then-bad-ttl",
     HELLO + b'{"type":"BROADCAST","id":"%s","origin":"%s","ttl":999,"body":"x"}\n'
     % (newMessageId().encode(), OTHER_ID.encode()), "ttl out of range: 999"),
    ("hello-then-mistyped-ack", HELLO + b'{"type":"ACK","id":5}\n',
     "ACK field 'id' must be a string"),
    ("hello-then-long-bye", HELLO + b'{"type":"BYE","reason":"%s"}\n' % (b"r" * 300),
     "reason longer than 200 characters"),
]


@pytest.mark.parametrize("payload, reason",
                         [pytest.param(p, r, id=i) for i, p, r in BAD_INPUTS])
@pytest_twisted.inlineCallbacks
def test_bad_input_closes_only_the_offending_connection(overlay, raw, payload,
                                                        reason):
    target, a, b = yield startTrio(overlay)
    before = goodConnections(target, a, b)
    with capturedLog() as log:
        client = yield raw(target)
        client.transport.write(payload)
        # (1) The node closes the connection ...
        yield waitFor(lambda: client.closed, timeout=PROMPT,
                      what="the node to close the bad connection")
        # (2) ... after telling the client why.
        bye = assertByeThenClosed(client, target, expectedBye(reason)[:200])
        assert bye == expectedBye(reason)[:200]
        yield waitFor(lambda: len(target.connections) == 2,
                      timeout=PROMPT, what="the target to drop the client")
        # (4) Everyone else is still served.
        yield assertOthersStillServed(overlay, target, a, b, before)
    # (3) One warning names the reason and the offending client, and
    # nothing logged a traceback.
    assert log.failures() == [], log.describeFailures()
    names = [client.localAddress, RAW_ID[:8]]
    assert len(log.warningsFor(reason, names)) == 1, \
        [formatEvent(e) for e in log.warnings()]


@pytest_twisted.inlineCallbacks
def test_silent_client_is_closed_by_the_handshake_timeout(overlay, raw):
    target, a, b = yield startTrio(overlay)
    before = goodConnections(target, a, b)
    with capturedLog() as log:
        started = reactor.seconds()
        client = yield raw(target)
        yield waitFor(lambda: client.closed, timeout=HANDSHAKE_TIMEOUT + PROMPT,
                      what="the node to close the silent connection")
        elapsed = reactor.seconds() - started
        assert elapsed >= HANDSHAKE_TIMEOUT * 0.8
        lines = client.lines()
        # It said nothing, so the node said no HELLO either.
        assert [line["type"] for line in lines] == ["BYE"]
        assert lines[0]["reason"] == "handshake timeout"
        assert not client.closedByUs
        yield waitFor(lambda: len(target.connections) == 2,
                      timeout=PROMPT, what="the target to drop the client")
        yield assertOthersStillServed(overlay, target, a, b, before)
    assert log.failures() == [], log.describeFailures()
    assert len(log.warningsFor("handshake timeout", [client.localAddress])) == 1, \
        ("no warning names the handshake timeout of the silent client",
         [formatEvent(e) for e in log.events])


def idleSocketCount(wanted=300):
    """
    How many idle sockets this process can afford: each one costs two file
    descriptors here (client end and accepted end), and the nodes, pytest
    and the reactor need some of their own.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(10, min(wanted, (soft - 256) // 2))


@pytest_twisted.inlineCallbacks
def test_hundreds_of_idle_sockets_are_all_closed(overlay):
    count = idleSocketCount()
    # Room for all of them: this is about the handshake timeout, not the
    # bound on inbound connections.
    target, a, b = yield startTrio(overlay, maxInbound=count + 10)
    before = goodConnections(target, a, b)
    clients = []
    with capturedLog() as log:
        try:
            # Connect in batches no larger than the listen backlog, waiting
            # for the node to accept each batch, so that no SYN is dropped
            # and retried a second later.
            batch = 50
            for start in range(0, count, batch):
                size = min(batch, count - start)
                results = yield DeferredList(
                    [connectRaw(target) for _ in range(size)],
                    consumeErrors=True)
                failed = [r for ok, r in results if not ok]
                for ok, r in results:
                    if ok:
                        clients.append(r)
                assert failed == [], failed[0]
                yield waitFor(
                    lambda: sum(1 for c in target.connections
                                if c.peer is None) >= len(clients),
                    timeout=PROMPT, what="the node to accept a batch")
            assert len(clients) == count
            # The node serves A and B while the idle sockets hang around.
            yield assertOthersStillServed(overlay, target, a, b, before)
            yield waitFor(lambda: all(c.closed for c in clients),
                          timeout=HANDSHAKE_TIMEOUT + 2 * PROMPT,
                          what=f"the node to close all {count} idle sockets")
            for client in clients:
                assert not client.closedByUs
                lines = client.lines()
                # The node never said HELLO to a client that did not.
                assert [line["type"] for line in lines] == ["BYE"]
                assert lines[0]["reason"] == "handshake timeout"
            yield waitFor(lambda: len(target.connections) == 2,
                          timeout=PROMPT, what="the target to drop them all")
            yield assertOthersStillServed(overlay, target, a, b, before)
        finally:
            for client in clients:
                client.close()
    assert log.failures() == [], log.describeFailures()
    warned = [c for c in clients
              if log.warningsFor("handshake timeout", [c.localAddress])]
    assert len(warned) == count, \
        f"{count - len(warned)} of {count} handshake timeouts were not logged"


# -- arbitrary bytes, without a network -------------------------------------------

FUZZ_ID = "ab" * 16
FUZZ_HELLO = Hello(FUZZ_ID, 1, 0, "fuzz").encode() + b"\n"
FRAGMENTS = [
    FUZZ_HELLO,
    FUZZ_HELLO[:10], FUZZ_HELLO[10:],
    b"\n", b"\r\n", b"\x00", b"\xff", b"\xc3", b"[" * 60, b"x" * 100,
    Data(newMessageId(), "hi").encode() + b"\n",
    b'{"type":"PING","nonce":1}\n',
    b'{"type":"PONG","nonce":1}\n',
    b'{"type":"ACK","id":"%s"}\n' % newMessageId().encode(),
    b'{"type":"BYE","reason":"bye"}\n',
    b'{"type":"PEERS","peers":[{"node_id":"%s","host":"127.0.0.1","port":1}]}\n'
    % newNodeId().encode(),
    b'{"type":"BROADCAST","id":"%s","origin":"%s","ttl":3,"body":"b"}\n'
    % (newMessageId().encode(), newNodeId().encode()),
    b'{"type":', b'"HELLO"}', b'{"type":"HELLO","port":"1"}\n', b"[1,2]\n",
]
CHUNKS = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(FRAGMENTS),
    st.text(max_size=40).map(lambda s: s.encode("utf-8")),
)


def writtenLines(transport):
    return [json.loads(line) for line in transport.value().split(b"\n")[:-1]]


@settings(max_examples=50, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(chunks=st.lists(CHUNKS, max_size=25),
       maxLineLength=st.sampled_from([64, MAX_LINE, 65536]))
@example(chunks=[FUZZ_HELLO, b'{"type":"PING","nonce":' + b"9" * 5000 + b"}\n"],
         maxLineLength=65536)
@example(chunks=[b"[" * 60000 + b"\n"], maxLineLength=65536)
@example(chunks=[b"x" * 100, b"y" * 100, b"\n"], maxLineLength=64)
def test_arbitrary_bytes_never_raise(chunks, maxLineLength):
    # A young-generation collection is enough for this example's garbage,
    # and much cheaper than a full one 50 times over.
    with capturedLog(generation=1) as log:
        clock = MemoryReactorClock()
        node = Node(NodeConfig(maxLineLength=maxLineLength, handshakeTimeout=5.0),
                    reactor=clock)
        connection = PeerConnection(node.connections, outbound=False)
        transport = StringTransport()
        connection.makeConnection(transport)
        for chunk in chunks:
            connection.dataReceived(chunk)

        written = writtenLines(transport)
        # The node says HELLO only in answer to a valid one, and first.
        hellos = [line for line in written if line["type"] == "HELLO"]
        assert hellos in ([], written[:1])
        assert all(h["node_id"] == node.nodeId for h in hellos)
        byes = [line for line in written if line["type"] == "BYE"]
        if connection.closing or transport.disconnecting:
            assert connection.closing and transport.disconnecting
            if connection.closeReason.remote:
                # The peer said BYE itself; no need to answer it.
                assert byes == []
            else:
                assert len(byes) == 1 and written[-1] is byes[0], written
                assert byes[0]["reason"].startswith(
                    ("protocol error: ", "line longer than "))
                assert byes[0]["reason"] == connection.closeReason.text[:200]
        else:
            assert byes == []

        # The timers and the end of the connection do not raise either.
        clock.advance(node.config.handshakeTimeout + CLOSE_GRACE + 1)
        connection.connectionLost(Failure(ConnectionDone()))
        assert len(node.connections) == 0
        assert len(node.peers) == 0
    assert log.failures() == [], log.describeFailures()
    if connection.closeReason.kind is CloseKind.PROTOCOL_ERROR:
        reason = connection.closeReason.detail
        assert any(e.get("reason") == reason for e in log.warnings())
