"""
What a node signs (L{p2poverlay.signing}): the documented bytes and
examples, and that no change to a signed field goes unnoticed.
"""

import re
from dataclasses import replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings, strategies as st

from p2poverlay.identity import NodeKey
from p2poverlay.message import Broadcast, Hello, P2PMessage, PeerAddress, Peers
from p2poverlay.ownaddress import recordOf
from p2poverlay.signing import (
    RECENT_ADDRESSES, Signer, Verifier, broadcastBytes,
)

PROTOCOL = Path(__file__).resolve().parent.parent / "docs" / "protocol.rst"
# The keys of the examples in docs/protocol.rst.
ALICE = NodeKey(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
BOB = NodeKey(Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))))
STRICT = Verifier(acceptUnsigned=False)


def documentedExamples():
    text = PROTOCOL.read_text()
    examples = text[text.index("Examples\n--------"):]
    return [P2PMessage.decode(line.strip().encode())
            for line in re.findall(r"^    (\{.*\})$", examples, re.M)]


def test_every_documented_example_decodes_and_its_signatures_check():
    examples = documentedExamples()
    assert len(examples) == 14  # the last two: a lookup request, its answer
    hello, peers = examples[0], examples[1]
    assert isinstance(hello, Hello) and hello.node_id == ALICE.nodeId
    assert STRICT.checkAddress(recordOf(hello)) is None
    assert isinstance(peers, Peers) and peers.peers[0].node_id == BOB.nodeId
    assert STRICT.checkAddress(peers.peers[0]) is None
    sent, relayed = [m for m in examples if isinstance(m, Broadcast)]
    assert (sent.ttl, relayed.ttl) == (32, 31)
    for broadcast in (sent, relayed):
        assert STRICT.checkBroadcast(broadcast) is None


def test_signing_with_the_documented_keys_gives_the_documented_signatures():
    examples = documentedExamples()
    record = recordOf(examples[0])
    unsigned = replace(record, key="", signature="")
    assert Signer(ALICE).address(unsigned) == record
    sent = examples[4]
    assert Signer(ALICE).broadcast(replace(sent, key="", signature="")) == sent


def test_the_broadcast_bytes_are_the_documented_layout():
    message = Broadcast("00" * 16, "11" * 32, 9, "hé", "al", time=258)
    assert broadcastBytes(message) == (
        b"p2poverlay/broadcast/1\x00" + bytes(16) + b"\x11" * 32
        + (258).to_bytes(8, "big") + b"\x00\x02al" + "hé".encode())


BROADCAST = Signer(ALICE).broadcast(Broadcast(
    "e1fd96f1a2b34c5d8e9f0a1b2c3d4e5f", ALICE.nodeId, 32, "pay bob 5",
    "alice", time=1764600002000))


@settings(deadline=None)  # A loaded machine is not a failure.
@given(field=st.sampled_from(["id", "body", "origin_name", "time"]),
       data=st.data())
def test_any_change_to_a_signed_broadcast_field_fails(field, data):
    old = getattr(BROADCAST, field)
    if isinstance(old, int):
        new = data.draw(st.integers(0, 2 ** 53 - 1).filter(lambda v: v != old))
    elif field == "id":
        new = data.draw(st.text("0123456789abcdef", min_size=32, max_size=32)
                        .filter(lambda v: v != old))
    else:
        new = data.draw(st.text(max_size=20).filter(lambda v: v != old))
    forged = replace(BROADCAST, **{field: new})
    assert STRICT.checkBroadcast(forged) == "has a bad signature"
    # The ttl alone is not signed: relays lower it.
    assert STRICT.checkBroadcast(replace(BROADCAST, ttl=3)) is None


def test_a_key_that_is_not_the_origins_is_refused_even_after_its_own():
    verifier = Verifier(acceptUnsigned=False)
    assert verifier.checkBroadcast(BROADCAST) is None  # alice's own key
    mallory = Signer(BOB).broadcast(replace(BROADCAST, key="", signature=""))
    assert verifier.checkBroadcast(mallory) == \
        "is signed with a key that is not its node's"
    fresh = Verifier(acceptUnsigned=False)
    assert fresh.checkBroadcast(mallory) == \
        "is signed with a key that is not its node's"


