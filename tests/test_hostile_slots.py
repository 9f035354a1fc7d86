"""
Slots and blame, over real loopback sockets (127.0.0.x sources play
distinct hosts; the nodes listen on 127.0.0.1): one address cannot take
every slot or lock others out with idle handshakes, a full node makes room
by evicting the youngest inbound peer of the most crowded address group
while keeping the long-lived, and misbehaviour is held against the
connection, its node id and its address, never against the honest
connections that share the address.
"""

import pytest_twisted
from twisted.internet.defer import inlineCallbacks

from p2poverlay import admission
from p2poverlay.message import NEIGHBOUR, UNSAID, Hello, Ping, newNodeId
from helpers import PROMPT, waitFor
from test_resilience import assertByeLast, assertMessagesFlow, pause

SYBIL = "127.0.0.9"


@inlineCallbacks
def handshake(raw, node, source, name, role=NEIGHBOUR, nodeId=None,
              neighbours=UNSAID):
    """A raw client from C{source} that said HELLO (that it has
    C{neighbours}); fires once the node answered it (with its HELLO, a BYE,
    or both)."""
    client = yield raw(node, source)
    nodeId = nodeId or newNodeId()
    client.send(Hello(nodeId, 1, 0, name, role, neighbours=neighbours))
    yield waitFor(lambda: nodeId in node.peers or client.closed,
                  timeout=PROMPT, what=f"the node to answer {name}")
    return client, nodeId


def byeReason(client):
    byes = [line for line in client.lines() if line["type"] == "BYE"]
    return byes[-1]["reason"] if byes else None


@pytest_twisted.inlineCallbacks
def test_one_address_gets_only_its_share_of_neighbour_slots(overlay, raw):
    t = yield overlay.start(name="t", maxPeers=8, autoConnect=False)
    sybils = []
    for i in range(8):
        sybils.append((yield handshake(raw, t, SYBIL, f"sybil{i}")))
    kept = [nodeId for _, nodeId in sybils if nodeId in t.peers]
    assert len(kept) == t.config.maxNeighboursPerAddress
    for client, nodeId in sybils:
        if nodeId not in kept:
            yield waitFor(lambda client=client: client.closed, timeout=PROMPT)
            assert byeReason(client) == "too many neighbours from your address"
    # The slots left are for everyone else: other hosts, and this host.
    for i, source in enumerate(("127.0.0.2", "127.0.0.3")):
        _, honestId = yield handshake(raw, t, source, f"honest{i}")
        assert honestId in t.peers
    a = yield overlay.start(join=t, name="a", autoConnect=False)
    yield assertMessagesFlow(overlay, a, t)


@pytest_twisted.inlineCallbacks
def test_a_full_node_evicts_the_youngest_of_a_crowded_group(overlay, raw):
    t = yield overlay.start(name="t", maxPeers=4, minPeers=1,
                            autoConnect=False)
    sybils = []
    for i in range(4):
        sybils.append((yield handshake(raw, t, SYBIL, f"sybil{i}")))
        yield pause(0.02)  # Distinct connection times, in this order.
    assert all(nodeId in t.peers for _, nodeId in sybils)
    # Full: a newcomer from another host takes the youngest sybil's slot.
    first, firstId = yield handshake(raw, t, "127.0.0.2", "first")
    youngest, youngestId = sybils[-1]
    yield waitFor(lambda: youngest.closed, timeout=PROMPT,
                  what="the youngest sybil evicted")
    assert firstId in t.peers and youngestId not in t.peers
    assertByeLast(youngest, t, "evicted to make room for a newcomer")
    second, secondId = yield handshake(raw, t, "127.0.0.3", "second")
    yield waitFor(lambda: sybils[-2][0].closed, timeout=PROMPT,
                  what="the next youngest sybil evicted")
    assert secondId in t.peers
    # Now no group is crowded and the oldest are protected: a third
    # newcomer is turned away, not let in at a long-lived peer's cost.
    third, thirdId = yield handshake(raw, t, "127.0.0.4", "third")
    yield waitFor(lambda: third.closed, timeout=PROMPT)
    assert byeReason(third) == "full"
    assert {sybils[0][1], sybils[1][1], firstId, secondId} == {
        info.node_id for info in t.peers.snapshot()}


@pytest_twisted.inlineCallbacks
def test_a_full_node_takes_in_a_node_in_need(overlay, raw):
    """A node with fewer than minPeers neighbours gets the slot of a young
    inbound neighbour that has more than minPeers; no other does."""
    t = yield overlay.start(name="t", maxPeers=4, minPeers=2,
                            autoConnect=False)
    held = []
    for i, count in enumerate((7, 5, 2, 3)):
        held.append((yield handshake(raw, t, f"127.0.0.{i + 2}", f"n{i}",
                                     neighbours=count)))
        yield pause(0.02)  # Distinct connection times, in this order.
    # The latest word counts: a PING says the youngest has 6 now.
    held[3][0].send(Ping(1, neighbours=6))
    busy, busyId = yield handshake(raw, t, "127.0.0.7", "busy", neighbours=2)
    yield waitFor(lambda: busy.closed, timeout=PROMPT)
    assert byeReason(busy) == "full"  # not in need: turned away
    needy, needyId = yield handshake(raw, t, "127.0.0.8", "needy",
                                     neighbours=0)
    # Of those with more than minPeers (n0, n1, n3), the longest connected
    # is protected; of the others, the one with the most neighbours goes.
    yield waitFor(lambda: held[3][0].closed, timeout=PROMPT,
                  what="n3 to give up its slot")
    assertByeLast(held[3][0], t, "evicted to make room for a node in need")
    assert needyId in t.peers and not needy.closed
    assert all(nodeId in t.peers for _, nodeId in held[:3])


