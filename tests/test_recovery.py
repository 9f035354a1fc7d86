"""
Failure detection, reconnection and persistence: Nodes in one reactor over
loopback TCP, with short timings.
"""

import json

import pytest_twisted
from twisted.internet.defer import DeferredList

from p2poverlay.records import CONNECTED, LEFT, RECONNECTING
from p2poverlay import Node, NodeConfig
from p2poverlay.store import NodeStore
from helpers import address, crash, waitFor

FAST = dict(pingInterval=0.1, peerTimeout=0.6, reconnectInitialDelay=0.05,
            reconnectMaxDelay=0.3, forgetAfter=1.5)


def state(node, other):
    entry = node.membership.book.get(other.nodeId)
    return entry.state if entry else None


@pytest_twisted.inlineCallbacks
def test_an_aborted_connection_is_redialed(overlay):
    a = yield overlay.start(**FAST)
    b = yield overlay.start(join=a, **FAST)
    a.peers.connection(b.nodeId).transport.abortConnection()
    recorder = overlay.recorder(a)
    yield waitFor(lambda: recorder.disconnected, what="a to lose b")
    yield waitFor(lambda: len(recorder.connected) == 2 and b.nodeId in a.peers
                  and a.nodeId in b.peers, what="the link to come back")
    assert state(a, b) == state(b, a) == CONNECTED
    peer = yield a.send(b.nodeId, "after the reconnect")
    assert peer.node_id == b.nodeId
    # Exactly one connection each, and no link left running.
    yield waitFor(lambda: len(a.connections) == len(b.connections) == 1)
    assert overlay.recorder(b).bodies() == ["after the reconnect"]


@pytest_twisted.inlineCallbacks
def test_a_crashed_peer_is_redialed_then_forgotten(overlay):
    a = yield overlay.start(**FAST)
    b = yield overlay.start(join=a, **FAST)
    yield crash(b)
    yield waitFor(lambda: state(a, b) == RECONNECTING
                  and a.membership.book.get(b.nodeId).next_attempt is not None,
                  what="a to wait for its next try")
    assert b.nodeId in a.membership.links
    yield waitFor(lambda: state(a, b) is None, timeout=FAST["forgetAfter"] + 5,
                  what="a to forget b")
    assert a.membership.links == {}


@pytest_twisted.inlineCallbacks
def test_a_frozen_peer_is_dropped_by_the_timeout(overlay):
    a = yield overlay.start(**FAST)
    b = yield overlay.start(join=a, **FAST)
    # b stops reading and answering, but its socket stays open.
    connection = b.peers.connection(a.nodeId)
    connection.transport.stopReading()
    b.membership._liveness.stop()
    recorder = overlay.recorder(a)
    yield waitFor(lambda: recorder.disconnected, what="a to time b out")
    (peer, reason), = recorder.disconnected[:1]
    assert peer.node_id == b.nodeId
    assert reason.startswith("no response for ")
    if connection.transport.fileno() != -1:
        connection.transport.startReading()  # let b's stop see it close


@pytest_twisted.inlineCallbacks
def test_a_crashed_peer_back_on_its_port_is_reconnected(overlay):
    a = yield overlay.start(**FAST)
    b = yield overlay.start(join=a, **FAST)
    port = b.listenPort
    yield crash(b)
    yield waitFor(lambda: state(a, b) == RECONNECTING)
    again = Node(NodeConfig(listen=f"tcp:{port}:interface=127.0.0.1", **FAST),
                 nodeId=b.nodeId)
    overlay.nodes.append(again)
    again.startService()
    yield again.listening
    yield waitFor(lambda: again.nodeId in a.peers, what="a to redial b")
    assert state(a, again) == CONNECTED
    assert a.membership.links.get(b.nodeId) is not None  # the link owns it


@pytest_twisted.inlineCallbacks
def test_a_leaving_peer_is_not_chased_and_is_welcomed_back(overlay):
    a = yield overlay.start(**FAST)
    b = yield overlay.start(join=a, **FAST)
    yield b.stopService()
    yield waitFor(lambda: state(a, b) == LEFT, what="a to see b leave")
    assert a.membership.links == {}
    back = yield overlay.start(join=a, **FAST)
    peer = yield back.send(address(a), "hello again")
    assert peer.node_id == a.nodeId


