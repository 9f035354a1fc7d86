"""
Routing by id over real loopback TCP: a node never told of another finds
it by lookup and delivers to it (over TLS), and hostile DHT requests are
errors on their own link only.
"""

from __future__ import annotations

import json

import pytest_twisted

from p2poverlay.dht.keyspace import dhtIdOf
from p2poverlay.dht.wire import FindNode, FindValue, Nodes, Store
from p2poverlay.message import DIRECT, newMessageId, newNodeId
from p2poverlay.peeraddress import PeerAddress
from p2poverlay.reasons import CloseKind, CloseReason

from helpers import PROMPT, waitFor
from test_hostile import peer
from test_resilience import OTHER_HOST, assertMessagesFlow

CHAIN = dict(minPeers=1, maxPeers=2, autoConnect=False)


@pytest_twisted.inlineCallbacks
def chain(overlay, count, **settings):
    """Nodes n0 - n1 - ... each joined to the one before it only."""
    nodes = [(yield overlay.start(name="n0", **CHAIN, **settings))]
    for index in range(1, count):
        nodes.append((yield overlay.start(join=nodes[-1], name=f"n{index}",
                                          **CHAIN, **settings)))
    return nodes


@pytest_twisted.inlineCallbacks
def test_send_to_an_id_never_heard_of_finds_it_by_lookup_over_tls(overlay):
    nodes = yield chain(overlay, 5, plaintext=False)
    first, last = nodes[0], nodes[-1]
    yield waitFor(lambda: all(n.dht.lookups == 0 for n in nodes),
                  timeout=PROMPT, what="the nodes joining the DHT")
    # Whatever peer exchange and the DHT's own upkeep told the sender of
    # it, the sender forgets, and the link the upkeep made goes.
    link = first.peers.connection(last.nodeId)
    if link is not None:
        link.close(CloseReason(CloseKind.IDLE))
        yield waitFor(lambda: last.nodeId not in first.peers, timeout=PROMPT,
                      what="the upkeep's link closed")
    first.addressBook.forget(last.nodeId)
    assert first.reach.needsLookup(last.nodeId)
    info, lookup = yield first.reach.sendTelling(last.nodeId, "found you")
    assert info.node_id == last.nodeId
    assert lookup is not None and lookup.found.nodeId == last.nodeId
    assert lookup.rounds >= 1 and lookup.asked >= 1
    messages = overlay.recorder(last).messages
    assert [(m.body, m.sender_id) for m in messages] == [
        ("found you", first.nodeId)]
    # The link it took is a direct one: the overlay's shape is unchanged.
    assert last.nodeId not in {c.peer.node_id
                               for c in first.topology.neighbours()}


@pytest_twisted.inlineCallbacks
def test_find_node_is_answered_with_the_nearest_contacts(overlay, raw):
    nodes = yield chain(overlay, 4)
    hub = nodes[1]
    client, _ = yield peer(raw, hub, "asker", DIRECT)
    rid = newMessageId()
    target = nodes[3].nodeId
    client.send(FindNode(rid, f"{dhtIdOf(target):064x}"))
    yield waitFor(lambda: "NODES" in client.types(), timeout=PROMPT,
                  what="the answer")
    answer = next(m for m in client.lines() if m["type"] == "NODES")
    assert answer["rid"] == rid
    named = [entry["node_id"] for entry in answer["nodes"]]
    everyone = {n.nodeId for n in nodes} - {hub.nodeId}
    assert set(named) <= everyone and named
    assert named == sorted(named, key=lambda n: dhtIdOf(n) ^ dhtIdOf(target))


def rawLine(**fields) -> bytes:
    return json.dumps(fields).encode() + b"\n"


@pytest_twisted.inlineCallbacks
def test_a_malformed_find_node_closes_that_link_only(overlay, raw):
    t = yield overlay.start(name="t", autoConnect=False)
    a = yield overlay.start(join=t, name="a", autoConnect=False)
    offender, _ = yield peer(raw, t, "offender")
    offender.transport.write(rawLine(type="FIND_NODE", rid=newMessageId(),
                                     target="not an id"))
    yield waitFor(lambda: offender.closed, timeout=PROMPT, what="the close")
    bye = [m for m in offender.lines() if m["type"] == "BYE"]
    assert bye and "target" in bye[0]["reason"]
    yield assertMessagesFlow(overlay, a, t)


@pytest_twisted.inlineCallbacks
def test_an_answer_naming_too_many_nodes_closes_that_link_only(overlay, raw):
    t = yield overlay.start(name="t", autoConnect=False)
    a = yield overlay.start(join=t, name="a", autoConnect=False)
    offender, _ = yield peer(raw, t, "offender")
    flood = tuple(PeerAddress(newNodeId(), "10.9.9.9", 1 + i)
                  for i in range(40))
    offender.send(Nodes(newMessageId(), flood))
    yield waitFor(lambda: offender.closed, timeout=PROMPT, what="the close")
    assert "more than 32" in next(m for m in offender.lines()
                                  if m["type"] == "BYE")["reason"]
    yield assertMessagesFlow(overlay, a, t)


@pytest_twisted.inlineCallbacks
def test_an_answer_to_nothing_asked_is_ignored(overlay, raw):
    t = yield overlay.start(name="t", autoConnect=False)
    stray, strayId = yield peer(raw, t, "stray")
    stray.send(Nodes(newMessageId(), (PeerAddress(newNodeId(), "10.9.9.9",
                                                  9),)))
    probe, _ = yield peer(raw, t, "probe")
    assert not stray.closed and strayId in t.peers
    assert t.misbehaviour.score(OTHER_HOST) == 0
    assert len(t.dht.table) == 0  # nobody it heard from itself listens


