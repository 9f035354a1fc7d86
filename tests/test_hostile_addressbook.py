"""
The address book under a flood of fake addresses, over real loopback
sockets: a peer on 127.0.0.9 pushes out only its own entries, never nodes
this node connected to nor other sources' share, in the book, in the saved
peers.json and after a restart; a restarted node dials its old outbound
neighbours first (its anchors).
"""

import json
import os

import pytest_twisted
from twisted.internet.defer import inlineCallbacks

from p2poverlay.message import Hello, PeerAddress, Peers, Ping, newNodeId
from p2poverlay.records import OUTBOUND
from p2poverlay.store import ANCHORS_FILE, PEERS_FILE, NodeStore
from helpers import PROMPT, waitFor

ATTACKER = "127.0.0.9"
ATTACKERS = (ATTACKER, "127.0.0.10", "127.0.0.11")
HONEST_SOURCES = ("127.0.0.2", "127.0.0.3")
BOOK_SIZE = 100  # 25 tried, 75 new, 25 of them from one source at most


def opened(directory):
    store = NodeStore(str(directory))
    store.open()
    return store


@inlineCallbacks
def rawPeer(raw, node, source, name):
    """A raw client from C{source} through its handshake with C{node}."""
    client = yield raw(node, source)
    nodeId = newNodeId()
    client.send(Hello(nodeId, 1, 0, name))
    yield waitFor(lambda: nodeId in node.peers, timeout=PROMPT,
                  what=f"the handshake of {name}")
    return client


@inlineCallbacks
def handled(client):
    """Wait until C{node} has handled all C{client} sent (a PING's PONG)."""
    count = client.types().count("PONG")
    client.send(Ping(count + 1))
    yield waitFor(lambda: client.types().count("PONG") > count,
                  timeout=PROMPT, what="what was sent to be handled")


def addresses(prefix, count, start=0):
    return tuple(PeerAddress(newNodeId(), f"10.{prefix}.{i // 250}.{i % 250 + 1}",
                             9000) for i in range(start, start + count))


def savedPeers(directory):
    with open(os.path.join(directory, PEERS_FILE)) as f:
        return {entry["node_id"]: entry for entry in json.load(f)["peers"]}


@pytest_twisted.inlineCallbacks
def test_a_flood_of_fakes_pushes_out_only_its_own(overlay, raw, tmp_path):
    directory = tmp_path / "t"
    store = opened(directory)
    t = yield overlay.start(name="t", store=store, autoConnect=False,
                            maxPeersPerExchange=1000,
                            addressBookSize=BOOK_SIZE)
    book = t.addressBook
    # Nodes t has connected to: two still connected, one gone.
    a = yield overlay.start(join=t, name="a", autoConnect=False)
    b = yield overlay.start(join=t, name="b", autoConnect=False)
    gone = yield overlay.start(join=t, name="gone", autoConnect=False)
    yield gone.stopService()
    yield waitFor(lambda: gone.nodeId not in t.peers, timeout=PROMPT,
                  what="the node that left")
    tried = {a.nodeId, b.nodeId, gone.nodeId}
    # Nodes t only heard of, from two honest peers.
    honest = set()
    for i, source in enumerate(HONEST_SOURCES):
        client = yield rawPeer(raw, t, source, f"honest{i}")
        told = addresses(i + 1, 10)
        client.send(Peers(told))
        yield handled(client)
        honest |= {entry.node_id for entry in told}
    assert honest <= {e.node_id for e in book.all()}

    # Count what the flood gets past the peer-exchange budget.
    learned = []
    learn = book.learn

    def countingLearn(*args, **kwargs):
        if kwargs.get("source") in ATTACKERS:
            learned.append(args[0])
        return learn(*args, **kwargs)
    book.learn = countingLearn

    # 127.0.0.9 floods; two accomplices make sure the table is full.
    for number, source in enumerate(ATTACKERS):
        attacker = yield rawPeer(raw, t, source, f"flooder{number}")
        for start in range(0, 3000, 500):  # 500 entries fit a line
            attacker.send(Peers(addresses(9 + number, 500, start)))
        yield handled(attacker)
    # Many times the new table's room went in...
    assert len(learned) > 5 * book.newSize, len(learned)
    # ... and pushed out none of the others.
    known = {e.node_id for e in book.all()}
    assert honest <= known, len(honest - known)
    assert tried <= {e.node_id for e in book.tried()}
    counts = book.sources()
    assert sum(counts.values()) == book.newSize
    assert counts[ATTACKER] <= book.sourceSize  # a third of the new table
    assert sum(counts[source] for source in ATTACKERS) == \
        book.newSize - len(honest)
    assert len(book) <= BOOK_SIZE

    # What is saved is the same.
    t.membership.save()
    saved = savedPeers(directory)
    assert honest | tried <= set(saved)
    assert all(saved[nodeId]["tried"] for nodeId in tried)
    assert {saved[nodeId]["source"] for nodeId in honest} == set(HONEST_SOURCES)
    fakes = [e for e in saved.values() if e["source"] in ATTACKERS]
    assert len(fakes) == book.newSize - len(honest)

    # And so is what a restart reads back.
    yield t.stopService()
    store.close()
    store = opened(directory)
    try:
        again = yield overlay.start(name="t", store=store, autoConnect=False,
                                    addressBookSize=BOOK_SIZE)
        assert again.nodeId == t.nodeId
        known = {e.node_id for e in again.addressBook.all()}
        assert honest | tried <= known
        assert tried <= {e.node_id for e in again.addressBook.tried()}
        assert sum(again.addressBook.sources()[source]
                   for source in ATTACKERS) == len(fakes)
        yield again.stopService()
    finally:
        store.close()


@pytest_twisted.inlineCallbacks
def test_a_restarted_node_dials_its_old_outbound_neighbour_first(
        overlay, tmp_path):
    directory = tmp_path / "n"
    store = opened(directory)
    n = yield overlay.start(name="n", store=store, autoConnect=False)
    anchor = yield overlay.start(name="anchor", autoConnect=False)
    yield n.join("127.0.0.1", anchor.listenPort)
    # Nodes n was connected to as well, all dialed by them.
    others = []
    for i in range(5):
        other = yield overlay.start(join=n, name=f"other{i}",
                                    autoConnect=False)
        others.append(other)
    assert len(n.addressBook.tried()) == 6
    yield n.stopService()
    store.close()
    with open(directory / ANCHORS_FILE) as f:
        assert [e["node_id"] for e in json.load(f)["peers"]] == [anchor.nodeId]

    store = opened(directory)
    try:
        again = yield overlay.start(name="n", store=store, minPeers=1)
        # The anchors file is read once.
        assert not (directory / ANCHORS_FILE).exists()
        connected = overlay.recorder(again).connected
        yield waitFor(lambda: any(p.direction == OUTBOUND for p in connected),
                      timeout=PROMPT, what="the restarted node to dial")
        first = next(p for p in connected if p.direction == OUTBOUND)
        assert first.node_id == anchor.nodeId
        assert again.addressBook.anchors() == []
        yield again.stopService()
    finally:
        store.close()
