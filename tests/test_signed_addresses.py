"""
Signed addresses over real loopback TLS: an address counts for a node only
if that node signed it, and its newest record wins.
"""

import pytest_twisted

from p2poverlay import signing
from p2poverlay.identity import NodeKey
from p2poverlay.message import NEIGHBOUR, Hello, PeerAddress, Peers, Ping
from p2poverlay.signing import Signer, Verifier
from helpers import PROMPT, waitFor
from test_signed_broadcasts import neighbourOf

TLS = dict(plaintext=False)


@pytest_twisted.inlineCallbacks
def told(client, *entries):
    """Send PEERS with C{entries}, and wait until it was handled."""
    before = client.types().count("PONG")
    client.send(Peers(tuple(entries)), Ping(99))
    yield waitFor(lambda: client.types().count("PONG") > before,
                  timeout=PROMPT, what="the PEERS handled")


@pytest_twisted.inlineCallbacks
def test_nodes_pass_on_the_address_a_node_signed(overlay):
    t = yield overlay.start(name="t", **TLS)
    a = yield overlay.start(join=t, name="a", **TLS)
    b = yield overlay.start(join=t, name="b", **TLS)
    yield waitFor(lambda: a.nodeId in b.addressBook, timeout=PROMPT,
                  what="b heard of a from t")
    record = b.addressBook.get(a.nodeId).record
    assert (record.node_id, record.host, record.port, record.name) == \
        (a.nodeId, "127.0.0.1", a.listenPort, "a")
    assert record.key == a.key.publicBytes.hex()
    assert Verifier(acceptUnsigned=False).checkAddress(record) is None


@pytest_twisted.inlineCallbacks
def test_a_node_keeps_one_copy_of_a_record_it_heard_twice(overlay):
    t = yield overlay.start(name="t", **TLS)
    a = yield overlay.start(join=t, name="a", **TLS)
    b = yield overlay.start(join=t, name="b", **TLS)
    # b reads a's record in t's PEERS and in a's own HELLO.
    yield waitFor(lambda: a.nodeId in b.addressBook and b.peers.get(a.nodeId)
                  is not None, timeout=PROMPT, what="b linked to a")
    booked = b.addressBook.get(a.nodeId).record
    linked = b.peers.get(a.nodeId).record
    assert booked == linked and booked is linked


@pytest_twisted.inlineCallbacks
def test_a_record_a_node_keeps_is_not_checked_again(overlay, raw,
                                                    monkeypatch):
    t = yield overlay.start(name="t", autoConnect=False, **TLS)
    teller = yield neighbourOf(raw, t, "127.0.0.5")
    key = NodeKey.generate()
    record = Signer(key).address(PeerAddress(key.nodeId, "127.0.0.1", 2000,
                                             "x", 10))
    # Nothing remembered beside what the node keeps.
    monkeypatch.setattr(signing, "RECENT_ADDRESSES", 0)
    checked = []
    real = signing.signedBy
    monkeypatch.setattr(signing, "signedBy",
                        lambda *args: checked.append(args) or real(*args))
    yield told(teller, record)
    kept = t.addressBook.get(key.nodeId).record
    assert kept == record and len(checked) == 1
    # The same record again, decoded from another line (a HELLO, a DHT
    # answer): the node holds it, so it checked.
    again = PeerAddress.fromDict("PEERS", record.toDict())
    assert t.verifier.checkAddress(again) is None
    assert t.verifier.shared(again) is kept
    assert len(checked) == 1
    # Newer, by its number, but not what the node signed: checked, and
    # not taken.
    yield told(teller, PeerAddress(key.nodeId, "127.0.0.1", 2000, "x", 11,
                                   record.key, record.signature))
    assert len(checked) == 2
    assert t.addressBook.get(key.nodeId).record is kept


@pytest_twisted.inlineCallbacks
def test_nobody_can_point_a_nodes_id_at_another_host(overlay, raw):
    t = yield overlay.start(name="t", autoConnect=False, **TLS)
    a = yield overlay.start(name="a", autoConnect=False, **TLS)
    mallory = yield neighbourOf(raw, t, "127.0.0.5")
    malloryKey = NodeKey.generate()
    genuine = Signer(a.key).address(
        PeerAddress(a.nodeId, "127.0.0.1", a.listenPort, "a", 5))
    yield told(mallory,
               # Unsigned, signed with another key, and a genuine record
               # with its host changed.
               PeerAddress(a.nodeId, "127.0.0.5", 9999, "a"),
               Signer(malloryKey).address(
                   PeerAddress(a.nodeId, "127.0.0.5", 9999, "a", 6)),
               PeerAddress(a.nodeId, "127.0.0.5", genuine.port, "a",
                           genuine.seq, genuine.key, genuine.signature))
    assert a.nodeId not in t.addressBook
    # None of that is misbehaviour of the sender: it may have relayed it.
    assert not mallory.closed
    yield told(mallory, genuine)
    assert t.addressBook.get(a.nodeId).address == f"127.0.0.1:{a.listenPort}"


@pytest_twisted.inlineCallbacks
def test_the_newest_record_a_node_signed_wins(overlay, raw):
    t = yield overlay.start(name="t", autoConnect=False, **TLS)
    teller = yield neighbourOf(raw, t, "127.0.0.5")
    key = NodeKey.generate()
    signer = Signer(key)

    def record(port, seq):
        return signer.address(PeerAddress(key.nodeId, "127.0.0.1", port, "x",
                                          seq))

    yield told(teller, record(2000, 10))
    yield told(teller, record(3000, 12))
    yield told(teller, record(4000, 11))  # older than what t holds
    entry = t.addressBook.get(key.nodeId)
    assert (entry.port, entry.record.seq) == (3000, 12)


@pytest_twisted.inlineCallbacks
def test_a_hello_with_a_forged_address_record_is_refused(overlay, raw):
    t = yield overlay.start(name="t", autoConnect=False, **TLS)
    key = NodeKey.generate()
    record = Signer(key).address(PeerAddress(key.nodeId, "127.0.0.1", 4000,
                                             "x", 1))
    client = yield raw(t, "127.0.0.6", key=key)
    client.send(Hello(key.nodeId, 1, 4000, "x", NEIGHBOUR, host="127.0.0.9",
                      seq=record.seq, key=record.key,
                      signature=record.signature))
    yield waitFor(lambda: client.closed, timeout=PROMPT,
                  what="the forged HELLO refused")
    assert client.lines()[-1]["reason"] == \
        "protocol error: address record has a bad signature"
    assert key.nodeId not in t.peers