def test_a_record_that_checked_is_not_checked_again_but_a_changed_one_is(
        monkeypatch):
    record = Signer(ALICE).address(PeerAddress(ALICE.nodeId, "10.0.0.1", 9000,
                                               "alice", seq=5))
    verifier = Verifier(acceptUnsigned=False)
    checks = []
    real = verifier._check
    monkeypatch.setattr(verifier, "_check",
                        lambda *args: checks.append(args) or real(*args))
    assert verifier.checkAddress(record) is None
    assert verifier.checkAddress(replace(record)) is None  # an equal copy
    assert len(checks) == 1
    for changed in (replace(record, host="10.6.6.6"), replace(record, seq=6),
                    replace(record, signature="00" * 64)):
        assert verifier.checkAddress(changed) == "has a bad signature"
        assert verifier.checkAddress(changed) == "has a bad signature"
    assert len(checks) == 7  # a bad record is checked every time


def test_unsigned_records_count_only_from_nodes_without_a_key_where_allowed():
    keyless = PeerAddress("ab" * 16, "10.0.0.1", 9000)
    keyed = PeerAddress(ALICE.nodeId, "10.0.0.1", 9000)
    assert Verifier(acceptUnsigned=True).checkAddress(keyless) is None
    assert Verifier(acceptUnsigned=True).checkAddress(keyed) == "is not signed"
    assert STRICT.checkAddress(keyless) == \
        "is not signed, and its node has no key"
    # Nor do they carry the signed fields on the wire.
    assert keyless.toDict() == {"node_id": "ab" * 16, "host": "10.0.0.1",
                                "port": 9000, "name": ""}



def test_a_relayed_record_signs_its_relay_and_differs_from_a_direct_one():
    """Nobody can take the relay out of a relayed record, put another in,
    or make a relayed record of a direct one: each signs other bytes."""
    relayed = Signer(ALICE).address(PeerAddress(
        ALICE.nodeId, "198.18.0.2", 9000, "alice", seq=5, relay=BOB.nodeId))
    verifier = Verifier(acceptUnsigned=False)
    assert verifier.checkAddress(relayed) is None
    assert relayed.toDict()["relay"] == BOB.nodeId
    assert PeerAddress.fromDict("PEERS", relayed.toDict()) == relayed
    for changed in (replace(relayed, relay=""),
                    replace(relayed, relay=ALICE.nodeId)):
        assert verifier.checkAddress(changed) == "has a bad signature"
    direct = Signer(ALICE).address(replace(relayed, relay="", signature=""))
    assert verifier.checkAddress(replace(direct, relay=BOB.nodeId)) == \
        "has a bad signature"


def test_a_checked_record_is_shared_by_whoever_holds_an_equal_one():
    verifier = Verifier(acceptUnsigned=False)
    signed = Signer(ALICE).address(PeerAddress(ALICE.nodeId, "127.0.0.1",
                                               9000, "alice", 7))
    again = replace(signed)  # the same record, decoded from another line
    assert again is not signed
    assert verifier.shared(again) is again  # not checked yet
    assert verifier.checkAddress(signed) is None
    assert verifier.checkAddress(again) is None
    assert verifier.shared(again) is signed
    forged = replace(signed, port=9001)
    assert verifier.checkAddress(forged) is not None
    assert verifier.shared(forged) is forged
    assert verifier.shared(None) is None


def test_a_record_the_node_keeps_is_not_checked_again_and_is_the_copy_shared(
        monkeypatch):
    record = Signer(ALICE).address(PeerAddress(ALICE.nodeId, "10.0.0.1", 9000,
                                               "alice", seq=5))
    book = {}
    verifier = Verifier(acceptUnsigned=False)
    verifier.holders.append(book.get)
    checks = []
    real = verifier._check
    monkeypatch.setattr(verifier, "_check",
                        lambda *args: checks.append(args) or real(*args))
    book[ALICE.nodeId] = record
    again = replace(record)
    assert verifier.checkAddress(again) is None
    assert verifier.shared(again) is record
    assert checks == []
    # Held of the same node, but not equal: checked, and refused.
    forged = replace(record, port=9001)
    assert verifier.checkAddress(forged) == "has a bad signature"
    assert verifier.shared(forged) is forged
    assert len(checks) == 1


def test_only_the_last_records_that_checked_are_remembered_beside_those_kept(
        monkeypatch):
    signer = Signer(ALICE)
    records = [signer.address(PeerAddress(ALICE.nodeId, "10.0.0.1", 9000,
                                          "alice", seq=n))
               for n in range(RECENT_ADDRESSES + 1)]
    verifier = Verifier(acceptUnsigned=False)
    checks = []
    real = verifier._check
    monkeypatch.setattr(verifier, "_check",
                        lambda *args: checks.append(args) or real(*args))
    for record in records:
        assert verifier.checkAddress(record) is None
    assert verifier.checkAddress(replace(records[-1])) is None
    assert len(checks) == len(records)
    # The first fell out of the recent ones, and nothing holds it.
    assert verifier.checkAddress(replace(records[0])) is None
    assert len(checks) == len(records) + 1
