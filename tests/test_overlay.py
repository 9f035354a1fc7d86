"""
Integration over the wire: several Nodes in one reactor over real loopback
TCP.  Join and peer exchange, direct messages, one broadcast, duplicate
connections and a redial keep the TCP path covered end to end; the rest
of the overlay's behaviour is tested in memory (C{*_memory.py}).
"""

import pytest_twisted
from twisted.internet.defer import DeferredList

from p2poverlay import Node, NodeConfig
from p2poverlay.records import CONNECTED, RECONNECTING
from helpers import address, crash, waitFor

FAST = dict(pingInterval=0.1, peerTimeout=0.6, reconnectInitialDelay=0.05,
            reconnectMaxDelay=0.3, forgetAfter=1.5)


def connectedIds(node):
    return {p.node_id for p in node.peers.snapshot()}


def state(node, other):
    entry = node.membership.book.get(other.nodeId)
    return entry.state if entry else None


@pytest_twisted.inlineCallbacks
def test_join_and_discovery(overlay):
    a = yield overlay.start(name="a")
    b = yield overlay.start(join=a, name="b")
    c = yield overlay.start(join=b, name="c")
    # C joined through B, learned A by peer exchange, and A learned C.
    yield waitFor(lambda: all(len(n.peers) == 2 for n in (a, b, c)),
                  what="full mesh of 3")
    assert connectedIds(a) == {b.nodeId, c.nodeId}
    assert connectedIds(c) == {a.nodeId, b.nodeId}
    peerOfC = c.peers.get(a.nodeId)
    assert (peerOfC.host, peerOfC.port) == ("127.0.0.1", a.listenPort)
    assert peerOfC.name == "a"
    assert a.nodeId not in connectedIds(a)


@pytest_twisted.inlineCallbacks
def test_direct_message_by_address_id_and_name(overlay):
    a = yield overlay.start(name="alice")
    b = yield overlay.start(join=a, name="bob")
    for target in (address(b), b.nodeId, b.nodeId[:6], "bob"):
        peer = yield a.send(target, f"to {target}")
        assert peer.node_id == b.nodeId
    recorder = overlay.recorder(b)
    assert recorder.bodies("direct") == [
        f"to {t}" for t in (address(b), b.nodeId, b.nodeId[:6], "bob")]
    message = recorder.messages[0]
    assert message.sender_id == a.nodeId
    assert message.sender.port == a.listenPort


@pytest_twisted.inlineCallbacks
def test_broadcast_in_a_mesh_is_delivered_once_and_not_to_its_origin(overlay):
    first = yield overlay.start()
    nodes = [first]
    for _ in range(5):
        nodes.append((yield overlay.start(join=first)))
    yield waitFor(lambda: all(len(n.peers) == 5 for n in nodes), what="mesh")
    nodes[2].broadcast("hi all")
    others = [n for n in nodes if n is not nodes[2]]
    yield waitFor(lambda: all(overlay.recorder(n).messages for n in others))
    # Give duplicates a chance to arrive, then check none was delivered.
    yield waitFor(lambda: sum(n.stats.broadcastDuplicates for n in nodes) >= 5,
                  what="flooded duplicates")
    for n in others:
        assert overlay.recorder(n).bodies() == ["hi all"]
    assert overlay.recorder(nodes[2]).messages == []


@pytest_twisted.inlineCallbacks
def test_simultaneous_dials_leave_one_connection(overlay):
    a = yield overlay.start(autoConnect=False)
    b = yield overlay.start(autoConnect=False)
    results = yield DeferredList([
        a.connect("127.0.0.1", b.listenPort),
        b.connect("127.0.0.1", a.listenPort)], consumeErrors=True)
    assert all(ok for ok, _ in results)
    yield waitFor(lambda: len(a.connections) == 1 and len(b.connections) == 1,
                  what="the duplicate connection to close")
    kept = a.peers.connection(b.nodeId)
    dialer = a.nodeId if kept.outbound else b.nodeId
    assert dialer == min(a.nodeId, b.nodeId)
    assert b.peers.connection(a.nodeId).outbound == (not kept.outbound)
    peer = yield a.send(b.nodeId, "still fine")
    assert peer.node_id == b.nodeId


@pytest_twisted.inlineCallbacks
def test_second_dial_by_the_same_node_keeps_the_first_connection(overlay):
    a = yield overlay.start(autoConnect=False)
    b = yield overlay.start(join=a, autoConnect=False)
    first = b.peers.connection(a.nodeId)
    # Another name for the same address makes a second connection.
    peer = yield b.connect("localhost", a.listenPort)
    assert peer.node_id == a.nodeId
    yield waitFor(lambda: len(a.connections) == 1 and len(b.connections) == 1,
                  what="the second connection to close")
    assert b.peers.connection(a.nodeId) is first
    assert overlay.recorder(a).disconnected == []
    assert overlay.recorder(b).disconnected == []


@pytest_twisted.inlineCallbacks
def test_a_crashed_peer_back_on_its_port_is_reconnected(overlay):
    # Over TLS: the node back on its port proves the same key.
    a = yield overlay.start(plaintext=False, **FAST)
    b = yield overlay.start(join=a, plaintext=False, **FAST)
    port = b.listenPort
    yield crash(b)
    yield waitFor(lambda: state(a, b) == RECONNECTING)
    again = Node(NodeConfig(listen=f"tcp:{port}:interface=127.0.0.1", **FAST),
                 key=b.key)
    overlay.nodes.append(again)
    again.startService()
    yield again.listening
    yield waitFor(lambda: again.nodeId in a.peers, what="a to redial b")
    assert state(a, again) == CONNECTED
    assert a.membership.links.get(b.nodeId) is not None  # the link owns it