@pytest_twisted.inlineCallbacks
def test_a_restarted_node_keeps_its_id_and_rejoins_from_saved_peers(
        overlay, tmp_path):
    q = yield overlay.start(**FAST)
    r = yield overlay.start(join=q, **FAST)
    store = NodeStore(str(tmp_path / "p"))
    store.open()
    p = Node(NodeConfig(listen="tcp:0:interface=127.0.0.1",
                        join=[("127.0.0.1", q.listenPort)], **FAST),
             store=store)
    overlay.nodes.append(p)
    p.startService()
    yield waitFor(lambda: len(p.peers) == 2, what="p to meet q and r")
    yield p.stopService()
    store.close()
    saved = json.loads((tmp_path / "p" / "peers.json").read_text())
    assert {e["node_id"] for e in saved["peers"]} == {q.nodeId, r.nodeId}

    store = NodeStore(str(tmp_path / "p"))
    store.open()
    again = Node(NodeConfig(listen="tcp:0:interface=127.0.0.1", **FAST),
                 store=store)
    overlay.nodes.append(again)
    again.startService()
    assert again.nodeId == p.nodeId
    yield waitFor(lambda: len(again.peers) == 2, what="saved peers redialed")
    yield waitFor(lambda: again.nodeId in q.peers and again.nodeId in r.peers)
    yield again.stopService()
    store.close()


@pytest_twisted.inlineCallbacks
def test_corrupt_saved_peers_give_a_fresh_start(overlay, tmp_path):
    directory = tmp_path / "c"
    directory.mkdir()
    (directory / "peers.json").write_bytes(b"\x00{not json")
    store = NodeStore(str(directory))
    store.open()
    node = Node(NodeConfig(listen="tcp:0:interface=127.0.0.1", **FAST),
                store=store)
    overlay.nodes.append(node)
    node.startService()
    yield node.listening
    assert len(node.membership.book) == 0
    other = yield overlay.start(join=node, **FAST)
    assert other.nodeId in node.peers
    yield node.stopService()
    store.close()


@pytest_twisted.inlineCallbacks
def test_broadcasts_reach_every_survivor_when_3_of_10_die(overlay):
    # minPeers=9: every node a neighbour of every other.
    first = yield overlay.start(minPeers=9, **FAST)
    nodes = [first]
    for _ in range(9):
        nodes.append((yield overlay.start(join=first, minPeers=9, **FAST)))
    yield waitFor(lambda: all(len(n.peers) == 9 for n in nodes),
                  timeout=15, what="a full mesh of 10")
    dead, survivors = nodes[2:5], nodes[:2] + nodes[5:]
    yield DeferredList([crash(n) for n in dead])
    yield waitFor(lambda: all(len(n.peers) == 6 for n in survivors),
                  timeout=10, what="survivors to drop the dead")
    for origin in survivors:
        origin.broadcast(f"from {origin.shortId}")
    expected = {n: {f"from {o.shortId}" for o in survivors if o is not n}
                for n in survivors}
    yield waitFor(lambda: all(
        set(overlay.recorder(n).bodies("broadcast")) == expected[n]
        for n in survivors), timeout=10, what="every broadcast everywhere")
    for n in survivors:
        bodies = overlay.recorder(n).bodies("broadcast")
        assert len(bodies) == len(set(bodies)) == 6


@pytest_twisted.inlineCallbacks
def test_ten_thousand_direct_messages_arrive_complete_and_in_order(overlay):
    a = yield overlay.start()
    b = yield overlay.start(join=a)
    count = 10_000
    sends = [a.send(b.nodeId, f"{i:05d}") for i in range(count)]
    results = yield DeferredList(sends, consumeErrors=True)
    failures = [r for ok, r in results if not ok]
    assert failures == []
    assert overlay.recorder(b).bodies("direct") == [
        f"{i:05d}" for i in range(count)]

