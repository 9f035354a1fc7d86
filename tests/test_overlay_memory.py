"""
Direct messages, broadcasts and leaving: Nodes in a memory overlay, on a
virtual clock.
"""

import pytest

from p2poverlay.errors import PeerUnreachable, SelfConnection, UnknownPeer
from memoverlay import (
    address, bodies, disconnected, memoryOverlay, outcome, start,
)


def connectedIds(node):
    return {p.node_id for p in node.peers.snapshot()}


def test_send_dials_an_unconnected_address():
    overlay = memoryOverlay(seed=1)
    a = start(overlay, autoConnect=False)
    b = start(overlay, autoConnect=False)
    assert len(a.peers) == 0
    peer = outcome(overlay, a.send(address(overlay, b), "hello"))
    assert peer.node_id == b.nodeId
    assert bodies(overlay, b) == ["hello"]
    assert connectedIds(a) == {b.nodeId}


def test_send_errors():
    overlay = memoryOverlay(seed=2)
    a = start(overlay)
    with pytest.raises(UnknownPeer):
        outcome(overlay, a.send("nobody", "x"))
    # A port nobody listens on: the listening port of a stopped node.
    gone = start(overlay)
    port = gone.listenPort
    outcome(overlay, gone.stopService())
    with pytest.raises(PeerUnreachable) as info:
        outcome(overlay, a.send(f"{overlay.host(gone.config.name)}:{port}",
                                "x"))
    assert "cannot reach" in str(info.value)


def test_join_own_address_is_ignored():
    overlay = memoryOverlay(seed=3)
    a = start(overlay)
    with pytest.raises(SelfConnection):
        outcome(overlay, a.join(overlay.host(a.config.name), a.listenPort))
    assert len(a.peers) == 0
    with pytest.raises(SelfConnection):
        outcome(overlay, a.send(address(overlay, a), "me?"))


def test_broadcast_reaches_every_node_of_a_line_exactly_once():
    overlay = memoryOverlay(seed=4)
    # A line of 6 nodes without discovery: messages need up to 5 hops.
    nodes = [start(overlay, autoConnect=False)]
    for _ in range(5):
        nodes.append(start(overlay, join=nodes[-1], autoConnect=False))
    assert [len(n.peers) for n in nodes] == [1, 2, 2, 2, 2, 1]
    for origin in (nodes[0], nodes[3]):
        messageId, neighbours = origin.broadcast(f"from {origin.shortId}")
    overlay.runUntil(lambda: all(
        len(bodies(overlay, n)) == 2 for n in nodes
        if n not in (nodes[0], nodes[3])), 10, "broadcasts everywhere")
    for n in nodes:
        got = bodies(overlay, n, "broadcast")
        expected = {f"from {o.shortId}" for o in (nodes[0], nodes[3])
                    if o is not n}
        assert sorted(got) == sorted(expected)
        assert len(got) == len(set(got))


def test_leaving_node_says_bye():
    overlay = memoryOverlay(seed=5)
    a = start(overlay)
    b = start(overlay, join=a)
    outcome(overlay, b.stopService())
    overlay.runUntil(lambda: len(a.peers) == 0, 10, "a to drop b")
    (peer, reason), = disconnected(overlay, a)
    assert peer == b.config.name
    assert reason == "node shutting down"
