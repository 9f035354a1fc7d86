"""
Direct messages confirmed a read at a time: one ACKS for the DATA of a
read, one ACK timer a window, the sends a confirmation brings written
together; and that every guarantee of the direct-message layer holds
with them (window, failover, timeout, delivered once, failure reported),
against hostile ACKS too.  In memory (StringTransports on a
MemoryReactorClock), then two nodes over real loopback TCP and TLS.
"""

from __future__ import annotations

import json

import pytest
import pytest_twisted
from twisted.internet.defer import DeferredList
from twisted.internet.testing import MemoryReactorClock

from p2poverlay.direct import ACK_BATCH
from p2poverlay.errors import DeliveryFailed
from p2poverlay.message import (
    MAX_IDS, Ack, Acks, Bye, Data, Hello, newMessageId,
)
from p2poverlay.node import Node, NodeConfig
from helpers import Recorder, waitFor
from memory import (
    BOB, CAROL, connect, established, failureOf, lose, resultOf, send,
    written,
)


def makeNode(**config) -> Node:
    config.setdefault("ackTimeout", 30.0)
    node = Node(NodeConfig(name="me", plaintext=True, dht=False, **config),
                nodeId="a" * 32, reactor=MemoryReactorClock())
    node.recorder = Recorder()
    node.addObserver(node.recorder)
    return node


def dataOf(transport):
    return [m for m in written(transport) if isinstance(m, Data)]


def countWrites(transport):
    """The data of every write C{transport} gets from now on."""
    writes = []
    original = transport.write

    def write(data):
        writes.append(data)
        original(data)

    transport.write = write
    return writes


# -- the receiver: one ACKS a read ------------------------------------------

def test_a_read_of_data_is_confirmed_by_one_acks_after_all_are_delivered():
    node = makeNode()
    connection, transport = established(node)
    messages = [Data(newMessageId(), f"m{i}") for i in range(5)]
    confirmedBefore = []
    node.recorder.messageReceived = lambda m: confirmedBefore.append(
        bool(written(transport)))
    send(connection, *messages)
    assert confirmedBefore == [False] * 5  # none confirmed before its turn
    assert written(transport) == [Acks(tuple(m.id for m in messages))]


def test_a_long_read_is_confirmed_in_acks_of_at_most_the_batch_in_order():
    node = makeNode()
    connection, transport = established(node)
    messages = [Data(newMessageId(), "x") for _ in range(2 * ACK_BATCH + 7)]
    send(connection, *messages)
    acks = written(transport)
    assert [len(a.ids) for a in acks] == [ACK_BATCH, ACK_BATCH, 7]
    assert [i for a in acks for i in a.ids] == [m.id for m in messages]
    assert node.stats.directDelivered == len(messages)


def test_a_repeat_in_the_same_read_is_delivered_once_and_confirmed_twice():
    node = makeNode()
    connection, transport = established(node)
    first, other = newMessageId(), newMessageId()
    send(connection, Data(first, "a"), Data(other, "b"), Data(first, "a"))
    assert [m.body for m in node.recorder.messages] == ["a", "b"]
    assert written(transport) == [Acks((first, other, first))]


def test_one_data_alone_gets_a_plain_ack():
    node = makeNode()
    connection, transport = established(node)
    messageId = newMessageId()
    send(connection, Data(messageId, "one"))
    assert written(transport) == [Ack(messageId)]


def test_a_version_1_peer_gets_an_ack_for_each_data():
    node = makeNode()
    connection, transport = connect(node)
    send(connection, Hello(BOB, 1, 9000, "bob"))
    transport.clear()
    assert connection.version == 1
    messages = [Data(newMessageId(), "x") for _ in range(3)]
    send(connection, *messages)
    assert written(transport) == [Ack(m.id) for m in messages]


def test_data_cut_short_by_a_protocol_error_is_confirmed_up_to_it():
    node = makeNode()
    connection, transport = established(node)
    good = [Data(newMessageId(), "x") for _ in range(2)]
    connection.dataReceived(b"".join(m.encode() + b"\n" for m in good)
                            + b"not json\n" + Data(newMessageId(), "late")
                            .encode() + b"\n")
    acks, bye = written(transport)
    # What was delivered is confirmed before the BYE; the line after the
    # error is never read.
    assert acks == Acks(tuple(m.id for m in good))
    assert isinstance(bye, Bye) and "protocol error" in bye.reason
    assert [m.body for m in node.recorder.messages] == ["x", "x"]


# -- the sender: what one ACKS confirms ----------------------------------------

def test_one_acks_confirms_exactly_the_messages_it_names_in_its_order():
    node = makeNode(sendWindow=10)
    connection, transport = established(node)
    sends = [node.send(BOB, f"m{i}") for i in range(6)]
    ids = [m.id for m in dataOf(transport)]
    fired = []
    for i, d in enumerate(sends):
        d.addCallback(lambda peer, i=i: fired.append(i) or peer)
    send(connection, Acks((ids[3], ids[0], ids[4])))
    assert fired == [3, 0, 4]
    assert node.direct.unconfirmed(connection) == (ids[1], ids[2], ids[5])
    send(connection, Acks((ids[1], ids[2], ids[5])))
    assert all(resultOf(d) == connection.peer for d in sends)
    assert not node.direct.awaitingAcks(connection)


