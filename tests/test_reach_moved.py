"""
A node the address book leads nowhere (an address from before it found
itself private, or a relay that no longer holds its reservation): the
sender finds the node's newer relayed record in the DHT and sends once
more, the way that says; never twice what may have arrived.
"""

from __future__ import annotations

from twisted.internet.defer import fail, succeed

from p2poverlay.addressbook import AddressBook
from p2poverlay.dht.reach import Reach
from p2poverlay.errors import DeliveryFailed, PeerUnreachable
from p2poverlay.rendezvous import Rendezvous, keyOf
from p2poverlay.signing import Verifier
from p2poverlay.wirejson import dumps
from test_rendezvous import PRIVATE, Values, Written, relayed

NEW_RELAY = "cd" * 32


class Direct:
    """Sends fail with each of C{failures} in turn, then arrive."""

    def __init__(self, *failures):
        self.failures = list(failures)
        self.sent = []

    def send(self, target, body):
        self.sent.append((target, body))
        if self.failures:
            return fail(self.failures.pop(0))
        return succeed(target)


class DHT:
    nodeId = "ee" * 32


def reach(direct, published, known=None):
    """A sender whose book has the node with record C{known} (by default
    its relayed record of seq 7); the DHT holds C{published}."""
    values = Values(PRIVATE.nodeId)
    book = AddressBook(100, lambda: 0.0)
    book.learn(PRIVATE.nodeId, "198.18.0.2", 9000,
               record=known or relayed(PRIVATE))
    sender = Reach(direct, DHT(), {}, book, connect=None)
    sender.rendezvous = Rendezvous(values, Verifier(acceptUnsigned=False),
                                   book)
    values.stored[keyOf(PRIVATE.nodeId)] = [
        Written(PRIVATE.nodeId, dumps(published.toDict()))]
    return sender, book


def outcome(d):
    results = []
    d.addBoth(results.append)
    return results[0]


def test_a_newer_record_in_the_dht_gets_one_more_try():
    direct = Direct(PeerUnreachable("no circuit to 1f2e3d4c through R: "
                                    "not reserved"))
    sender, book = reach(direct, relayed(PRIVATE, seq=8, relay=NEW_RELAY))
    assert outcome(sender.send(PRIVATE.nodeId, "hi")) == PRIVATE.nodeId
    assert direct.sent == [(PRIVATE.nodeId, "hi")] * 2
    assert book.get(PRIVATE.nodeId).record.relay == NEW_RELAY


def test_the_same_record_again_is_the_failure_it_was():
    direct = Direct(PeerUnreachable("no circuit"))
    sender, _ = reach(direct, relayed(PRIVATE))
    result = outcome(sender.send(PRIVATE.nodeId, "hi"))
    assert result.check(PeerUnreachable)
    assert len(direct.sent) == 1


def test_a_message_that_may_have_arrived_is_not_sent_again():
    direct = Direct(DeliveryFailed("not confirmed"))
    sender, _ = reach(direct, relayed(PRIVATE, seq=8, relay=NEW_RELAY))
    result = outcome(sender.send(PRIVATE.nodeId, "hi"))
    assert result.check(DeliveryFailed)
    assert len(direct.sent) == 1


def test_an_address_heard_before_the_node_went_private_gives_way():
    direct = Direct(PeerUnreachable("cannot reach 10.3.0.10:9000: User "
                                    "timeout caused connection failure."))
    plain = relayed(PRIVATE, seq=3, relay="", host="10.3.0.10")
    sender, book = reach(direct, relayed(PRIVATE), known=plain)
    assert not book.get(PRIVATE.nodeId).relayed
    assert outcome(sender.send(PRIVATE.nodeId, "hi")) == PRIVATE.nodeId
    assert len(direct.sent) == 2
    assert book.get(PRIVATE.nodeId).relayed


def test_nothing_published_is_the_failure_it_was():
    direct = Direct(PeerUnreachable("cannot reach 10.3.0.10:9000"))
    sender, _ = reach(direct, relayed(PRIVATE))
    sender.rendezvous.values.stored.clear()
    assert outcome(sender.send(PRIVATE.nodeId, "hi")).check(PeerUnreachable)
    assert len(direct.sent) == 1