@pytest_twisted.inlineCallbacks
def test_requests_past_the_rate_are_not_answered_and_not_punished(
        overlay, raw):
    t = yield overlay.start(name="t", autoConnect=False, dhtRequestRate=0.01,
                            dhtRequestBurst=5)
    asker, askerId = yield peer(raw, t, "asker")
    asker.send(*[FindNode(newMessageId(), "ab" * 32) for _ in range(20)])
    probe = newMessageId()
    yield waitFor(lambda: t.dht.requests.refused == 15, timeout=PROMPT,
                  what="the requests past the burst")
    asker.send(FindNode(probe, "cd" * 32))
    yield waitFor(lambda: t.dht.requests.refused == 16, timeout=PROMPT,
                  what="one more past the rate")
    assert asker.types().count("NODES") == 5
    assert not asker.closed and askerId in t.peers
    assert t.misbehaviour.score(OTHER_HOST) == 0


# -- values -------------------------------------------------------------------


@pytest_twisted.inlineCallbacks
def test_put_on_one_node_and_get_on_another_over_tls(overlay):
    nodes = yield chain(overlay, 6, plaintext=False)
    yield waitFor(lambda: all(n.dht.lookups == 0 for n in nodes),
                  timeout=PROMPT, what="the nodes joining the DHT")
    writer, reader = nodes[0], nodes[-1]
    put = yield writer.values.put("greeting", "hello from n0")
    assert put.stored == put.asked == len(nodes) - 1
    got = yield reader.values.get("greeting")
    assert [(r.value, r.writer) for r in got.records] == [
        ("hello from n0", writer.nodeId)]
    assert got.holders >= len(nodes) - 2  # all but the reader itself, at least
    # A newer put by the same writer replaces it everywhere.
    yield writer.values.put("greeting", "hello again")
    got = yield reader.values.get("greeting")
    assert [r.value for r in got.records] == ["hello again"]


def signedRecord(key="k", value="v", **changes):
    from dataclasses import replace
    from p2poverlay.dht.record import signRecord
    from p2poverlay.identity import NodeKey
    from p2poverlay.signing import Signer
    from twisted.internet import reactor
    record = signRecord(Signer(NodeKey.generate()), key, value, 600.0,
                        reactor.seconds())
    return replace(record, **changes)


@pytest_twisted.inlineCallbacks
def test_a_forged_record_is_never_stored_or_returned(overlay, raw):
    t = yield overlay.start(name="t", autoConnect=False)
    client, _ = yield peer(raw, t, "forger")
    good = signedRecord("honest", "kept")
    forged = signedRecord("forged", "changed", signature="0" * 128)
    client.send(Store(newMessageId(), (good, forged)))
    yield waitFor(lambda: "STORED" in client.types(), timeout=PROMPT,
                  what="the answer")
    answer = next(m for m in client.lines() if m["type"] == "STORED")
    assert answer["stored"] == 1 and "bad signature" in answer["refused"]
    assert [r.key for r in t.values.store.records()] == ["honest"]
    rid = newMessageId()
    client.send(FindValue(rid, "forged"))
    yield waitFor(lambda: "VALUE" in client.types(), timeout=PROMPT,
                  what="the value")
    value = next(m for m in client.lines() if m["type"] == "VALUE")
    assert value["rid"] == rid and value["records"] == []
    assert not client.closed


@pytest_twisted.inlineCallbacks
def test_a_store_with_no_valid_record_closes_that_link_only(overlay, raw):
    t = yield overlay.start(name="t", autoConnect=False)
    a = yield overlay.start(join=t, name="a", autoConnect=False)
    offender, _ = yield peer(raw, t, "offender")
    offender.transport.write(rawLine(type="STORE", rid=newMessageId(),
                                     records=[{"key": "k"}]))
    yield waitFor(lambda: offender.closed, timeout=PROMPT, what="the close")
    assert "no record" in next(m for m in offender.lines()
                               if m["type"] == "BYE")["reason"]
    yield assertMessagesFlow(overlay, a, t)


@pytest_twisted.inlineCallbacks
def test_a_node_with_routing_off_is_in_no_table_and_keeps_none(overlay, raw):
    t = yield overlay.start(name="t", autoConnect=False)
    off = yield overlay.start(join=t, name="off", autoConnect=False,
                              dht=False)
    on = yield overlay.start(join=t, name="on", autoConnect=False)
    yield waitFor(lambda: on.nodeId in t.dht.table and t.nodeId in on.dht.table,
                  timeout=PROMPT, what="the DHT nodes in each other's tables")
    assert off.nodeId in t.peers and off.nodeId not in t.dht.table
    assert len(off.dht.table) == 0
    # A node that ignores the HELLO's dht 0 and asks all the same gets an
    # answer naming nobody.
    client, _ = yield peer(raw, off, "asker", DIRECT)
    assert {"type": "HELLO", "dht": 0}.items() <= client.lines()[0].items()
    rid = newMessageId()
    client.send(FindNode(rid, f"{dhtIdOf(t.nodeId):064x}"))
    yield waitFor(lambda: "NODES" in client.types(), timeout=PROMPT,
                  what="the answer")
    answer = next(m for m in client.lines() if m["type"] == "NODES")
    assert answer["rid"] == rid and answer["nodes"] == []
    yield assertMessagesFlow(overlay, off, t)