def test_an_acks_opens_the_window_for_as_many_in_order():
    node = makeNode(sendWindow=4)
    connection, transport = established(node)
    sends = [node.send(BOB, f"m{i}") for i in range(10)]
    first = dataOf(transport)
    transport.clear()
    send(connection, Acks(tuple(m.id for m in first[:3])))
    assert [m.body for m in dataOf(transport)] == ["m4", "m5", "m6"]
    assert [d.called for d in sends] == [True] * 3 + [False] * 7


def test_sends_a_confirmation_brings_go_in_one_write_behind_the_waiting():
    node = makeNode(sendWindow=3)
    connection, transport = established(node)
    sends = [node.send(BOB, f"m{i}") for i in range(5)]
    for i, d in enumerate(sends[:3]):
        d.addCallback(lambda peer, i=i: node.send(BOB, f"after m{i}"))
    ids = [m.id for m in dataOf(transport)]
    transport.clear()
    writes = countWrites(transport)
    send(connection, Acks(tuple(ids)))
    assert [m.body for m in dataOf(transport)] == [
        "m3", "m4", "after m0"]
    assert len(writes) == 1
    assert len(node.direct.waiting(connection)) == 2


def test_acks_for_ids_never_sent_mean_nothing_and_close_nothing():
    node = makeNode()
    connection, transport = established(node)
    sent = node.send(BOB, "real")
    (data,) = dataOf(transport)
    transport.clear()
    send(connection, Acks((newMessageId(), newMessageId())), Ack(newMessageId()))
    assert not sent.called
    assert written(transport) == [] and not connection.closing
    send(connection, Acks((data.id, data.id, newMessageId())))
    assert resultOf(sent) == connection.peer


def test_a_flood_of_stray_confirmations_is_read_more_slowly():
    node = makeNode()
    connection, transport = established(node)
    sent = node.send(BOB, "real")
    (data,) = dataOf(transport)
    # Late ones, as after a timeout: a few thousand are taken as they come.
    send(connection, *[Acks(tuple(newMessageId() for _ in range(1000)))] * 4)
    assert not connection.paused
    send(connection, Acks(tuple(newMessageId() for _ in range(1000))))
    assert connection.paused and not connection.closing
    node.reactor.advance(1)
    assert not connection.paused
    # What it confirms is still confirmed; nothing was held against it.
    send(connection, Acks((data.id,)))
    assert resultOf(sent) == connection.peer
    assert node.misbehaviour.score(connection.remoteHost) == 0


def test_only_the_connection_that_carried_a_message_confirms_it():
    node = makeNode()
    bob, bobTransport = established(node)
    carol, _ = established(node, CAROL, 9003, "carol")
    sent = node.send(BOB, "for bob")
    (data,) = dataOf(bobTransport)
    send(carol, Acks((data.id,)))
    assert not sent.called
    send(bob, Acks((data.id,)))
    assert resultOf(sent) == bob.peer


@pytest.mark.parametrize("acks, reason", [
    ({"type": "ACKS", "ids": ["0" * 32] * (MAX_IDS + 1)},
     f"more than {MAX_IDS} ids"),
    ({"type": "ACKS", "ids": []}, "ids is empty"),
    ({"type": "ACKS", "ids": ["NOT-AN-ID"]},
     "ids must be 32 lowercase hex digits"),
])
def test_a_malformed_acks_closes_only_its_connection(acks, reason):
    node = makeNode()
    bob, bobTransport = established(node)
    carol, carolTransport = established(node, CAROL, 9003, "carol")
    toBob = node.send(BOB, "to bob")
    toCarol = node.send(CAROL, "to carol")
    bobTransport.clear()
    bob.dataReceived(json.dumps(acks).encode() + b"\n")
    (bye,) = written(bobTransport)
    assert bye.reason == f"protocol error: {reason}"
    assert bob.closing and not carol.closing
    lose(bob)
    assert failureOf(toBob).check(DeliveryFailed)
    (data,) = dataOf(carolTransport)
    send(carol, Acks((data.id,)))
    assert resultOf(toCarol) == carol.peer


# -- loss of a connection mid-window -------------------------------------------

def test_a_lost_connection_fails_exactly_the_unconfirmed_ones():
    node = makeNode(sendWindow=8)
    connection, transport = established(node)
    sends = [node.send(BOB, f"m{i}") for i in range(10)]
    ids = [m.id for m in dataOf(transport)]
    send(connection, Acks((ids[0], ids[2], ids[5])))
    assert [d.called for d in sends] == [
        i in (0, 2, 5) for i in range(10)]
    lose(connection)
    for i, d in enumerate(sends):
        if i in (0, 2, 5):
            assert resultOf(d) == connection.peer
        else:
            error = failureOf(d)
            assert error.check(DeliveryFailed)
            assert "closed before delivery was confirmed" in str(error.value)
    assert node.sendBacklog == 0
    assert node.reactor.getDelayedCalls() == []


