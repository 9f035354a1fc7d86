"""
Address news: a node that finds nobody can dial it withdraws the address
its first peers heard, and they stop telling others of it.
"""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet.testing import MemoryReactorClock

from p2poverlay import Node, NodeConfig
from p2poverlay.natwire import Address
from p2poverlay.reachability import PRIVATE
from helpers import PROMPT, waitFor
from memory import BOB, CAROL, established, send, written
from test_reachability import failDialBacks


@pytest.fixture
def node():
    return Node(NodeConfig(name="me", plaintext=True, dht=False),
                reactor=MemoryReactorClock())


def test_a_withdrawn_address_is_told_of_to_nobody(node):
    bob, _ = established(node, BOB, 9000)
    carol, _ = established(node, CAROL, 9001)
    exchange = node.topology.peerExchange
    assert BOB in [e.node_id for e in exchange.sample(CAROL, "127.0.0.1").peers]
    send(bob, Address(0))
    assert node.peers.get(BOB).port == 0 and bob.peer.port == 0
    assert node.addressBook.get(BOB).port == 0
    assert BOB not in [e.node_id
                       for e in exchange.sample(CAROL, "127.0.0.1").peers]
    # It may say a new one later.
    send(bob, Address(9100))
    assert node.peers.get(BOB).port == 9100
    assert not carol.closing


def test_a_forged_record_in_address_news_closes_that_link_only(node):
    bob, transport = established(node, BOB, 9000)
    carol, _ = established(node, CAROL, 9001)
    send(bob, Address(9000, "10.0.0.9", 5, "aa" * 32, "bb" * 64))
    assert bob.closing and not carol.closing
    assert "protocol error: address record" in written(transport)[-1].reason
    assert node.peers.get(CAROL).port == 9001


@pytest_twisted.inlineCallbacks
def test_a_node_found_private_tells_its_peers_over_tls(overlay):
    """
    Two peers fail to dial the node back (here: at a port nobody listens
    on): it is private, and both its peers hear over TLS that it has no
    address, in news its key stands behind.
    """
    a = yield overlay.start(name="a", plaintext=False)
    b = yield overlay.start(join=a, name="b", plaintext=False)
    c = yield overlay.start(join=a, name="c", plaintext=False)
    yield waitFor(lambda: b.nodeId in a.peers and c.nodeId in a.peers,
                  timeout=PROMPT, what="b and c connected to a")
    assert b.peers.get(a.nodeId).port == a.listenPort
    yield failDialBacks(a, b, c)
    assert a.reachability.state == PRIVATE
    yield waitFor(lambda: b.peers.get(a.nodeId).port == 0
                  and c.peers.get(a.nodeId).port == 0, timeout=PROMPT,
                  what="b and c told")
    assert b.addressBook.get(a.nodeId).port == 0
    assert a.nodeId in b.peers and a.nodeId in c.peers