@pytest_twisted.inlineCallbacks
def test_a_node_in_need_is_turned_away_when_nobody_can_spare_a_slot(
        overlay, raw):
    t = yield overlay.start(name="t", maxPeers=2, minPeers=2,
                            autoConnect=False)
    for i in range(2):
        yield handshake(raw, t, f"127.0.0.{i + 2}", f"n{i}", neighbours=2)
    needy, _ = yield handshake(raw, t, "127.0.0.5", "needy", neighbours=0)
    yield waitFor(lambda: needy.closed, timeout=PROMPT)
    assert byeReason(needy) == "full"
    assert len(t.peers) == 2


@pytest_twisted.inlineCallbacks
def test_idle_handshakes_from_one_address_lock_nobody_out(overlay, raw):
    t = yield overlay.start(name="t", maxInbound=8, autoConnect=False)
    idle = []
    for _ in range(20):
        idle.append((yield raw(t, SYBIL)))
    yield waitFor(lambda: sum(not c.closed for c in idle)
                  <= t.config.maxPendingPerAddress, timeout=PROMPT,
                  what="the idle sockets past the limit closed")
    reasons = {byeReason(c) for c in idle if c.closed}
    assert reasons <= {"too many handshakes from your address",
                       "too many new connections from your address"}, reasons
    # Idle sockets from many addresses fill every inbound slot; each
    # newcomer then takes the place of the oldest idle one.
    crowd = []
    for i in range(10, 10 + t.config.maxInbound):
        crowd.append((yield raw(t, f"127.0.0.{i}")))
    _, honestId = yield handshake(raw, t, "127.0.0.2", "honest")
    assert honestId in t.peers
    a = yield overlay.start(join=t, name="a", autoConnect=False)
    yield assertMessagesFlow(overlay, a, t)


@pytest_twisted.inlineCallbacks
def test_new_connections_from_one_address_are_rate_limited(overlay, raw):
    t = yield overlay.start(name="t", connectionRatePerAddress=0.1,
                            connectionBurstPerAddress=3, autoConnect=False)
    clients = []
    for i in range(5):
        clients.append((yield handshake(raw, t, SYBIL, f"c{i}",
                                        role="direct")))
    accepted = [nodeId for _, nodeId in clients if nodeId in t.peers]
    assert len(accepted) == 3
    for client, _ in clients[3:]:
        assert byeReason(client) == "too many new connections from your address"
    # Another host is not held back by it.
    _, otherId = yield handshake(raw, t, "127.0.0.2", "other", role="direct")
    assert otherId in t.peers


@pytest_twisted.inlineCallbacks
def test_misbehaviour_bans_the_node_and_throttles_its_address(
        overlay, raw, monkeypatch):
    monkeypatch.setattr(admission, "BANNED_ADMIT_INTERVAL", 0.5)
    t = yield overlay.start(name="t", autoConnect=False)
    honest, honestId = yield handshake(raw, t, SYBIL, "honest")
    offenderId = newNodeId()
    for _ in range(2):
        offender, _ = yield handshake(raw, t, SYBIL, "offender",
                                      nodeId=offenderId)
        offender.send(Hello(offenderId, 1, 0, "offender", NEIGHBOUR))
        yield waitFor(lambda offender=offender: offender.closed,
                      timeout=PROMPT, what="the offender cut off")
        assert byeReason(offender) == "protocol error: HELLO sent twice"
    assert t.connections.offenders.isBanned(offenderId)
    assert t.misbehaviour.isBanned(SYBIL)
    # At once, nobody new from the address; a while later, one at a time,
    # and the banned node id is refused after its HELLO.
    refused, _ = yield handshake(raw, t, SYBIL, "newcomer")
    assert refused.closed and refused.types() == ["BYE"]
    yield pause(0.6)
    again, _ = yield handshake(raw, t, "127.0.0.9", "offender",
                               nodeId=offenderId)
    yield waitFor(lambda: again.closed, timeout=PROMPT)
    assert byeReason(again) == "banned: protocol error: HELLO sent twice"
    yield pause(0.6)
    _, newcomerId = yield handshake(raw, t, SYBIL, "newcomer")
    assert newcomerId in t.peers
    # The honest connection on that address went on all along.
    honest.send(Ping(7))
    yield waitFor(lambda: "PONG" in honest.types(), timeout=PROMPT)
    assert honestId in t.peers and not honest.closed


@pytest_twisted.inlineCallbacks
def test_this_hosts_own_nodes_are_not_banned_for_one_of_them(overlay, raw):
    t = yield overlay.start(name="t", autoConnect=False)
    for _ in range(3):
        offender = yield raw(t, "127.0.0.1")
        offender.transport.write(b"garbage\n")
        yield waitFor(lambda offender=offender: offender.closed,
                      timeout=PROMPT, what="the offender cut off")
    assert not t.misbehaviour.isBanned("127.0.0.1")
    a = yield overlay.start(join=t, name="a", autoConnect=False)
    yield assertMessagesFlow(overlay, a, t)