def test_a_lost_connection_moves_exactly_the_unconfirmed_ones_in_order():
    node = makeNode(sendWindow=8)
    old, oldTransport = established(node)
    sends = [node.send(BOB, f"m{i}") for i in range(10)]
    ids = [m.id for m in dataOf(oldTransport)]
    send(old, Acks((ids[1], ids[4])))
    new, newTransport = established(node, outbound=True)
    lose(old)
    moved = dataOf(newTransport)
    # The unconfirmed of the window in order, then the two that waited.
    assert [m.body for m in moved] == [
        "m0", "m2", "m3", "m5", "m6", "m7", "m8", "m9"]
    assert [m.id for m in moved[:6]] == [ids[i] for i in (0, 2, 3, 5, 6, 7)]
    send(new, Acks(tuple(m.id for m in moved)))
    peers = [resultOf(d) for d in sends]
    assert peers == [new.peer if i not in (1, 4) else old.peer
                     for i in range(10)]


# -- the ACK timeout: one timer a window ---------------------------------------

def test_each_message_fails_its_own_ack_timeout_after_being_written():
    node = makeNode(sendWindow=100)
    connection, transport = established(node)
    early = [node.send(BOB, f"early {i}") for i in range(50)]
    node.reactor.advance(10)
    late = [node.send(BOB, f"late {i}") for i in range(50)]
    assert len(node.reactor.getDelayedCalls()) == 1  # one timer, 100 messages
    ids = [m.id for m in dataOf(transport)]
    send(connection, Acks((ids[0], ids[60])))
    node.reactor.advance(20)
    assert all(d.called for d in early)
    assert resultOf(early[0]) == connection.peer
    for d in early[1:]:
        assert "did not confirm delivery within 30 s" in str(failureOf(d).value)
    assert resultOf(late[10]) == connection.peer
    assert not any(d.called for i, d in enumerate(late) if i != 10)
    node.reactor.advance(9.5)
    assert not any(d.called for i, d in enumerate(late) if i != 10)
    node.reactor.advance(0.5)
    assert all(d.called for d in late)
    assert node.direct.unconfirmed(connection) == ()
    assert node.reactor.getDelayedCalls() == []


def test_a_message_written_as_another_times_out_does_not_delay_the_rest():
    node = makeNode(sendWindow=2)
    connection, transport = established(node)
    a, b, c, d = (node.send(BOB, name) for name in "abcd")
    node.reactor.advance(5)
    send(connection, Ack(dataOf(transport)[0].id))  # a; c goes at 5
    node.reactor.advance(25)  # b times out at 30; d goes at 30
    assert failureOf(b).check(DeliveryFailed)
    assert [m.body for m in dataOf(transport)] == ["a", "b", "c", "d"]
    node.reactor.advance(5)
    assert failureOf(c).check(DeliveryFailed)  # at 35, not at d's 60
    assert not d.called
    node.reactor.advance(25)
    assert failureOf(d).check(DeliveryFailed)
    assert resultOf(a) == connection.peer


def test_confirming_everything_stops_the_window_timer():
    node = makeNode()
    connection, transport = established(node)
    sends = [node.send(BOB, f"m{i}") for i in range(3)]
    send(connection, Acks(tuple(m.id for m in dataOf(transport))))
    assert all(resultOf(d) for d in sends)
    assert node.reactor.getDelayedCalls() == []
    node.reactor.advance(60)


# -- over real loopback TCP, plaintext and TLS ----------------------------------

@pytest.mark.parametrize("plaintext", [True, False], ids=["plaintext", "tls"])
@pytest_twisted.inlineCallbacks
def test_many_messages_over_the_wire_arrive_once_in_order_confirmed_in_acks(
        overlay, plaintext):
    receiver = yield overlay.start(name="receiver", plaintext=plaintext)
    sender = yield overlay.start(join=receiver, name="sender",
                                 plaintext=plaintext, sendWindow=64)
    count = 1500
    sends = [sender.send(receiver.nodeId, f"m{i}") for i in range(count)]
    results = yield DeferredList(sends, consumeErrors=True)
    assert all(ok for ok, _ in results), [r for ok, r in results if not ok][:1]
    recorder = overlay.recorder(receiver)
    yield waitFor(lambda: len(recorder.bodies("direct")) >= count,
                  what="every message")
    assert recorder.bodies("direct") == [f"m{i}" for i in range(count)]
    acks = sender.metrics.messagesIn
    assert acks["ACKS"] > 0
    assert acks["ACKS"] + acks["ACK"] < count
    assert receiver.stats.directDelivered == count
