"""
Rendezvous through the DHT: a private node's relayed record, published
under a key of its id, is found by others; only what the node itself
wrote and signed counts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, List

from twisted.internet.defer import succeed

from p2poverlay.addressbook import AddressBook
from p2poverlay.identity import NodeKey
from p2poverlay.message import PeerAddress
from p2poverlay.rendezvous import Rendezvous, keyOf
from p2poverlay.signing import Signer, Verifier
from p2poverlay.wirejson import dumps

PRIVATE = NodeKey.generate()
OTHER = NodeKey.generate()
RELAY = "ab" * 32


@dataclass
class Written:
    writer: str
    value: str


@dataclass
class Found:
    records: List[Written]


class Values:
    """A DHT that keeps what is put, as its writer (this node) wrote it."""

    def __init__(self, writer: str) -> None:
        self.writer = writer
        self.stored: Dict[str, List[Written]] = {}

    def put(self, key, value):
        self.stored.setdefault(key, []).append(Written(self.writer, value))
        return succeed(None)

    def get(self, key):
        return succeed(Found(list(self.stored.get(key, []))))


def relayed(key: NodeKey, **changes) -> PeerAddress:
    return Signer(key).address(replace(PeerAddress(
        key.nodeId, "198.18.0.2", 9000, "h", seq=7, relay=RELAY), **changes))


def setUp():
    values = Values(PRIVATE.nodeId)
    book = AddressBook(100, lambda: 0.0)
    return values, book, Rendezvous(values, Verifier(acceptUnsigned=False),
                                    book)


def found(rendezvous, nodeId):
    results = []
    rendezvous.find(nodeId).addCallback(results.append)
    return results[0]


def test_a_published_relayed_record_is_found_and_learned():
    values, book, rendezvous = setUp()
    record = relayed(PRIVATE)
    assert rendezvous.published is None
    rendezvous.publish(record)
    assert list(values.stored) == [keyOf(PRIVATE.nodeId)]
    assert rendezvous.published == record, "stored: a lookup can find it"
    assert found(rendezvous, PRIVATE.nodeId) == record
    entry = book.get(PRIVATE.nodeId)
    assert entry.relayed and (entry.host, entry.port) == ("198.18.0.2", 9000)


def test_nothing_published_is_nothing_found():
    values, book, rendezvous = setUp()
    assert found(rendezvous, PRIVATE.nodeId) is None
    assert book.get(PRIVATE.nodeId) is None


def test_only_the_node_itself_says_where_it_is():
    values, book, rendezvous = setUp()
    key = keyOf(PRIVATE.nodeId)
    # Another writer's value under the key, even a record the node signed.
    values.stored[key] = [Written(OTHER.nodeId, dumps(relayed(PRIVATE)
                                                      .toDict()))]
    assert found(rendezvous, PRIVATE.nodeId) is None
    # The node's own value, but a record of another node, or forged, or
    # not through a relay, or not a record at all.
    for value in (dumps(relayed(OTHER).toDict()),
                  dumps(replace(relayed(PRIVATE), host="203.0.113.6")
                        .toDict()),
                  dumps(relayed(PRIVATE, relay="").toDict()),
                  "not json", dumps({"node_id": PRIVATE.nodeId})):
        values.stored[key] = [Written(PRIVATE.nodeId, value)]
        assert found(rendezvous, PRIVATE.nodeId) is None, value
    assert book.get(PRIVATE.nodeId) is None
