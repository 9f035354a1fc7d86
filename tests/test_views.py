"""
Unit tests of L{p2poverlay.views}: one JSON shape per record, the lists
the console and the web API share, and the console lines beside them.
"""

import json

import pytest
from twisted.internet.testing import MemoryReactorClock

from p2poverlay.commands import CommandInterpreter
from p2poverlay.events import ReceivedMessage
from p2poverlay.message import PROTOCOL_VERSION
from p2poverlay.node import Node, NodeConfig
from p2poverlay.reachability import PRIVATE
from p2poverlay.records import CONNECTED, DEAD, KNOWN, KnownPeer, PeerInfo
from p2poverlay.views import (
    describeSender, dhtLine, formatMessage, knownLines, knownPeerView, knownView,
    keyLine, messageView, nodeView, peersLines, peersView, peerView,
)

from test_console import BOB, CAROL, DAVE, addPeer
from helpers import UNOBSERVED_VIEW

NODE_KEYS = ["node_id", "name", "address", "host", "port", "state", "since",
             "last_seen", "next_attempt", "direction", "role", "verified",
             "fingerprint", "link", "relay"]


@pytest.fixture
def node():
    return Node(NodeConfig(name="me"), reactor=MemoryReactorClock())


def run(node, line):
    replies = []
    CommandInterpreter(node, lambda: None).execute(line).addCallback(
        replies.append)
    return replies[0]


def test_one_shape_for_a_node_and_its_state(node):
    node.reactor.advance(1000)
    addPeer(node, BOB, 9000, "bob")
    book = node.addressBook
    book.learn(CAROL, "10.0.0.3", 9003, "carol", lastSeen=500.0)
    book.setState(CAROL, DEAD)
    book.learn(DAVE, "10.0.0.4", 9004, "")
    views = {view["node_id"]: view for view in knownView(node)}
    assert all(list(view) == NODE_KEYS for view in views.values())
    bob, carol, dave = views[BOB], views[CAROL], views[DAVE]
    assert (bob["state"], bob["direction"], bob["role"]) == (
        CONNECTED, "inbound", "neighbour")
    assert bob["address"] == "127.0.0.1:9000" and bob["last_seen"] == 1000.0
    assert (carol["state"], carol["direction"], carol["role"]) == (
        DEAD, None, None)
    assert carol["last_seen"] == 500.0 and carol["next_attempt"] is None
    assert dave["state"] == KNOWN and dave["last_seen"] is None
    assert json.loads(json.dumps(list(views.values()))) == list(views.values())


def test_a_connected_view_extends_the_peer_view(node):
    peer = PeerInfo(BOB, "::1", 9000, "bob", "outbound", 5.0)
    known = KnownPeer(BOB, "::1", 9000, "bob", CONNECTED, 5.0, 5.0)
    view = knownPeerView(known, peer)
    assert view == dict(peerView(peer), last_seen=5.0, next_attempt=None)
    assert view["address"] == "[::1]:9000"


def test_peersView_is_what_the_peers_command_lists(node):
    addPeer(node, BOB, 9000, "bob")
    node.addressBook.learn(CAROL, "10.0.0.3", 9003, "", lastSeen=5.0)
    node.addressBook.setState(CAROL, DEAD)
    node.addressBook.learn(DAVE, "10.0.0.4", 9004, "")  # Only heard of.
    reply = run(node, "peers")
    assert reply.result == {"peers": peersView(node)}
    assert reply.lines == peersLines(node)
    assert [p["node_id"] for p in peersView(node)] == [BOB, CAROL]
    assert all(list(view) == NODE_KEYS for view in peersView(node))


def test_knownView_is_what_the_known_command_lists(node):
    addPeer(node, BOB, 9000, "bob")
    node.addressBook.learn(DAVE, "10.0.0.4", 9004, "")
    reply = run(node, "known")
    assert reply.result == {"known": knownView(node)}
    assert reply.lines == knownLines(node)


def test_a_connected_peer_the_book_lost_is_still_listed(node):
    addPeer(node, BOB, 9000, "bob")
    node.addressBook.forget(BOB)
    (known,) = knownView(node)
    assert known["node_id"] == BOB and known["state"] == CONNECTED
    assert known["last_seen"] is None and known["direction"] == "inbound"
    count, line = knownLines(node)
    assert count == "1 node known" and line.endswith(" connected")
    assert [p["node_id"] for p in peersView(node)] == [BOB]


def test_nodeView(node):
    addPeer(node, BOB, 9000, "bob")
    assert nodeView(node) == {
        "node_id": node.nodeId, "name": "me", "address": None, "port": 0,
        "uptime": 0.0, "protocol_version": PROTOCOL_VERSION, "peers": 1,
        "fingerprint": node.key.fingerprint, "tls": True,
        "dht": {"state": "joining", "contacts": 1},
        "reachability": UNOBSERVED_VIEW}
    assert node.key.fingerprint.startswith("SHA256:")
    assert keyLine(node) == (f"  key:     {node.key.fingerprint}; "
                             f"peer links: TLS 1.3")


def test_the_dht_line_says_how_far_the_node_is_in_the_dht(node):
    assert dhtLine(node) == "  dht:     0 nodes in its table, not joined"
    addPeer(node, BOB, 9000, "bob")
    assert dhtLine(node) == "  dht:     1 node in its table, joining"
    node.dht.findable = True  # what the end of its own lookup sets
    assert dhtLine(node) == "  dht:     1 node in its table, findable"
    off = Node(NodeConfig(dht=False), reactor=MemoryReactorClock())
    assert dhtLine(off) == "  dht:     off"
    assert nodeView(off)["dht"] is None


def test_a_private_node_is_findable_once_its_relayed_record_is_stored(node):
    addPeer(node, BOB, 9000, "bob")
    node.dht.findable = True
    node.reachability.state = PRIVATE
    assert dhtLine(node).endswith(", joining"), "no table can hold it"
    node.reach.rendezvous.published = object()
    assert dhtLine(node).endswith(", findable")


def test_a_message_from_a_node_that_is_not_a_peer():
    via = PeerInfo(BOB, "127.0.0.1", 9000, "bob", "inbound", 1.0)
    message = ReceivedMessage("broadcast", "m" * 32, "far", DAVE, "dave",
                              None, via)
    assert describeSender(message) == "da4e0000 'dave', via 127.0.0.1:9000"
    assert formatMessage(message) == (
        "[broadcast] da4e0000 'dave', via 127.0.0.1:9000: far")
    view = messageView(message)
    assert view["sender"] is None and view["sender_id"] == DAVE
    assert view["via"] == peerView(via) and view["message_id"] == "m" * 32
