"""
Failure detection, reconnection and persistence: Nodes in a memory
overlay, with short timings, on a virtual clock.
"""

import json

from twisted.internet.defer import DeferredList

from p2poverlay.records import CONNECTED, LEFT, RECONNECTING
from p2poverlay.store import NodeStore
from memoverlay import (
    address, bodies, connectedCount, disconnected, memoryOverlay, outcome,
    start,
)

FAST = dict(pingInterval=0.1, peerTimeout=0.6, reconnectInitialDelay=0.05,
            reconnectMaxDelay=0.3, forgetAfter=1.5)


def state(node, other):
    entry = node.membership.book.get(other.nodeId)
    return entry.state if entry else None


def test_an_aborted_connection_is_redialed():
    overlay = memoryOverlay(seed=1, **FAST)
    a = start(overlay)
    b = start(overlay, join=a)
    a.peers.connection(b.nodeId).transport.abortConnection()
    overlay.runUntil(lambda: disconnected(overlay, a), 10, "a to lose b")
    overlay.runUntil(lambda: connectedCount(overlay, a) == 2
                     and b.nodeId in a.peers and a.nodeId in b.peers, 10,
                     "the link to come back")
    assert state(a, b) == state(b, a) == CONNECTED
    peer = outcome(overlay, a.send(b.nodeId, "after the reconnect"))
    assert peer.node_id == b.nodeId
    # Exactly one connection each, and no link left running.
    overlay.runUntil(lambda: len(a.connections) == len(b.connections) == 1,
                     10, "one connection each")
    assert bodies(overlay, b) == ["after the reconnect"]


def test_a_crashed_peer_is_redialed_then_forgotten():
    overlay = memoryOverlay(seed=2, **FAST)
    a = start(overlay)
    b = start(overlay, join=a)
    overlay.crash(b)
    overlay.runUntil(lambda: state(a, b) == RECONNECTING
                     and a.membership.book.get(b.nodeId).next_attempt
                     is not None, 10, "a to wait for its next try")
    assert b.nodeId in a.membership.links
    overlay.runUntil(lambda: state(a, b) is None, FAST["forgetAfter"] + 5,
                     "a to forget b")
    assert a.membership.links == {}


def test_a_frozen_peer_is_dropped_by_the_timeout():
    overlay = memoryOverlay(seed=3, **FAST)
    a = start(overlay)
    b = start(overlay, join=a)
    # b stops reading and answering, but its connection stays open.
    connection = b.peers.connection(a.nodeId)
    connection.transport.pauseProducing()
    b.membership._liveness.stop()
    overlay.runUntil(lambda: disconnected(overlay, a), 10, "a to time b out")
    (peer, reason), = disconnected(overlay, a)[:1]
    assert peer == b.config.name
    assert reason.startswith("no response for ")


def test_a_leaving_peer_is_not_chased_and_is_welcomed_back():
    overlay = memoryOverlay(seed=4, **FAST)
    a = start(overlay)
    b = start(overlay, join=a)
    outcome(overlay, b.stopService())
    overlay.runUntil(lambda: state(a, b) == LEFT, 10, "a to see b leave")
    assert a.membership.links == {}
    back = start(overlay, join=a)
    peer = outcome(overlay, back.send(address(overlay, a), "hello again"))
    assert peer.node_id == a.nodeId


def test_a_restarted_node_keeps_its_id_and_rejoins_from_saved_peers(tmp_path):
    overlay = memoryOverlay(seed=5, **FAST)
    q = start(overlay)
    r = start(overlay, join=q)
    store = NodeStore(str(tmp_path / "p"))
    store.open()
    p = overlay.addNode(join=q, store=store)
    overlay.runUntil(lambda: len(p.peers) == 2, 10, "p to meet q and r")
    outcome(overlay, p.stopService())
    store.close()
    saved = json.loads((tmp_path / "p" / "peers.json").read_text())
    assert {e["node_id"] for e in saved["peers"]} == {q.nodeId, r.nodeId}

    store = NodeStore(str(tmp_path / "p"))
    store.open()
    again = overlay.restart(p, store=store, join=())
    assert again.nodeId == p.nodeId
    overlay.runUntil(lambda: len(again.peers) == 2, 10,
                     "saved peers redialed")
    overlay.runUntil(lambda: again.nodeId in q.peers
                     and again.nodeId in r.peers, 10, "q and r to take p")
    outcome(overlay, again.stopService())
    store.close()


def test_corrupt_saved_peers_give_a_fresh_start(tmp_path):
    overlay = memoryOverlay(seed=6, **FAST)
    directory = tmp_path / "c"
    directory.mkdir()
    (directory / "peers.json").write_bytes(b"\x00{not json")
    store = NodeStore(str(directory))
    store.open()
    node = overlay.addNode(store=store)
    assert len(node.membership.book) == 0
    other = start(overlay, join=node)
    assert other.nodeId in node.peers
    outcome(overlay, node.stopService())
    store.close()


def test_broadcasts_reach_every_survivor_when_3_of_10_die():
    overlay = memoryOverlay(seed=7, **FAST)
    # minPeers=9: every node a neighbour of every other.
    first = start(overlay, minPeers=9)
    nodes = [first]
    for _ in range(9):
        nodes.append(start(overlay, join=first, minPeers=9))
    overlay.runUntil(lambda: all(len(n.peers) == 9 for n in nodes), 15,
                     "a full mesh of 10")
    dead, survivors = nodes[2:5], nodes[:2] + nodes[5:]
    outcome(overlay, DeferredList([n.abort() for n in dead]))
    overlay.runUntil(lambda: all(len(n.peers) == 6 for n in survivors), 10,
                     "survivors to drop the dead")
    for origin in survivors:
        origin.broadcast(f"from {origin.shortId}")
    expected = {n: {f"from {o.shortId}" for o in survivors if o is not n}
                for n in survivors}
    overlay.runUntil(lambda: all(
        set(bodies(overlay, n, "broadcast")) == expected[n]
        for n in survivors), 10, "every broadcast everywhere")
    for n in survivors:
        got = bodies(overlay, n, "broadcast")
        assert len(got) == len(set(got)) == 6


def test_ten_thousand_direct_messages_arrive_complete_and_in_order():
    overlay = memoryOverlay(seed=8)
    a = start(overlay)
    b = start(overlay, join=a)
    count = 10_000
    sends = [a.send(b.nodeId, f"{i:05d}") for i in range(count)]
    results = outcome(overlay, DeferredList(sends, consumeErrors=True), 60,
                      "every confirmation")
    failures = [r for ok, r in results if not ok]
    assert failures == []
    assert bodies(overlay, b, "direct") == [f"{i:05d}" for i in range(count)]
